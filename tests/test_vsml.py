"""VSML against a naive per-sub-LSTM reference: one LSTM step per (a, b), the plain
one-linear-map-of-[input, h] formulation, loops over units and positions."""

import math

import gymnasium as gym
import pytest
import torch
import torch.nn.functional as F

import vsml_gym  # noqa: F401  (registers the environments)
from agents import make_learner, rollout
from agents.vsml import VSML, equivalent_rnn_matrix
from agents.vsml.layers import ConvLayer, DenseLayer
from agents.vsml.sub_lstm import SubLSTMParams
from agents.vsml.theorem1 import sub_rnn_update

torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------- naive reference (one member, one stream)
def naive_sub_lstm(p, fwd, bwd, coord, h, c):
    """One sub-LSTM step; p: one member's named params. Returns h, c, fwd message, bwd message."""
    inputs = torch.cat([fwd, bwd, coord, h])
    gates = inputs @ p["lstm_w"] + p["lstm_b"]
    i, g, f, o = gates.chunk(4)
    c = torch.sigmoid(f + 5) * c + torch.sigmoid(i - 5) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    messages = []
    for d in ("fwd", "bwd"):
        msg = h @ p[f"{d}_w"] + p[f"{d}_b"]
        if f"{d}_ln_scale" in p:
            msg = (msg - msg.mean()) / torch.sqrt(msg.var(unbiased=False) + 1e-5) * p[f"{d}_ln_scale"] + p[f"{d}_ln_offset"]
        messages.append(msg)
    return h, c, messages[0], messages[1]


def coordinate(a, b, num_a, num_b, coords):
    if coords is None:
        return torch.zeros(0)
    scale = lambda i, n: i / (n - 1) if n > 1 else 0.0
    return torch.tensor([scale(a, num_a), scale(b, num_b), *coords])


def naive_dense_tick(p, h, c, fwd, bwd, coords=None):
    num_a, num_b = h.shape[:2]
    h2, c2 = torch.empty_like(h), torch.empty_like(c)
    fwd_out = torch.zeros(num_b, fwd.shape[-1])
    bwd_out = torch.zeros(num_a, fwd.shape[-1])
    for a in range(num_a):
        for b in range(num_b):
            h2[a, b], c2[a, b], f_msg, b_msg = naive_sub_lstm(p, fwd[a], bwd[b], coordinate(a, b, num_a, num_b, coords),
                                                           h[a, b], c[a, b])
            fwd_out[b] += f_msg / num_a
            bwd_out[a] += b_msg / num_b
    return h2, c2, fwd_out, bwd_out


def naive_conv_tick(p, h, c, fwd, bwd, kernel, stride, coords=None):
    """fwd (Ci, H, W, M), bwd (Co, Ho, Wo, M), states (Ci*K*K, Co, N) with entries ordered (ci, ki, kj)."""
    ci_count, height, width, m = fwd.shape
    co_count, out_h, out_w, _ = bwd.shape
    pad = kernel // 2
    num_a = ci_count * kernel * kernel
    h_sum, c_sum = torch.zeros_like(h), torch.zeros_like(c)
    fwd_out = torch.zeros(co_count, out_h, out_w, m)
    bwd_out = torch.zeros(ci_count, height, width, m)
    for oy in range(out_h):
        for ox in range(out_w):
            for ci in range(ci_count):
                for ki in range(kernel):
                    for kj in range(kernel):
                        a = (ci * kernel + ki) * kernel + kj
                        y, x = oy * stride + ki - pad, ox * stride + kj - pad
                        inside = 0 <= y < height and 0 <= x < width
                        msg_in = fwd[ci, y, x] if inside else torch.zeros(m)
                        for co in range(co_count):
                            hn, cn, f_msg, b_msg = naive_sub_lstm(p, msg_in, bwd[co, oy, ox],
                                                               coordinate(a, co, num_a, co_count, coords), h[a, co], c[a, co])
                            h_sum[a, co] += hn
                            c_sum[a, co] += cn
                            fwd_out[co, oy, ox] += f_msg / num_a
                            if inside:
                                bwd_out[ci, y, x] += b_msg / co_count / kernel**2
    positions = out_h * out_w
    return h_sum / positions, c_sum / positions, fwd_out, bwd_out


