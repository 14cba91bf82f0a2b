"""The C++ dense tick (agents/vsml/csrc/dense_layer.cpp) against the eager tick it replaces.

No skips: a machine that cannot build the extension fails here with the build error, rather
than silently testing the eager path against itself."""

import gymnasium as gym
import pytest
import torch

import vsml_gym  # noqa: F401  (registers the VSML/... ids)
from agents import rollout
from agents.vsml import VSML, cpu_ticks, layers
from agents.vsml.layers import DenseLayer
from agents.vsml.sub_lstm import SubLSTMParams
from helpers import DataEcho, online_episode_logits


@pytest.fixture(scope="module", autouse=True)
def extension():
    cpu_ticks.load_extension()  # raises the build error


def random_params(learner, population, seed=0):
    params = learner.init_params(population, seed=seed)
    return params + 0.3 * torch.randn(params.shape, generator=torch.Generator().manual_seed(seed + 100))


def dense_run(monkeypatch, kernel, layer, p, h, *args):
    monkeypatch.setattr(cpu_ticks, "ENABLED", kernel)
    with torch.no_grad():
        assert (layers._layer_kernel(h) is cpu_ticks.cpu_dense_layer) == kernel  # not eager against eager
        return layer.run(p, h, *args)


# (P, B, A, O, N): A not a multiple of 8 (ragged lane block), odd O (a single group of 8 left),
# B > 1, P > 1, N = 8 / 16 / 32 (AVX2 path) and N = 12 (scalar path)
SHAPES = [(1, 1, 784, 10, 16), (2, 3, 13, 5, 16), (3, 1, 7, 1, 8), (1, 2, 9, 3, 32), (2, 2, 5, 3, 12)]


def assert_kernel_matches_eager(monkeypatch, shape, ticks, clip, scale):
    pop, batch, num_a, num_o, n = shape
    learner = VSML((num_a,), num_o, state_size=n, coordinates=True)
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(random_params(learner, pop)))
    gen = torch.Generator().manual_seed(sum(shape) + ticks)
    h = torch.rand(pop, batch, num_a, num_o, n, generator=gen) * 2 - 1
    c = torch.randn(pop, batch, num_a, num_o, n, generator=gen)
    # large messages drive the gate pre-activations far into the sigmoids' saturation
    fwd = torch.randn(pop, batch, num_a, 8, generator=gen) * scale
    bwd = torch.randn(pop, batch, num_o, 8, generator=gen) * scale
    layer = DenseLayer(num_a, num_o)
    args = (p, h, c, fwd, bwd, ticks, (0.5, 0.1), clip)
    kernel = dense_run(monkeypatch, True, layer, *args)
    eager = dense_run(monkeypatch, False, layer, *args)
    # saturating: gate inputs reach hundreds, where float32 rounding of the input terms alone
    # (summed in another order than torch's bmm) is ~1e-5
    tolerance = 1e-5 if scale <= 1 else 1e-4
    for got, want in zip(kernel, eager):  # h, c, outgoing forward and backward messages
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("ticks", [1, 2, 3])
@pytest.mark.parametrize("clip", [None, 0.7])
@pytest.mark.parametrize("scale", [1.0, 50.0], ids=["moderate", "saturating"])
def test_kernel_equals_eager_dense_tick(monkeypatch, shape, ticks, clip, scale):
    assert_kernel_matches_eager(monkeypatch, shape, ticks, clip, scale)


def test_kernel_equals_eager_dense_tick_for_a_population_beyond_the_caches(monkeypatch):
    """Outputs beyond 1 MB take the streaming-store path; P = 24 MNIST-sized layers: states far
    beyond the caches, many items per thread."""
    assert_kernel_matches_eager(monkeypatch, (24, 1, 784, 10, 16), 2, None, 1.0)


