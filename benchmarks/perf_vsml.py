"""Examples per second of VSML on the MNIST workload, against the straightforward formulation.

    python benchmarks/perf_vsml.py --populations 1 8 32 --steps 100            # CPU
    python benchmarks/perf_vsml.py --device cuda --populations 256 1024 2048 --steps 500 \
        --implementations baseline vsml-eager vsml

Workload: one dense VSML layer 784 x 10 (N=16, M=8, 2 micro ticks), fresh states, one episode
of T online steps on MNIST test images (random inputs if the data is absent), the error of each
prediction fed back at the next step, timed `--repeats` times (the fastest episode gives
examples_per_s, the median examples_per_s_median; on the CPU each thread's effective clock is
probed before and after, benchmarks/cpu_clock.py: a shared VM's speed swings with the host's
load). Every (implementation, population) runs in its own subprocess, one after the other, so
peak memory is measured per run. Implementations: `baseline` (benchmarks/vsml_baseline.py),
`vsml` (agents.vsml as shipped: the Triton layer step of agents/vsml/triton_layer.py on CUDA,
the C++ one of agents/vsml/cpu_ticks.py on the CPU, stepped with `step_donated` as
agents.rollout does), `vsml-eager` (agents.vsml with both fused kernels switched off).
`rollout` times the whole ES evaluation instead: `agents.rollout` over the native vector env
(antithetic pairs sharing streams, so even populations only), as one reference ES step evaluates
1024 pairs x 500 examples. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.vsml import VSML  # noqa: E402
from agents.vsml.cpu_ticks import cpu_kernel_available  # noqa: E402
from benchmarks.cpu_clock import effective_ghz  # noqa: E402
from benchmarks.vsml_baseline import baseline_step  # noqa: E402

INPUTS, CLASSES, N, M, TICKS = 784, 10, 16, 8, 2


def flops_per_example(implementation: str) -> int:
    """Multiply-adds x 2 of the matrix products plus one FLOP per elementwise op, per example."""
    subs = INPUTS * CLASSES
    elementwise = subs * (4 * N * 2 + N * 10)  # gate adds + LSTM nonlinearity and products
    if implementation == "baseline":
        per_tick = 2 * subs * (2 * M + N) * 4 * N + 2 * 2 * subs * N * M + elementwise
    else:
        per_tick = 2 * subs * N * 4 * N + 2 * (INPUTS + CLASSES) * M * 4 * N + 2 * (INPUTS + CLASSES) * N * M + elementwise
    return TICKS * per_tick


def _stream(steps: int, batch: int, device: torch.device, data_root: str | None):
    try:
        from vsml_gym.data import load_split

        data = load_split("mnist", "test", data_root)
        index = torch.randint(0, len(data), (steps, batch), generator=torch.Generator().manual_seed(0))
        x = (data.images[index].float() / 255 - 0.1307) / 0.3081
        return x.flatten(2).to(device), data.labels[index].to(device), "mnist"
    except FileNotFoundError:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(steps, batch, INPUTS, generator=generator)
        return x.to(device), torch.randint(0, CLASSES, (steps, batch), generator=generator).to(device), "random"


def run_worker(implementation: str, population: int, steps: int, device_name: str, data_root: str | None,
               repeats: int = 1) -> dict:
    if implementation == "rollout":
        return run_rollout(population, steps, device_name, data_root)
    device = torch.device(device_name)
    learner = VSML((INPUTS,), CLASSES)
    params = learner.init_params(population, seed=0).to(device)
    named = learner.param_spec.unflatten(params)
    xs, ys, source = _stream(steps, population, device, data_root)

    def episode(length: int = steps) -> None:
        state = learner.initial_state(params, 1, torch.Generator(device=device).manual_seed(0))
        error = torch.zeros(population, 1, CLASSES, device=device)
        for t in range(length):
            x = xs[t].view(population, 1, INPUTS)
            if implementation == "baseline":
                logits = baseline_step(named, state, x, error)
            else:
                obs = {"x": x, "error": error, "label": torch.zeros_like(error)}
                logits, state = learner.step_donated(params, state, obs)  # as agents.rollout steps
            error = torch.softmax(logits, -1) - F.one_hot(ys[t].view(population, 1), CLASSES)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = effective_ghz if device.type == "cpu" else (lambda: None)
    with torch.no_grad():
        episode(min(steps, 10))  # warm-up (allocator, kernels)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, ghz = [], [clock()]
        for _ in range(repeats):
            start = time.perf_counter()
            episode()
            sync()
            times.append(time.perf_counter() - start)
        ghz.append(clock())
    seconds, median = min(times), statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"implementation": implementation, "population": population, "steps": steps, "seconds": round(seconds, 4),
            "examples_per_s": round(population * steps / seconds, 1),
            "examples_per_s_median": round(population * steps / median, 1), "repeats": repeats,
            "peak_memory_mb": round(peak / 2**20, 1),
            "peak_memory_kind": "cuda allocated" if device.type == "cuda" else "process max RSS",
            "flops_per_example": flops_per_example(implementation), "data": source,
            "cpu_kernel": device.type == "cpu" and implementation != "baseline" and cpu_kernel_available(),
            "cpu_ghz_before_after": ghz if device.type == "cpu" else None}


def run_rollout(population: int, steps: int, device_name: str, data_root: str | None) -> dict:
    """One ES evaluation: every member one episode on its own stream, antithetic pairs sharing one."""
    import gymnasium as gym

    import vsml_gym  # noqa: F401
    from agents import rollout

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=population, envs_per_stream=2, device=device,
                       split="test", episode_length=steps, data_root=data_root, nan_check="episode")
    learner = VSML((1, 28, 28), CLASSES)
    params = learner.init_params(population, seed=0).to(device)
    with torch.no_grad():
        warm = gym.make_vec("VSML/MNIST-Online-v0", num_envs=population, device=device, split="test",
                            episode_length=10, data_root=data_root)
        rollout(learner, params, warm, seed=1)
        sync()
        start = time.perf_counter()
        fitness = rollout(learner, params, env, seed=0).mean_loss()
        float(fitness.mean())  # the one host sync of the evaluation
        seconds = time.perf_counter() - start
    return {"implementation": "rollout", "population": population, "steps": steps, "seconds": round(seconds, 3),
            "examples_per_s": round(population * steps / seconds, 1),
            "what": "agents.rollout of VSML over the native vector env (antithetic pairs share streams)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--steps", type=int, default=100, help="episode length T")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--implementations", nargs="+", default=["baseline", "vsml"],
                        choices=["baseline", "vsml-eager", "vsml", "rollout"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--repeats", type=int, default=3,
                        help="episodes timed per run; examples_per_s is the fastest, examples_per_s_median the median "
                             "(shared machines drift by tens of percent between episodes)")
    parser.add_argument("--worker", nargs=2, metavar=("IMPLEMENTATION", "POPULATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "rollout" in args.implementations and any(p % 2 for p in args.populations):
        parser.error("the rollout runs antithetic pairs: its populations must be even")

    if args.worker:
        print(json.dumps(run_worker(args.worker[0], int(args.worker[1]), args.steps, args.device, args.data_root,
                                    args.repeats)))
        return
    runs = []
    for population in args.populations:
        pair = {}
        for implementation in args.implementations:
            command = [sys.executable, __file__, "--worker", implementation, str(population), "--steps", str(args.steps),
                       "--device", args.device, "--repeats", str(args.repeats)] + (["--data-root", args.data_root] if args.data_root else [])
            fused = "0" if implementation == "vsml-eager" else "1"
            env = {**os.environ, "VSML_GYM_FUSED_KERNEL": fused, "VSML_GYM_CPU_KERNEL": fused}
            result = subprocess.run(command, capture_output=True, text=True, env=env)
            if result.returncode:
                runs.append({"implementation": implementation, "population": population, "error": result.stderr[-2000:]})
                print(f"{implementation:8s} P={population:5d}: FAILED\n{result.stderr[-2000:]}", file=sys.stderr)
                continue
            pair[implementation] = json.loads(result.stdout.strip().splitlines()[-1])
            runs.append(pair[implementation])
            clock = pair[implementation].get("cpu_ghz_before_after")
            print(f"{implementation:8s} P={population:5d}: {pair[implementation]['examples_per_s']:10.1f} examples/s"
                  + (f"  (threads' clock before/after: {clock} GHz)" if clock else ""), file=sys.stderr)
        if "baseline" in pair:
            runs.append({"population": population, **{
                f"speedup_{name}_vs_baseline": round(run["examples_per_s"] / pair["baseline"]["examples_per_s"], 2)
                for name, run in pair.items() if name != "baseline"}})
    print(json.dumps({
        "benchmark": "perf_vsml", "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "workload": "dense 784x10, N=16, M=8, 2 micro ticks",
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