def member(named, index):
    return {k: v[index] for k, v in named.items()}


def random_params(learner, population=1, seed=0):
    """Initial params plus noise so that every weight (biases, coordinates, layer norm) matters."""
    params = learner.init_params(population, seed=seed)
    return params + 0.3 * torch.randn(params.shape, generator=torch.Generator().manual_seed(seed + 100))


# ---------------------------------------------------------------- layer ticks
@pytest.mark.parametrize("layer_norm,coords", [(False, None), (True, None), (False, (0.5, 0.7)), (True, (1.0, 0.2))])
def test_dense_tick_equals_naive_loop(layer_norm, coords):
    learner = VSML((5,), 3, layer_norm=layer_norm, coordinates=coords is not None)
    named = learner.param_spec.unflatten(random_params(learner, population=2))
    p = SubLSTMParams(learner.shape, named)
    gen = torch.Generator().manual_seed(1)
    h, c = torch.randn(2, 4, 5, 3, 16, generator=gen), torch.randn(2, 4, 5, 3, 16, generator=gen)
    fwd, bwd = torch.randn(2, 4, 5, 8, generator=gen), torch.randn(2, 4, 3, 8, generator=gen)
    out = DenseLayer(5, 3).run(p, h, c, fwd, bwd, 1, coords)
    for pi in range(2):
        for bi in range(4):
            expected = naive_dense_tick(member(named, pi), h[pi, bi], c[pi, bi], fwd[pi, bi], bwd[pi, bi], coords)
            for got, want in zip(out, expected):
                torch.testing.assert_close(got[pi, bi], want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stride,layer_norm,coords,in_shape", [(1, False, None, (1, 4, 5)), (2, True, None, (2, 5, 4)),
                                                                (2, False, (0.0, 0.3), (2, 6, 6))])
