"""The baseline learners: sizes, parameter plumbing, population batching, the Hebbian rules,
SGD/Adam against torch.nn + torch.optim, and real online learning on MNIST."""

import math

import gymnasium as gym
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vsml_gym  # noqa: F401  (registers the VSML/... ids)
from agents import make_learner, rollout
from vsml_gym.data import load_split

D, C = 784, 10  # MNIST


def lstm_size(inputs, hidden):
    return 4 * hidden * (inputs + hidden) + 4 * hidden


def linear_size(inputs, outputs):
    return inputs * outputs + outputs


# conv stack on 1x28x28: 3 x [3x3, stride 2] -> 4x4 feature maps
def conv_size(channels):
    return linear_size(9 * 1, channels) + 2 * linear_size(9 * channels, channels)


PARAM_COUNTS = [
    ("meta_rnn", {}, lstm_size(D + 2 * C, 128) + linear_size(128, C)),
    ("meta_rnn", {"hidden_size": 16}, lstm_size(D + 2 * C, 16) + linear_size(16, C)),
    ("meta_rnn", {"hidden_size": 16, "use_conv": True},
     conv_size(64) + lstm_size(64 * 16 + 2 * C, 16) + linear_size(16, C)),
    ("hebbian", {}, 2 * (D + 2 * C) * C + C + 1),
    ("hebbian", {"use_conv": True}, conv_size(8) + 2 * (8 * 16 + 2 * C) * C + C + 1),
    ("fw_memory", {}, lstm_size(D + 2 * C, 32) + linear_size(32, 3 * 16 + 1) + linear_size(32, 2 * 16)
     + linear_size(16, 32) + linear_size(32, C)),
    ("sgd", {}, 0),
    ("adam", {"num_layers": 2, "use_conv": True}, 0),
]


@pytest.mark.parametrize("name, options, expected", PARAM_COUNTS)
def test_parameter_counts(name, options, expected):
    learner = make_learner(name, (1, 28, 28), C, **options)
    print(f"{name} {options}: {learner.num_params} meta-parameters")
    assert learner.num_params == expected
    assert learner.init_params(2).shape == (2, expected)
    assert learner.describe()["num_params"] == expected


@pytest.mark.parametrize("options, expected", [
    ({}, linear_size(D, C)),
    ({"num_layers": 2}, linear_size(D, 160) + linear_size(160, C)),
    ({"use_conv": True}, conv_size(8) + linear_size(8 * 16, C)),
])
def test_gradient_learner_network_sizes(options, expected):
    learner = make_learner("sgd", (1, 28, 28), C, **options)
    state = learner.initial_state(learner.init_params(2), 3, torch.Generator().manual_seed(0))
    weights = sum(state[k][0, 0].numel() for k in learner.net_shapes)
    print(f"sgd {options}: {weights} weights per stream")
    assert weights == expected
    assert not learner.meta_learned and learner.num_params == 0


@pytest.mark.parametrize("name", ["meta_rnn", "hebbian", "fw_memory"])
def test_flatten_round_trip_and_member_seeds(name):
    learner = make_learner(name, (1, 8, 8), 4)
    params = learner.init_params(population=3, seed=7)
    named = learner.param_spec.unflatten(params)
    assert torch.equal(learner.param_spec.flatten(named), params)
    storage = params.untyped_storage().data_ptr()
    assert all(view.untyped_storage().data_ptr() == storage for view in named.values())  # views, not copies
    assert torch.equal(params[1], learner.init_params(1, seed=8)[0])
    assert not torch.equal(params[0], params[1])


def test_meta_parameter_initialisation():
    meta_rnn = make_learner("meta_rnn", (1, 28, 28), C)
    named = meta_rnn.param_spec.unflatten(meta_rnn.init_params(1, seed=0))
    fan_in = D + 2 * C + 128
    assert named["lstm_w"].std().item() == pytest.approx(fan_in ** -0.5, rel=0.02)
    assert named["lstm_w"].abs().max().item() <= 2 * fan_in ** -0.5 / 0.8796 + 1e-6  # truncated at 2 sigma
    assert not named["lstm_b"].any() and not named["out_b"].any()
    hebbian = make_learner("hebbian", (1, 28, 28), C)
    named = hebbian.param_spec.unflatten(hebbian.init_params(1, seed=0))
    assert named["out_w"].std().item() == pytest.approx((D + 2 * C) ** -0.5, rel=0.05)
    assert torch.all(named["alpha"] == 0.01) and named["eta_logit"].item() == -4.5


def feedback_stream(steps, population, batch, input_shape, classes, seed=0):
    """Random observations with plausible feedback (softmax - onehot, onehot), zeros first."""
    g = torch.Generator().manual_seed(seed)
    stream = []
    for t in range(steps):
        label = F.one_hot(torch.randint(classes, (population, batch), generator=g), classes).float()
        error = torch.softmax(3 * torch.randn(population, batch, classes, generator=g), -1) - label
        if t == 0:
            label, error = torch.zeros_like(label), torch.zeros_like(error)
        stream.append({"x": torch.randn(population, batch, *input_shape, generator=g), "error": error, "label": label})
    return stream