def test_kernel_propagates_nan_and_leaves_earlier_outputs_alone():
    """NaN states stay NaN (the envs' NaN checks rely on it), and recycled output buffers never
    overwrite tensors still alive."""
    learner = VSML((9,), 3)
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(random_params(learner, 2)))
    gen = torch.Generator().manual_seed(0)
    h, c = torch.randn(2, 1, 9, 3, 16, generator=gen), torch.randn(2, 1, 9, 3, 16, generator=gen)
    fwd, bwd = torch.randn(2, 1, 9, 8, generator=gen), torch.randn(2, 1, 3, 8, generator=gen)
    h[1, 0, 4, 2, 7] = float("nan")
    h1, c1, fwd1, bwd1 = cpu_ticks.cpu_dense_layer(p, h, c, fwd, bwd, 2)
    assert torch.isnan(h1[1, 0, 4, 2]).all() and torch.isnan(c1[1, 0, 4, 2]).all()
    assert torch.isfinite(h1[0]).all() and torch.isfinite(h1[1, 0, :4]).all()
    assert torch.isnan(fwd1[1, 0, 2]).all() and torch.isnan(bwd1[1, 0, 4]).all()  # the means it entered
    assert torch.isfinite(fwd1[0]).all() and torch.isfinite(bwd1[1, 0, :4]).all()
    kept = h1.clone(), c1.clone()
    for _ in range(5):
        cpu_ticks.cpu_dense_layer(p, h, c, fwd, bwd, 2)
    torch.testing.assert_close((h1, c1), kept, equal_nan=True, atol=0, rtol=0)


def test_kernel_is_not_used_while_gradients_are_recorded():
    """It has no backward: with autograd recording, the eager tick runs."""
    learner = VSML((6,), 3)
    params = random_params(learner, 1).requires_grad_()
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(params))
    h = torch.zeros(1, 1, 6, 3, 16)
    assert layers._layer_kernel(h, p.w_h) is None
    with torch.no_grad():
        assert layers._layer_kernel(h, p.w_h) is cpu_ticks.cpu_dense_layer


@pytest.mark.parametrize("options", [{}, {"state_clip": 1.0, "layers": [{"type": "dense", "size": 5}, {"type": "dense"}]}],
                         ids=["default", "deep_clipped"])
def test_vsml_episode_gives_the_same_logits_with_and_without_the_kernel(monkeypatch, options):
    learner = VSML((1, 28, 28), 10, **options)
    params = random_params(learner, 2, seed=3)
    gen = torch.Generator().manual_seed(4)
    xs, labels = torch.randn(20, 2, 2, 1, 28, 28, generator=gen), torch.randint(0, 10, (20, 2, 2), generator=gen)
    runs = []
    for kernel in (True, False):
        monkeypatch.setattr(cpu_ticks, "ENABLED", kernel)
        runs.append(online_episode_logits(learner, params, xs, labels))
    torch.testing.assert_close(runs[0], runs[1], atol=1e-5, rtol=1e-5)


def layer_arguments(shape, seed=0):
    """Random states, messages and MNIST-style sub-LSTM parameters for one dense layer step."""
    pop, batch, num_a, num_o, n = shape
    learner = VSML((num_a,), num_o, state_size=n)
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(random_params(learner, pop, seed)))
    gen = torch.Generator().manual_seed(seed)
    h = torch.rand(pop, batch, num_a, num_o, n, generator=gen) * 2 - 1
    c = torch.randn(pop, batch, num_a, num_o, n, generator=gen)
    fwd, bwd = torch.randn(pop, batch, num_a, 1, generator=gen), torch.randn(pop, batch, num_o, 1, generator=gen)
    return p, h, c, fwd, bwd