def test_conv_tick_equals_naive_loop(stride, layer_norm, coords, in_shape):
    learner = VSML((5,), 3, layer_norm=layer_norm, coordinates=coords is not None)
    named = learner.param_spec.unflatten(random_params(learner))
    p = SubLSTMParams(learner.shape, named)
    layer = ConvLayer(in_shape, channels=3, kernel=3, stride=stride)
    gen = torch.Generator().manual_seed(2)
    h = torch.randn(1, 2, layer.num_in, 3, 16, generator=gen)
    c = torch.randn(1, 2, layer.num_in, 3, 16, generator=gen)
    fwd = torch.randn(1, 2, *in_shape, 8, generator=gen)
    bwd = torch.randn(1, 2, *layer.out_shape, 8, generator=gen)
    out = layer.run(p, h, c, fwd, bwd, 1, coords)
    for bi in range(2):
        expected = naive_conv_tick(member(named, 0), h[0, bi], c[0, bi], fwd[0, bi], bwd[0, bi], 3, stride, coords)
        for got, want in zip(out, expected):
            torch.testing.assert_close(got[0, bi], want, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- whole network
class NaiveVSML:
    """The network protocol written plainly for one member and one stream, on the naive ticks."""

    def __init__(self, learner: VSML, named):
        self.l, self.named = learner, named

    def prefix_params(self, prefix):
        return {k[len(prefix):]: v for k, v in self.named.items() if k.startswith(prefix) and "." not in k[len(prefix):]}

    def run(self, state, x, feedback, reverse, prefixes, t):
        l = self.l
        last = len(l.layers) - 1
        logits = None
        for i in (range(last, -1, -1) if reverse else range(last + 1)):
            layer, p = l.layers[i], self.prefix_params(prefixes[i])
            if i == 0:
                fwd = torch.cat([x.reshape(*(x.shape if isinstance(layer, ConvLayer) else (-1,)), 1),
                                 torch.zeros(*(x.shape if isinstance(layer, ConvLayer) else (x.numel(),)), 7)], -1)
            else:
                fwd = state[f"fwd_in{i}"]
            bwd = feedback if i == last else state[f"bwd_in{i}"]
            coords = (i / max(last, 1), t / l.time_scale) if l.coordinates else None
            h, c = state[f"h{i}"], state[f"c{i}"]
            for _ in range(l.num_micro_ticks):
                if isinstance(layer, DenseLayer):
                    h, c, f_out, b_out = naive_dense_tick(p, h, c, fwd.reshape(-1, 8), bwd.reshape(-1, 8), coords)
                else:
                    h, c, f_out, b_out = naive_conv_tick(p, h, c, fwd, bwd, layer.kernel, layer.stride, coords)
            state[f"h{i}"], state[f"c{i}"] = h, c
            if i > 0:
                state[f"bwd_in{i - 1}"] = b_out.reshape(*l.layers[i - 1].out_shape, 8)
            if i < last:
                state[f"fwd_in{i + 1}"] = f_out
            else:
                logits = f_out[:, l.output_idx]
        return logits

    def step(self, state, x, error, label, t):
        l = self.l
        feedback = torch.zeros(error.shape[0], 8)
        feedback[:, 0] = error
        if l.feed_label:
            feedback[:, 1] = label
        if l.backward_pass:
            if t > 0:
                self.run(state, state["prev_x"], feedback, True, l._backward_prefixes, t)
            logits = self.run(state, x, torch.zeros_like(feedback), False, l._forward_prefixes, t)
            state["prev_x"] = x
        else:
            logits = self.run(state, x, feedback, False, l._forward_prefixes, t)
        return torch.tanh(logits / 100) * 100


NETWORKS = {
    "dense": dict(),
    "dense_feed_label": dict(feed_label=True),
    "deep": dict(layers=[{"type": "dense", "size": 4}, {"type": "dense"}]),
    "deep_backward": dict(layers=[{"type": "dense", "size": 4}, {"type": "dense", "size": 3}, {"type": "dense"}],
                          backward_pass=True, feed_label=True, layerwise_rnns=True, separate_backward_rnn=True),
    "conv_backward": dict(layers=[{"type": "conv", "channels": 2, "kernel": 3, "stride": 2}, {"type": "dense"}],
                          backward_pass=True, feed_label=True, layer_norm=True),
    "coordinates": dict(layers=[{"type": "dense", "size": 3}, {"type": "dense"}], coordinates=True, num_micro_ticks=3),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_steps_equal_naive_network(name):
    input_shape = (1, 5, 4)
    learner = VSML(input_shape, 3, **NETWORKS[name])
    params = random_params(learner)
    state = learner.initial_state(params, 1, torch.Generator().manual_seed(3))
    naive_state = {k: (v[0, 0].clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    naive = NaiveVSML(learner, member(learner.param_spec.unflatten(params), 0))
    gen = torch.Generator().manual_seed(4)
    for t in range(4):
        x = torch.randn(1, 1, *input_shape, generator=gen)
        error = torch.randn(1, 1, 3, generator=gen) * (t > 0)
        label = F.one_hot(torch.randint(0, 3, (1, 1), generator=gen), 3).float() * (t > 0)
        logits, state = learner.step(params, state, {"x": x, "error": error, "label": label})
        expected = naive.step(naive_state, x[0, 0], error[0, 0], label[0, 0], t)
        torch.testing.assert_close(logits[0, 0], expected, atol=1e-5, rtol=1e-4)
    for key in ("h0", "c0"):
        torch.testing.assert_close(state[key][0, 0], naive_state[key], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["dense", "deep_backward", "conv_backward"])
def test_population_batching_equals_members_one_by_one(name):
    learner = VSML((1, 6, 6), 4, **NETWORKS[name])
    params = random_params(learner, population=3)
    gen = torch.Generator().manual_seed(5)
    batch_state = learner.initial_state(params, 2, torch.Generator().manual_seed(6))
    member_states = [{k: (v[p : p + 1].clone() if isinstance(v, torch.Tensor) else v) for k, v in batch_state.items()}
                     for p in range(3)]
    for t in range(3):
        obs = {"x": torch.randn(3, 2, 1, 6, 6, generator=gen), "error": torch.randn(3, 2, 4, generator=gen),
               "label": torch.rand(3, 2, 4, generator=gen)}
        logits, batch_state = learner.step(params, batch_state, obs)
        for p in range(3):
            alone, member_states[p] = learner.step(params[p : p + 1], member_states[p],
                                                   {k: v[p : p + 1] for k, v in obs.items()})
            torch.testing.assert_close(logits[p : p + 1], alone, atol=1e-5, rtol=1e-4)


def test_parameters_changed_in_place_are_seen_by_the_next_step():
    """The learner reuses its per-layer parameter views while `params` is unchanged; an in-place
    update (as an optimiser does) must not leave it stepping with the old values."""
    learner = VSML((6,), 3, backward_pass=True)
    params = random_params(learner, population=2)
    obs = {"x": torch.randn(2, 1, 6), "error": torch.randn(2, 1, 3), "label": torch.zeros(2, 1, 3)}
    state = learner.initial_state(params, 1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, state = learner.step(params, state, obs)
        params.mul_(1.5)
        got, _ = learner.step(params, state, obs)
        want, _ = VSML((6,), 3, backward_pass=True).step(params.clone(), state, obs)  # a fresh learner
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, learner.step(params / 1.5, state, obs)[0])


def test_batched_la_averages_the_first_half_of_the_states_over_the_batch():
    learner = VSML((4,), 2, batch_average=True, state_clip=0.5)
    params = random_params(learner)
    state = learner.initial_state(params, 5, torch.Generator().manual_seed(0))
    assert torch.equal(state["c0"][:, 0], state["c0"][:, 3])  # one learner: one initial state
    obs = {"x": torch.randn(1, 5, 4), "error": torch.randn(1, 5, 2), "label": torch.zeros(1, 5, 2)}
    _, state = learner.step(params, state, obs)
    _, state = learner.step(params, state, obs)
    first, second = state["c0"][..., :8], state["c0"][..., 8:]
    assert not torch.allclose(first[:, 0], first[:, 1])  # examples differ after their own tick ...
    assert not torch.allclose(second[:, 0], second[:, 1])
    assert float(state["c0"].abs().max()) <= 0.5  # ... and states are clipped


@pytest.mark.parametrize("feed_label", [False, True])
def test_batched_la_feeds_back_the_per_stream_error_or_the_batch_mean_losss_gradient(feed_label):
    """`batch_error`: "per_stream" feeds each stream's softmax - y as the env emits it (checked by
    hand here); "batch_mean" feeds (softmax - y) / B, the gradient of the batch-mean loss (the
    reference's form): the same step as "per_stream" given the error divided by B."""
    import gymnasium as gym

    batch = 3
    env = gym.make_vec("VSML/SumSign-Online-v0", num_envs=batch, episode_length=4, resize=2)
    env.reset(seed=0)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0]])
    obs, _, _, _, info = env.step(logits)
    onehot = torch.nn.functional.one_hot(info["label"], 2).float()
    by_hand = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True) - onehot
    torch.testing.assert_close(obs["error"], by_hand)
    obs = {key: value.unsqueeze(0) for key, value in obs.items()}  # one member, B streams

    def step(batch_error, error):
        learner = VSML((1, 2, 2), 2, batch_average=True, batch_error=batch_error, feed_label=feed_label)
        params = random_params(learner)
        state = learner.initial_state(params, batch, torch.Generator().manual_seed(1))
        return learner.step(params, state, {**obs, "error": error})

    mean_logits, mean_state = step("batch_mean", obs["error"])
    scaled_logits, scaled_state = step("per_stream", obs["error"] / batch)
    torch.testing.assert_close(mean_logits, scaled_logits)
    torch.testing.assert_close(mean_state["c0"], scaled_state["c0"])
    assert not torch.allclose(step("per_stream", obs["error"])[1]["c0"], mean_state["c0"])
    with pytest.raises(ValueError, match="needs batch_average=True"):
        VSML((4,), 2, batch_error="batch_mean")
    with pytest.raises(ValueError, match="batch_error must be one of"):
        VSML((4,), 2, batch_average=True, batch_error="mean")


