"""Learning-algorithm cloning: the shipped clone implements online backprop inside VSML."""

import json

import gymnasium as gym
import pytest
import torch

import vsml_gym  # noqa: F401
from agents import make_learner, rollout
from agents.cloning.curriculum import ClonedNetworks, DeepConfig, message_masks, train_deep
from agents.cloning.learner import CHECKPOINT, ClonedBackpropVSML
from agents.cloning.targets import BackpropReference, CloneTargets
from agents.cloning.train import CloneParams, evaluate_clone, load_clone, weighted_score
from helpers import online_episode_logits
from vsml_gym.cli import main as cli_main

# RMS errors (w units) on fresh random data (weights uniform in [-4, 4] half of the time); an
# untrained (random) sub-LSTM scores about 1.7 / 0.46 / 0.66 / 0.08, the shipped clone about
# 0.25 / 0.048 / 0.0084 / 1.4e-5 (the forward error is mostly the storage's 4 tanh(w / 4)).
BOUNDS = {"forward": 0.3, "backward": 0.06, "update": 0.01, "keep": 1e-4}


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


def test_cloned_vsml_donated_steps_equal_plain_steps():
    """The clone's own step (a backward pass, then cleared messages) also runs when a rollout
    donates its states."""
    learner = make_learner("vsml_cloned", (1, 6, 6), 3, hidden=[4])
    params = learner.init_params(2)
    gen = torch.Generator().manual_seed(1)
    xs, labels = torch.randn(5, 2, 3, 1, 6, 6, generator=gen), torch.randint(0, 3, (5, 2, 3), generator=gen)
    torch.testing.assert_close(online_episode_logits(learner, params, xs, labels, donated=True),
                               online_episode_logits(learner, params, xs, labels), atol=0, rtol=0)


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


@torch.no_grad()
def test_curriculum_networks_run_the_cloned_learners_dynamics(shipped):
    """The deep networks of stage 2 (clone's own errors) are `vsml_cloned` learners: from the
    same states, on the same inputs and labels, they give the same logits step after step."""
    clone, targets, _ = shipped
    count, streams, sizes = 2, 4, (12, 5, 3)
    networks = ClonedNetworks(sizes, count, streams, clone.n, lifetime=100, generator=torch.Generator().manual_seed(0))
    learner = ClonedBackpropVSML((sizes[0],), sizes[-1], hidden=sizes[1:-1], tanh_bound=0)
    params = learner.init_params(count)
    state = learner.initial_state(params, streams, torch.Generator().manual_seed(0))
    for layer in range(len(sizes) - 1):  # (K, A, O, G, N) -> (P, B, A, O, N)
        state[f"c{layer}"] = networks.c[layer].permute(0, 3, 1, 2, 4).contiguous()
    gen = torch.Generator().manual_seed(1)
    error = torch.zeros(count, streams, sizes[-1])
    for _ in range(6):
        x, labels = torch.randn(count, sizes[0], streams, generator=gen), torch.randint(0, 3, (count, streams), generator=gen)
        logits, state = learner.step(params, state, {"x": x.permute(0, 2, 1), "error": error, "label": error})
        _, network_logits = networks.example(clone, targets, ground_truth=False, x=x, labels=labels)
        torch.testing.assert_close(logits, network_logits.permute(0, 2, 1), atol=1e-4, rtol=1e-4)
        error = torch.softmax(logits, -1) - torch.nn.functional.one_hot(labels, sizes[-1])
    assert (networks.age == 6).all()  # no network restarted (weights left the storage range)
    assert logits.abs().max() > 0.1  # the networks have moved: not a comparison of zeros


def test_curriculum_fits_only_the_messages_and_keeps_its_best(shipped):
    """During stage 2 only the message parameters (read-outs, output gates of the message dims)
    move, and what it returns evaluates no worse than its start."""
    clone, targets, _ = shipped
    model = CloneParams.from_vsml_named_params(clone.vsml_named_params())
    config = DeepConfig(steps=12, lr=1e-3, sizes=(10, 6, 4), networks=4, eval_every=6, targets=targets)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    masks = message_masks(model)
    moved = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in before.items()}

    def watch(step, record):  # called after every optimiser step
        for name, p in model.named_parameters():
            moved[name] |= p.detach() != before[name]

    with torch.enable_grad():
        model, summary = train_deep(model, config, watch)
    for name, mask in masks.items():
        assert not moved[name][mask == 0].any(), name  # storage and update machinery untouched
    assert any(moved[name][mask == 1].any() for name, mask in masks.items())  # the messages were fitted
    assert weighted_score(summary["deep_best"]) <= weighted_score(summary["deep_start"])


def test_clone_command_writes_a_checkpoint_the_learner_runs(tmp_path, capsys):
    """`vsml-gym clone` end to end (both stages, tiny): the checkpoint it writes is a learner."""
    out = tmp_path / "clone.pt"
    assert cli_main(["clone", "--steps", "2", "--batch", "16", "--deep-steps", "2", "--deep-sizes", "6", "4", "3",
                     "--quiet", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["deep_network_errors"]) >= {"forward", "backward", "accuracy"}
    _, _, data = load_clone(out)
    assert data["summary"]["config"]["deep_sizes"] == [6, 4, 3] and "deep_best" in data["summary"]
    learner = make_learner("vsml_cloned", (6,), 3, hidden=[4], checkpoint=str(out))
    params = learner.init_params(1)
    state = learner.initial_state(params, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = learner.step(params, state, {"x": torch.randn(1, 2, 6), "error": torch.zeros(1, 2, 3),
                                                 "label": torch.zeros(1, 2, 3)})
    assert logits.shape == (1, 2, 3) and torch.isfinite(logits).all()
