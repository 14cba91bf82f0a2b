"""The GPU's fused dense-layer kernel (agents/vsml/triton_layer.py), run by Triton's CPU
interpreter, against the eager layer step it replaces.

The interpreter must be switched on before Triton is imported, so the checks run in one
subprocess; it executes the kernel's program blocks one by one in numpy, which is slow but
exercises the same indexing, masking and reductions as the GPU."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path


SCRIPT = textwrap.dedent("""
    import torch
    import agents.vsml.layers as layers
    from agents.vsml import VSML, cpu_ticks
    from agents.vsml.layers import DenseLayer
    from agents.vsml.sub_lstm import SubLSTMParams
    from agents.vsml.triton_layer import fused_dense_layer
    from helpers import online_episode_logits

    cpu_ticks.ENABLED = False  # the eager path is the reference

    def layer_run(fused, layer, *args):
        layers.FUSED_KERNEL_ENABLED = fused
        with torch.no_grad():
            assert (layers._layer_kernel(*args[1:3]) is fused_dense_layer) == fused  # not eager against eager
            return layer.run(*args)

    # (P, B, A, O, channels of fwd / bwd messages, coordinates, layer norm, clip, ticks, block):
    # A not a multiple of the block (masked rows), A < block, O = 1, single-channel messages
    CASES = [(2, 3, 37, 5, 8, 8, True, False, 0.9, 2, 16), (1, 2, 37, 5, 1, 1, False, False, None, 2, 64),
             (2, 1, 9, 1, 1, 2, False, True, None, 1, 16), (1, 1, 20, 3, 8, 1, True, True, 0.5, 3, 32)]
    for pop, batch, num_a, num_o, kf, kb, coords, ln, clip, ticks, block in CASES:
        learner = VSML((num_a,), num_o, coordinates=coords, layer_norm=ln)
        gen = torch.Generator().manual_seed(num_a + kf)
        params = learner.init_params(pop) + 0.3 * torch.randn(pop, learner.num_params, generator=gen)
        p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(params))
        h, c = torch.rand(pop, batch, num_a, num_o, 16, generator=gen) * 2 - 1, torch.randn(pop, batch, num_a, num_o, 16, generator=gen)
        fwd, bwd = torch.randn(pop, batch, num_a, kf, generator=gen), torch.randn(pop, batch, num_o, kb, generator=gen)
        layer = DenseLayer(num_a, num_o)
        args = (p, h, c, fwd, bwd, ticks, (0.5, 0.1) if coords else None, clip)
        eager = layer_run(False, layer, *args)
        for config in (None, (block, 1)):  # the default block and another
            with torch.no_grad():
                u_add, v_add = (layer._a_term(p), layer._coordinate_b_term(p, (0.5, 0.1))) if coords else (None, None)
                fused = fused_dense_layer(p, h, c, fwd, bwd, ticks, clip, u_add, v_add, config=config)
            if ln:
                assert fused[2] is None and fused[3] is None
                fused = layer_run(True, layer, *args)
            for got, want in zip(fused, eager):  # h, c, outgoing forward and backward messages
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

    layers.FUSED_KERNEL_ENABLED = True
    h64 = torch.zeros(1, 1, 3, 2, 16, dtype=torch.float64)
    assert layers._layer_kernel(h64, h64) is None  # float32 only: other dtypes take the eager path

    # a whole deep VSML (hidden layer: 8-channel messages both ways) over a few steps
    learner = VSML((12,), 4, layers=[{"type": "dense", "size": 6}, {"type": "dense"}], backward_pass=True)
    params = learner.init_params(2) + 0.3 * torch.randn(2, learner.num_params, generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(8)
    xs, labels = torch.randn(4, 2, 1, 12, generator=gen), torch.randint(0, 4, (4, 2, 1), generator=gen)
    runs = []
    for fused in (True, False):
        layers.FUSED_KERNEL_ENABLED = fused
        runs.append(online_episode_logits(learner, params, xs, labels))
    torch.testing.assert_close(runs[0], runs[1], atol=1e-5, rtol=1e-5)
    print("fused == eager")
""")


def test_fused_layer_kernel_equals_eager_layer_step_in_the_interpreter():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests")])}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=root)
    assert result.returncode == 0 and "fused == eager" in result.stdout, result.stderr[-3000:]