# ---------------------------------------------------------------- parameters, sizes, theorem 1
def test_default_vsml_has_2384_meta_parameters_and_counts_add_up():
    counts = {
        "default": VSML((1, 28, 28), 10).num_params,
        "layer_norm": VSML((1, 28, 28), 10, layer_norm=True).num_params,
        "layerwise_3": VSML((1, 28, 28), 10, layerwise_rnns=True,
                            layers=[{"type": "dense", "size": 5}, {"type": "dense", "size": 5}, {"type": "dense"}]).num_params,
        "separate_backward": VSML((1, 28, 28), 10, backward_pass=True, separate_backward_rnn=True).num_params,
        "coordinates": VSML((1, 28, 28), 10, coordinates=True).num_params,
    }
    print("VSML meta-parameter counts:", counts)
    base = (2 * 8 + 16) * 4 * 16 + 4 * 16 + 2 * (16 * 8 + 8)
    assert base == 2384 and counts["default"] == 2384
    assert counts["layer_norm"] == base + 4 * 8
    assert counts["layerwise_3"] == 3 * base
    assert counts["separate_backward"] == 2 * base
    assert counts["coordinates"] == base + 4 * 4 * 16


def test_flatten_unflatten_round_trip_and_member_seeding():
    learner = VSML((1, 28, 28), 10, layer_norm=True)
    params = learner.init_params(3, seed=7)
    assert params.shape == (3, learner.num_params)
    assert torch.equal(learner.param_spec.flatten(learner.param_spec.unflatten(params)), params)
    assert torch.equal(params[1], learner.init_params(1, seed=8)[0])
    assert not torch.equal(params[0], params[1])