BATCHING_CASES = [
    ("meta_rnn", {"hidden_size": 16}),
    ("meta_rnn", {"hidden_size": 8, "use_conv": True}),
    ("hebbian", {"rule": "oja"}),
    ("hebbian", {"rule": "hebb", "use_conv": True}),
    ("fw_memory", {"hidden_size": 8, "memory_size": 4}),
    ("fw_memory", {"hidden_size": 8, "memory_size": 4, "use_conv": True}),
    ("sgd", {"num_layers": 2, "hidden_size": 6}),
    ("adam", {"use_conv": True}),
]


@pytest.mark.parametrize("name, options", BATCHING_CASES)
def test_population_batching_equals_members_one_by_one(name, options):
    shape, classes, population, batch = (1, 8, 8), 4, 3, 2
    learner = make_learner(name, shape, classes, **options)
    params = learner.init_params(population, seed=3)
    params = params + 0.1 * torch.randn(params.shape, generator=torch.Generator().manual_seed(0))
    stream = feedback_stream(6, population, batch, shape, classes)
    start = learner.initial_state(params, batch, torch.Generator().manual_seed(1))

    state, together = start, []
    for obs in stream:
        logits, state = learner.step(params, state, obs)
        together.append(logits)
    assert not together[-1].requires_grad
    for p in range(population):
        state = {k: v[p:p + 1] for k, v in start.items()}
        for obs, expected in zip(stream, together):
            logits, state = learner.step(params[p:p + 1], state, {k: v[p:p + 1] for k, v in obs.items()})
            torch.testing.assert_close(logits, expected[p:p + 1], atol=1e-5, rtol=1e-5)
    # members really differ: the comparison above is not trivially true
    assert not torch.allclose(together[-1][0], together[-1][1])


@pytest.mark.parametrize("rule", ["oja", "hebb"])
def test_hebbian_update_matches_elementwise_rule(rule):
    inputs, classes = 3, 2
    learner = make_learner("hebbian", (inputs,), classes, rule=rule)
    g = torch.Generator().manual_seed(0)
    params = learner.init_params(1, seed=0) + 0.3 * torch.randn(1, learner.num_params, generator=g)
    p = {k: v[0] for k, v in learner.param_spec.unflatten(params).items()}
    rows = inputs + 2 * classes
    fast = torch.randn(1, 1, rows, classes, generator=g)
    prev_x = torch.randn(1, 1, inputs, generator=g)
    obs = {"x": torch.randn(1, 1, inputs, generator=g), "error": torch.tensor([[[0.3, -0.3]]]),
           "label": torch.tensor([[[0.0, 1.0]]])}
    logits, state = learner.step(params, {"fast": fast, "prev_x": prev_x}, obs)

    x = torch.cat([prev_x[0, 0], obs["error"][0, 0], obs["label"][0, 0]]).tolist()
    w, alpha, b, f = p["out_w"].tolist(), p["alpha"].tolist(), p["out_b"].tolist(), fast[0, 0].tolist()
    out = [sum(x[i] * (w[i][j] + alpha[i][j] * f[i][j]) for i in range(rows)) + b[j] for j in range(classes)]
    y = [math.exp(o) / sum(math.exp(o2) for o2 in out) for o in out]
    eta = 1 / (1 + math.exp(-p["eta_logit"].item()))
    expected = [[0.0] * classes for _ in range(rows)]
    for i in range(rows):
        for j in range(classes):
            if rule == "oja":
                expected[i][j] = f[i][j] + eta * y[j] * (x[i] - y[j] * f[i][j])
            else:
                expected[i][j] = (1 - eta) * f[i][j] + eta * x[i] * y[j]
    torch.testing.assert_close(state["fast"][0, 0], torch.tensor(expected), atol=1e-6, rtol=1e-5)

    new = state["fast"][0, 0]
    predicted = obs["x"][0, 0] @ (p["out_w"][:inputs] + p["alpha"][:inputs] * new[:inputs]) + p["out_b"]
    torch.testing.assert_close(logits[0, 0], 100 * torch.tanh(predicted / 100), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(state["prev_x"], obs["x"])


@pytest.mark.parametrize("rule", ["oja", "hebb"])
def test_hebbian_first_step_leaves_fast_weights_zero(rule):
    learner = make_learner("hebbian", (1, 8, 8), 4, rule=rule)
    params = learner.init_params(2)
    state = learner.initial_state(params, 3, torch.Generator())
    _, state = learner.step(params, state, feedback_stream(1, 2, 3, (1, 8, 8), 4)[0])
    assert not state["fast"].any()


def _reference_net(learner, state):
    """torch.nn twin of a gradient learner's network with the weights of stream (0, 0);
    SAME padding for 28 -> 14 -> 7 -> 4 written out by hand."""
    layers = []
    for i, pad in enumerate([(0, 1, 0, 1), (0, 1, 0, 1), (1, 1, 1, 1)] if learner.config["use_conv"] else []):
        conv = nn.Conv2d(state[f"conv{i}_w"].shape[3], 8, 3, stride=2)
        conv.weight.data.copy_(state[f"conv{i}_w"][0, 0])
        conv.bias.data.copy_(state[f"conv{i}_b"][0, 0])
        layers += [nn.ZeroPad2d(pad), conv, nn.Tanh()]
    layers.append(nn.Flatten())
    for i in range(learner.num_layers):
        w = state[f"fc{i}_w"][0, 0]
        fc = nn.Linear(*w.shape)
        fc.weight.data.copy_(w.T)
        fc.bias.data.copy_(state[f"fc{i}_b"][0, 0])
        layers += [fc, nn.Tanh()] if i < learner.num_layers - 1 else [fc]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def mnist_stream(data_root):
    split = load_split("mnist", "test", data_root)
    index = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(0))[:40]
    return (split.images[index].float() / 255 - 0.1307) / 0.3081, split.labels[index]


