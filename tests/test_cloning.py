"""Learning-algorithm cloning: the shipped clone implements online backprop inside VSML."""

import gymnasium as gym
import pytest
import torch

import vsml_gym  # noqa: F401
from agents import make_learner, rollout
from agents.cloning.learner import CHECKPOINT
from agents.cloning.targets import BackpropReference, CloneTargets
from agents.cloning.train import CloneParams, evaluate_clone, load_clone

# RMS errors (w units) on fresh random data (weights uniform in [-4, 4] half of the time); an
# untrained (random) sub-LSTM scores about 1.7 / 0.46 / 0.66 / 0.08.
BOUNDS = {"forward": 0.3, "backward": 0.1, "update": 0.01, "keep": 1e-3}


@pytest.fixture(scope="module")
def shipped():
    return load_clone(CHECKPOINT)


def test_shipped_clone_errors_below_bounds(shipped):
    clone, targets, _ = shipped
    errors = evaluate_clone(clone, targets, samples=2048, seed=123)
    for key, bound in BOUNDS.items():
        assert errors[key] < bound, (key, errors[key])


def test_untrained_clone_fails_the_bounds(shipped):
    _, targets, _ = shipped
    errors = evaluate_clone(CloneParams(seed=3), targets, samples=1024, seed=5)
    assert any(errors[k] > BOUNDS[k] for k in BOUNDS)


def test_small_weights_forward_is_accurate(shipped):
    """For |w| <= 1 the tanh of the cell barely bends: forward error < 0.03."""
    clone, targets, _ = shipped
    x = torch.linspace(-3, 3, 61).repeat(21)
    w = torch.linspace(-1, 1, 21).repeat_interleave(61)
    c = torch.zeros(len(x), clone.n)
    c[:, [0, 2, 7]] = (w / targets.scale).unsqueeze(1)
    _, _, y, _ = clone.tick(x, torch.zeros_like(x), torch.zeros_like(c), c)
    assert (y - torch.tanh(x) * w).abs().max() < 0.03


@torch.no_grad()
def test_cloned_vsml_step_equals_sgd_step(shipped):
    """144 -> 10 with a batch of 8 streams averaged into one learner: predictions and weights
    after one learning step match autograd SGD on z = tanh(x) @ W_eff + b (W_eff = w / A) with
    the stated learning rates (lr / A for W_eff, bias_lr for b), and the backprop reference."""
    _, targets, _ = shipped
    torch.manual_seed(0)
    shape, batch, a = (1, 12, 12), 8, 144
    learner = make_learner("vsml_cloned", shape, 10)
    params = learner.init_params(1)
    state = learner.initial_state(params, batch, torch.Generator().manual_seed(0))
    w_start = targets.weight(state["c0"])[0, 0]  # (A, 10), shared by the batch
    x0, x1 = torch.randn(1, batch, *shape), torch.randn(1, batch, *shape)
    error = torch.softmax(torch.randn(1, batch, 10), -1) - torch.eye(10)[torch.randint(0, 10, (1, batch))]
    zeros = torch.zeros(1, batch, 10)
    logits0, state = learner.step(params, state, {"x": x0, "error": zeros, "label": zeros})
    logits1, state = learner.step(params, state, {"x": x1, "error": error, "label": zeros})
    # autograd SGD on the same network
    (lr_w, lr_b), = targets.sgd_learning_rates([a, 10])
    with torch.enable_grad():
        w_eff = (w_start / a).clone().requires_grad_()
        b = torch.zeros(10, requires_grad=True)
        z = torch.tanh(x0.flatten(2)[0]) @ w_eff + b
        assert (logits0[0] - z).abs().max() < 0.02
        (z * error[0]).sum().div(batch).backward()  # dL/dz = error, averaged over the batch
    w_sgd, b_sgd = w_eff - lr_w * w_eff.grad, b - lr_b * b.grad
    assert (targets.weight(state["c0"])[0, 0] - a * w_sgd).abs().max() < 0.02  # w units, |w| up to ~1
    assert (targets.bias(state["c0"])[0, 0] - b_sgd).abs().max() < 0.01
    z1 = torch.tanh(x1.flatten(2)[0]) @ w_sgd + b_sgd
    assert (logits1[0] - z1).abs().max() < 0.02
    # and the reference learner takes exactly that step
    ref = BackpropReference(shape, 10, lr=targets.lr, bias_lr=targets.bias_lr)
    rstate = ref.initial_state(torch.zeros(1, 0), batch, torch.Generator().manual_seed(0))
    rstate["w0"] = w_start.expand(1, batch, a, 10).clone()
    _, rstate = ref.step(torch.zeros(1, 0), rstate, {"x": x0, "error": zeros, "label": zeros})
    rlogits1, rstate = ref.step(torch.zeros(1, 0), rstate, {"x": x1, "error": error, "label": zeros})
    assert torch.allclose(rstate["w0"][0, 0], a * w_sgd, atol=1e-4)
    assert torch.allclose(rlogits1[0], z1, atol=1e-4)


def test_vsml_cloned_learns_on_mnist(data_root):
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=64, split="test", episode_length=12, data_root=data_root)
    learner = make_learner("vsml_cloned", (1, 28, 28), 10)
    params = learner.init_params(1)
    with torch.no_grad():
        result = rollout(learner, params, env, seed=0)
    curve = result.accuracy_curve()[:, 0]
    assert torch.isfinite(result.loss).all()
    assert curve[-4:].mean() > 0.3 > curve[0]
