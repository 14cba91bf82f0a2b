"""Learners used by several test files."""

import torch

from agents import Learner, ParamSpec


class DataEcho(Learner):
    """Logits that depend only on the data (the first pixels), never on the meta-parameters: a
    member's fitness is then a fingerprint of the data stream it saw."""

    name = "data_echo"

    def __init__(self, input_shape, num_classes):
        super().__init__(input_shape, num_classes)
        self.param_spec = ParamSpec.of(unused=(3,))

    def init_named_params(self, generator):
        return {"unused": torch.zeros(3)}

    def initial_state(self, params, batch, generator):
        return {}

    def step(self, params, state, obs):
        return obs["x"].flatten(2)[..., : self.num_classes] * 3.0, state


def online_episode_logits(learner, params, xs, labels, state_seed=5, donated=False):
    """Logits (T, P, B, C) of one online episode: each prediction's error (softmax - one-hot) is
    fed back at the next step, as the envs do. xs (T, P, B, ...), labels (T, P, B). `donated`
    steps with `step_donated`."""
    classes = learner.num_classes
    state = learner.initial_state(params, labels.shape[2], torch.Generator().manual_seed(state_seed))
    error, seen = torch.zeros(*labels.shape[1:], classes), []
    step = learner.step_donated if donated else learner.step
    with torch.no_grad():
        for x, label in zip(xs, labels):
            target = torch.nn.functional.one_hot(label, classes).float()
            logits, state = step(params, state, {"x": x, "error": error, "label": target})
            error = torch.softmax(logits, -1) - target
            seen.append(logits)
    return torch.stack(seen)
