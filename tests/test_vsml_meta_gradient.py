"""VSML's meta-gradient: autograd through whole online episodes against finite differences.

The episode loop closes as in the env: the error fed at step t is softmax(logits_{t-1}) -
onehot(y_{t-1}), computed from the learner's own predictions, so the gradient flows through the
feedback too. Double precision, tiny layers, every option that changes the step's graph.
"""

import pytest
import torch
import torch.nn.functional as F

from agents import make_learner
from agents.rollout import rollout
from agents.training.population import fitness_from

STEPS, CLASSES, BATCH = 5, 3, 2
CASES = {
    "plain": {},
    "backward_pass_label_zero_init": {"backward_pass": True, "feed_label": True, "init_rand_proportion": 0.0,
                                      "num_micro_ticks": 1, "input_gate_init": 5.0},
    "layer_norm_clip": {"layer_norm": True, "state_clip": 0.5},
    "deep_coordinates": {"layers": [{"type": "dense", "size": 2}, {"type": "dense"}], "coordinates": True,
                         "backward_pass": True, "separate_backward_rnn": True},
    "conv_batched": {"layers": [{"type": "conv", "channels": 2, "kernel": 3, "stride": 2}, {"type": "dense"}],
                     "batch_average": True},
}


def episode_loss(learner, params: torch.Tensor, xs: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    state = learner.initial_state(params, BATCH, torch.Generator().manual_seed(seed))
    error = label = torch.zeros(1, BATCH, CLASSES, dtype=params.dtype)
    total = 0.0
    for t in range(STEPS):
        logits, state = learner.step(params, state, {"x": xs[t], "error": error, "label": label})
        target = F.one_hot(labels[t], CLASSES).to(params.dtype)
        total = total + F.cross_entropy(logits.reshape(-1, CLASSES), labels[t].reshape(-1))
        error, label = torch.softmax(logits, -1) - target, target
    return total / STEPS


@pytest.mark.parametrize("name", sorted(CASES))
def test_meta_gradient_equals_finite_differences(name):
    torch.manual_seed(0)
    learner = make_learner("vsml", (1, 3, 3), CLASSES, state_size=2, message_size=2, **CASES[name])
    params = (learner.init_params(1, seed=1).double() + 0.3 * torch.randn(1, learner.num_params).double())
    params.requires_grad_(True)
    xs = torch.randn(STEPS, 1, BATCH, 1, 3, 3, dtype=torch.float64)
    labels = torch.randint(0, CLASSES, (STEPS, 1, BATCH))
    assert torch.autograd.gradcheck(lambda p: episode_loss(learner, p, xs, labels), (params,), eps=1e-6, atol=1e-7,
                                    rtol=1e-4, fast_mode=False)


def test_meta_gradient_through_the_vector_env_equals_a_central_difference(data_root):
    """The gradient the trainer uses (rollout through the real env, float32, the fast no-grad
    kernels for the probes): the central difference of the episode loss along the gradient's
    direction equals its norm."""
    import gymnasium as gym

    import vsml_gym  # noqa: F401

    learner = make_learner("vsml", (1, 7, 7), 10, backward_pass=True, feed_label=True, init_rand_proportion=0.0,
                           num_micro_ticks=1, input_gate_init=5.0)
    noise = torch.randn(1, learner.num_params, generator=torch.Generator().manual_seed(3))
    params = learner.init_params(1, seed=0) + 0.2 * noise

    def loss_of(p: torch.Tensor) -> torch.Tensor:
        env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=4, split="train", episode_length=12, resize=7,
                           data_root=data_root)
        return fitness_from(rollout(learner, p, env, seed=0), "mean")[0]

    p = params.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss_of(p), p)
    direction, step = gradient / gradient.norm(), 3e-3
    with torch.no_grad():
        slope = (loss_of(params + step * direction) - loss_of(params - step * direction)) / (2 * step)
    assert float(gradient.norm()) > 0.1  # well above float32 noise in the difference (~1e-6 / step)
    assert abs(float(slope / gradient.norm()) - 1) < 0.05, (float(slope), float(gradient.norm()))
