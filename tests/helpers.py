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
