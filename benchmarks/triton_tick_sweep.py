"""Milliseconds per call of the fused Triton tick (dense 784 x 10, N=16, two micro ticks) for each
matrix-product precision, with the block size autotuned per precision; prints JSON.

    python benchmarks/triton_tick_sweep.py --population 2048 --precisions ieee tf32x3

Also reports the autotuner's choice and the largest difference of each precision's states to
the exact-fp32 ("ieee") ones. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.vsml import triton_tick  # noqa: E402

INPUTS, CLASSES, N, TICKS = 784, 10, 16, 2


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

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, device="cuda", generator=g) * scale

    h, c = randn(pop, 1, INPUTS, CLASSES, N, scale=0.5), randn(pop, 1, INPUTS, CLASSES, N, scale=0.5)
    u, v, w = randn(pop, 1, INPUTS, 4 * N), randn(pop, 1, CLASSES, 4 * N), randn(pop, N, 4 * N, scale=0.25)
    exact = triton_tick.fused_dense_ticks(h, c, u, v, w, TICKS, None, "ieee")
    results = {"device_name": torch.cuda.get_device_name(), "population": pop, "ticks": TICKS, "precisions": {}}
    for precision in args.precisions:
        out = triton_tick.fused_dense_ticks(h, c, u, v, w, TICKS, None, precision)
        ms = milliseconds(lambda: triton_tick.fused_dense_ticks(h, c, u, v, w, TICKS, None, precision))
        results["precisions"][precision] = {
            "ms_per_call": round(ms, 4), "seconds_per_500_steps": round(ms / 2, 3),
            "autotuned": str(triton_tick._tuned_kernel.best_config),
            "max_diff_vs_ieee": max(float((a - b).abs().max()) for a, b in zip(out, exact))}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
