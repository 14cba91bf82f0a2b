"""Side-by-side timing of variants of the C++ dense-layer kernel, in one process; prints JSON.

    python benchmarks/cpu_kernel_ab.py shipped=agents/vsml/csrc/dense_layer.cpp \\
        rcp=/tmp/rcp.cpp --population 32 --rounds 8

Each NAME=SOURCE is built under its own operator namespace (so all load side by side) and
runs MNIST-sized layer steps (784 x 10, N=16, two micro ticks, single-channel messages) from
the same random states, each step's new states the next one's inputs as in an episode (so
cache effects between steps count). Rounds alternate between the variants, so the drift of a shared
machine hits them alike; the fastest round of each is compared with the first variant's. Also
reports each variant's largest difference to the first one's outputs. A tool for kernel work:
edit a copy of the source, measure, keep what wins. `--in-place NAME ...` steps those variants
with their in-place operator `dense_layer_` (states handed over, as `step_donated` does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.vsml import VSML  # noqa: E402
from agents.vsml.cpu_ticks import build_directory, compile_and_load  # noqa: E402
from agents.vsml.sub_lstm import SubLSTMParams, message_rows  # noqa: E402

INPUTS, CLASSES, TICKS = 784, 10, 2


def load_variant(name: str, source: Path, in_place: bool = False):
    """Builds `source` with its operators registered as torch.ops.ab_<name> and returns its layer
    step as a function of the same arguments returning (h, c, forward, backward) messages."""
    text = source.read_text()
    if "TORCH_LIBRARY(vsml_gym," not in text:
        raise SystemExit(f"{source} does not register TORCH_LIBRARY(vsml_gym, ...)")
    directory = build_directory() / f"ab_{name}"
    directory.mkdir(parents=True, exist_ok=True)
    renamed = directory / f"ab_{name}.cpp"
    renamed.write_text(text.replace("TORCH_LIBRARY(vsml_gym,", f"TORCH_LIBRARY(ab_{name},"))
    compile_and_load(f"ab_{name}", renamed, directory)
    ops = getattr(torch.ops, f"ab_{name}")
    if not in_place:
        return ops.dense_layer

    def step_in_place(h, c, *rest):
        return (h, c, *ops.dense_layer_(h, c, *rest))

    return step_in_place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", metavar="NAME=SOURCE", help="kernel sources to compare (first: reference)")
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds per variant")
    parser.add_argument("--calls", type=int, default=5, help="layer steps per round")
    parser.add_argument("--in-place", nargs="+", default=[], metavar="NAME",
                        help="variants stepped in place (their source must register dense_layer_)")
    args = parser.parse_args()
    ops = {}
    for spec in args.variants:
        name, _, source = spec.partition("=")
        if not name.isidentifier() or not source:
            parser.error(f"expected NAME=SOURCE with NAME an identifier, got {spec!r}")
        ops[name] = load_variant(name, Path(source), name in args.in_place)
    if set(args.in_place) - set(ops):
        parser.error(f"--in-place names no variant: {sorted(set(args.in_place) - set(ops))}")

    pop = args.population
    learner = VSML((INPUTS,), CLASSES)
    p = SubLSTMParams(learner.shape, learner.param_spec.unflatten(learner.init_params(pop, seed=0)))
    gen = torch.Generator().manual_seed(0)
    h = torch.rand(pop, 1, INPUTS, CLASSES, 16, generator=gen) * 2 - 1
    c = torch.randn(pop, 1, INPUTS, CLASSES, 16, generator=gen)
    fwd, bwd = torch.randn(pop, 1, INPUTS, 1, generator=gen), torch.randn(pop, 1, CLASSES, 1, generator=gen)

    def step(op, states):
        h, c = states
        return op(h, c, fwd, bwd, message_rows(p.w_fwd, fwd), message_rows(p.w_bwd, bwd), p.bias, p.w_h, None, None,
                  p.fwd_w, p.fwd_b, p.bwd_w, p.bwd_b, TICKS, None)

    first_outputs = {name: step(op, (h.clone(), c.clone())) for name, op in ops.items()}  # variants may update in place
    reference = next(iter(first_outputs.values()))
    differences = {name: max(float((a - b).abs().max()) for a, b in zip(outputs, reference))
                   for name, outputs in first_outputs.items()}  # before in-place variants overwrite their states
    states = {name: out[:2] for name, out in first_outputs.items()}  # each variant its own episode
    seconds = {name: [] for name in ops}
    for _ in range(args.rounds):
        for name, op in ops.items():
            start = time.perf_counter()
            for _ in range(args.calls):  # as in an episode, the new states are the next step's
                states[name] = step(op, states[name])[:2]
            seconds[name].append((time.perf_counter() - start) / args.calls)
    first = min(seconds[next(iter(ops))])
    print(json.dumps({"population": pop, "threads": torch.get_num_threads(), "rounds": args.rounds, "variants": {
        name: {"ms_fastest": round(1e3 * min(s), 3), "ms_median": round(1e3 * statistics.median(s), 3),
               "speed_vs_first": round(first / min(s), 3), "kernel_examples_per_s": round(pop / min(s), 1),
               "max_abs_diff_vs_first": differences[name]}
        for name, s in seconds.items()}}, indent=2))


if __name__ == "__main__":
    main()