@pytest.mark.parametrize("name, options, optimizer", [
    ("sgd", {}, lambda ps: torch.optim.SGD(ps, lr=1e-2)),
    ("sgd", {"num_layers": 2}, lambda ps: torch.optim.SGD(ps, lr=1e-2)),
    ("adam", {}, lambda ps: torch.optim.Adam(ps, lr=1e-3)),
    ("adam", {"num_layers": 2}, lambda ps: torch.optim.Adam(ps, lr=1e-3)),
    ("adam", {"use_conv": True}, lambda ps: torch.optim.Adam(ps, lr=1e-3)),
])
def test_gradient_learner_equals_torch_optim_online(name, options, optimizer, mnist_stream):
    images, labels = mnist_stream
    learner = make_learner(name, (1, 28, 28), C, **options)
    params = learner.init_params(1)
    state = learner.initial_state(params, 1, torch.Generator().manual_seed(0))
    net = _reference_net(learner, state)
    opt = optimizer(net.parameters())
    error = label = torch.zeros(1, 1, C)
    for t, (x, y) in enumerate(zip(images, labels)):
        logits, state = learner.step(params, state, {"x": x.view(1, 1, 1, 28, 28), "error": error, "label": label})
        out = 100 * torch.tanh(net(x[None]) / 100)
        torch.testing.assert_close(logits[0], out.detach(), atol=1e-4, rtol=1e-4, msg=lambda m: f"step {t}: {m}")
        opt.zero_grad()
        F.cross_entropy(out, y[None]).backward()
        opt.step()
        label = F.one_hot(y, C).float().view(1, 1, C)
        error = torch.softmax(logits, -1) - label


def test_gradient_learner_does_not_update_before_feedback():
    learner = make_learner("adam", (1, 8, 8), 4)
    params = learner.init_params(2)
    start = learner.initial_state(params, 3, torch.Generator().manual_seed(0))
    stream = feedback_stream(2, 2, 3, (1, 8, 8), 4)
    _, state = learner.step(params, start, stream[0])
    assert torch.equal(state["fc0_w"], start["fc0_w"]) and not state["step"].any() and state["has_prev"].all()
    _, state = learner.step(params, state, stream[1])
    assert not torch.equal(state["fc0_w"], start["fc0_w"]) and torch.all(state["step"] == 1)


def test_online_adam_learns_mnist(data_root):
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=1, split="test", episode_length=2000, data_root=str(data_root))
    learner = make_learner("adam", (1, 28, 28), C, num_layers=1, lr=1e-3)
    with torch.no_grad():
        result = rollout(learner, learner.init_params(1), env, seed=0)
    accuracy = result.correct[-500:].float().mean().item()
    print(f"online Adam, MNIST test stream, accuracy over steps 1500-2000: {accuracy:.3f}")
    assert accuracy >= 0.8


@pytest.mark.parametrize("name, options", [
    ("meta_rnn", {}), ("meta_rnn", {"hidden_size": 16, "use_conv": True}), ("hebbian", {}),
    ("hebbian", {"rule": "hebb"}), ("fw_memory", {}), ("sgd", {"num_layers": 2}), ("adam", {"use_conv": True}),
])
def test_every_learner_runs_a_vector_env_rollout(name, options, data_root):
    population, batch = 2, 3
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=population * batch, split="test", episode_length=50,
                       data_root=str(data_root), nan_check="step")  # raises on non-finite logits
    learner = make_learner(name, (1, 28, 28), C, **options)
    with torch.no_grad():
        result = rollout(learner, learner.init_params(population, seed=1), env, seed=0)
    assert result.loss.shape == (50, population, batch)
    assert torch.isfinite(result.loss).all()
    assert result.accuracy().shape == (population,)