@pytest.mark.parametrize("shape", SHAPES + [(4, 1, 784, 10, 16)], ids=lambda s: "x".join(map(str, s)))
def test_in_place_step_equals_the_step_into_fresh_buffers(shape):
    """The in-place operator (donated states) computes exactly what the other one does, into the
    tensors it was given."""
    p, h, c, fwd, bwd = layer_arguments(shape)
    fresh = cpu_ticks.cpu_dense_layer(p, h, c, fwd, bwd, 2, 0.9)
    h_own, c_own = h.clone(), c.clone()
    in_place = cpu_ticks.cpu_dense_layer(p, h_own, c_own, fwd, bwd, 2, 0.9, donated=True)
    assert in_place[0] is h_own and in_place[1] is c_own
    for got, want in zip(in_place, fresh):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_donated_states_beyond_the_in_place_limit_get_fresh_buffers(monkeypatch):
    p, h, c, fwd, bwd = layer_arguments((2, 1, 13, 5, 16))
    kept = h.clone(), c.clone()
    monkeypatch.setattr(cpu_ticks, "IN_PLACE_MAX_BYTES", h.nbytes + c.nbytes - 1)
    h1, c1, *_ = cpu_ticks.cpu_dense_layer(p, h, c, fwd, bwd, 2, donated=True)
    assert h1.data_ptr() != h.data_ptr() and c1.data_ptr() != c.data_ptr()
    torch.testing.assert_close((h, c), kept, atol=0, rtol=0)  # untouched


def test_in_place_operator_rejects_states_it_cannot_update():
    p, h, c, fwd, bwd = layer_arguments((1, 1, 9, 3, 16))
    rest = (fwd, bwd, p.w_fwd[:, :1], p.w_bwd[:, :1], p.bias, p.w_h, None, None, None, None, None, None, 2, None)
    with pytest.raises(RuntimeError, match="in place"):
        torch.ops.vsml_gym.dense_layer_(h.transpose(2, 3).contiguous().transpose(2, 3), c, *rest)
    with pytest.raises(RuntimeError, match="in place"):
        torch.ops.vsml_gym.dense_layer_(h, h, *rest)
    with pytest.raises(RuntimeError, match="float32"):
        torch.ops.vsml_gym.dense_layer_(h.double(), c.double(), *rest)
    with pytest.raises(RuntimeError, match="w_fwd"):  # two message channels, one row of the input map
        torch.ops.vsml_gym.dense_layer_(h, c, torch.cat([fwd, fwd], -1), *rest[1:])


@pytest.mark.parametrize("options", [{}, {"backward_pass": True, "layers": [{"type": "dense", "size": 5}, {"type": "dense"}]}],
                         ids=["default", "deep_backward_pass"])
@pytest.mark.parametrize("population", [1, 2])
def test_donated_vsml_steps_equal_plain_steps_and_reuse_the_states(options, population):
    learner = VSML((1, 28, 28), 10, **options)
    params = random_params(learner, population, seed=5)
    gen = torch.Generator().manual_seed(6)
    xs = torch.randn(6, population, 1, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (6, population, 1), generator=gen)
    plain = online_episode_logits(learner, params, xs, labels)
    torch.testing.assert_close(online_episode_logits(learner, params, xs, labels, donated=True), plain, atol=0, rtol=0)
    state = learner.initial_state(params, 1, torch.Generator().manual_seed(0))
    h, c = state["h0"], state["c0"]
    obs = {"x": xs[0], "error": torch.zeros(population, 1, 10), "label": torch.zeros(population, 1, 10)}
    with torch.no_grad():
        _, new = learner.step_donated(params, state, obs)
    assert new["h0"] is h and new["c0"] is c  # states of up to 4 MB are updated in place


def test_rollout_hands_each_state_over_to_the_next_step(data_root):
    """`rollout` steps with `step_donated`, each time with the state the previous step returned
    (the contract that lets VSML update its states in place)."""
    class Owner(DataEcho):
        def __init__(self, *args):
            super().__init__(*args)
            self.handed_over = []

        def initial_state(self, params, batch, generator):
            return {"t": 0}

        def step_donated(self, params, state, obs):
            self.handed_over.append(state)
            return self.step(params, state, obs)[0], {"t": state["t"] + 1}

    learner = Owner((1, 28, 28), 10)
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=2, split="test", episode_length=5, data_root=str(data_root))
    rollout(learner, learner.init_params(2), env, seed=0)
    assert [s["t"] for s in learner.handed_over] == [0, 1, 2, 3, 4]