def test_same_meta_parameters_run_tasks_of_any_size():
    params = VSML((1, 28, 28), 10).init_params(1)
    for shape, classes in [((1, 28, 28), 62), ((3, 32, 32), 10), ((2,), 2)]:
        learner = VSML(shape, classes)
        state = learner.initial_state(params, 2, torch.Generator().manual_seed(0))
        logits, _ = learner.step(params, state, {"x": torch.randn(1, 2, *shape), "error": torch.zeros(1, 2, classes),
                                                 "label": torch.zeros(1, 2, classes)})
        assert logits.shape == (1, 2, classes) and torch.isfinite(logits).all()


def test_theorem1_big_matrix_equals_sub_rnn_update():
    gen = torch.Generator().manual_seed(0)
    k, n = 3, 4
    w, c = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    states = torch.randn(k, k, n, generator=gen)
    big = equivalent_rnn_matrix(w, c, k)
    assert big.shape == (k * k * n, k * k * n)
    one_rnn = torch.sigmoid(states.reshape(1, -1) @ big).reshape(k, k, n)
    torch.testing.assert_close(one_rnn, sub_rnn_update(states, w, c))
    # and the update written element by element, straight from the theorem's statement
    for a in range(k):
        for b in range(k):
            for j in range(n):
                total = sum(states[a, b, i] * w[i, j] for i in range(n))
                total += sum(states[cc, a, i] * c[i, j] for cc in range(k) for i in range(n))
                assert abs(float(torch.sigmoid(total)) - float(one_rnn[a, b, j])) < 1e-5


def test_bad_layer_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="end with a dense"):
        VSML((1, 28, 28), 10, layers=[{"type": "conv"}])
    with pytest.raises(ValueError, match="positive 'size'"):
        VSML((1, 28, 28), 10, layers=[{"type": "dense"}, {"type": "dense"}])
    with pytest.raises(ValueError, match="unknown layer type"):
        VSML((1, 28, 28), 10, layers=[{"type": "lstm"}, {"type": "dense"}])
    with pytest.raises(ValueError, match="unknown option"):
        VSML((1, 28, 28), 10, layers=[{"type": "dense", "width": 3}])


def test_untrained_vsml_runs_2000_mnist_steps_with_finite_outputs(data_root):
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=1, split="test", episode_length=2000, data_root=str(data_root))
    learner = make_learner("vsml", env.single_observation_space["x"].shape, 10)
    params = learner.init_params(1, seed=0)
    with torch.no_grad():
        result = rollout(learner, params, env, seed=0)
    assert result.loss.shape == (2000, 1, 1)
    assert torch.isfinite(result.loss).all()
    assert abs(float(result.loss.mean()) - math.log(10)) < 0.5  # untrained: about chance
