"""Milliseconds per step of the fused Triton dense layer (784 x 10, N=16, two micro ticks, random
states and messages) for every (block, warps) configuration and product precision,
against the eager torch step of the same layer; prints JSON.

    python benchmarks/triton_layer_sweep.py --population 2048 --precisions ieee tf32x3

Also reports the autotuner's choice and the largest difference of the fused step's states and
messages to the eager ones. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.vsml import VSML, layers, triton_layer  # noqa: E402
from agents.vsml.sub_lstm import SubLSTMParams  # noqa: E402

INPUTS, CLASSES, TICKS = 784, 10, 2


def milliseconds(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=2048)
    parser.add_argument("--precisions", nargs="+", default=["ieee", "tf32x3"])
    args = parser.parse_args()
    pop, g = args.population, torch.Generator(device="cuda").manual_seed(0)
    learner = VSML((INPUTS,), CLASSES)
    params = learner.init_params(pop, seed=0).cuda()
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(params))
    h = torch.rand(pop, 1, INPUTS, CLASSES, 16, device="cuda", generator=g) * 2 - 1
    c = torch.randn(pop, 1, INPUTS, CLASSES, 16, device="cuda", generator=g)
    fwd, bwd = torch.randn(pop, 1, INPUTS, 1, device="cuda", generator=g), torch.randn(pop, 1, CLASSES, 1, device="cuda", generator=g)
    layer = layers.DenseLayer(INPUTS, CLASSES)

    def eager():
        layers.FUSED_KERNEL_ENABLED = False
        try:
            return layer.run(p, h, c, fwd, bwd, TICKS)
        finally:
            layers.FUSED_KERNEL_ENABLED = True

    with torch.no_grad():
        results = {"device_name": torch.cuda.get_device_name(), "population": pop, "ticks": TICKS,
                   "eager_ms_per_step": round(milliseconds(eager), 4), "precisions": {}}
        reference = eager()
        for precision in args.precisions:
            entry = results["precisions"][precision] = {"configs": {}}
            for block, warps in triton_layer.CONFIGS:
                def fused(config=(block, warps)):
                    return triton_layer.fused_dense_layer(p, h, c, fwd, bwd, TICKS, precision=precision, config=config)
                entry["configs"][f"block {block}, {warps} warps"] = round(milliseconds(fused), 4)
            out = triton_layer.fused_dense_layer(p, h, c, fwd, bwd, TICKS, precision=precision)  # autotuned
            entry["autotuned"] = str(triton_layer._tuned_kernel.best_config)
            entry["max_abs_diff_vs_eager"] = {name: float((a - b).abs().max())
                                              for name, a, b in zip(("h", "c", "fwd", "bwd"), out, reference)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
