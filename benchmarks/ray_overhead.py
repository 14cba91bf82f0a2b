"""ES step time in this process and over 1, 2, ... Ray actors, side by side in one run.

With one actor the work is the same as in this process with as many torch threads as an actor
gets (Ray gives an actor of one CPU one thread), so the difference is what distribution costs per
step (shipping the population to the actors and the fitness back, scheduling, ray.get); with more
actors the evaluation is split and that cost stays. Prints JSON:

    python benchmarks/ray_overhead.py                          # the quick config, actors 0 1 2
    python benchmarks/ray_overhead.py --config configs/vsml_mnist_cpu.yaml --set data_root=../shared/data
    python benchmarks/ray_overhead.py --actors 0 1 2 4 8 --set training.num_gpus_per_actor=1   # a GPU box
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import ray
import torch

from agents.training import QUICK_CONFIG, load_config, make_trainer, quiet_evotorch


def time_steps(config_path: str, overrides: list[str], actors: int, steps: int, warmup: int) -> dict:
    """Seconds per ES step with `actors` Ray actors (0: in this process, with torch's current
    threads), after `warmup` steps."""
    with tempfile.TemporaryDirectory() as out:
        settings = [*overrides, f"output_dir={out}", "evaluation.every=0", f"training.num_actors={actors}"]
        trainer = make_trainer(load_config(config_path, settings), progress=False)
        for _ in range(warmup):  # actors start, kernels compile, caches warm
            trainer.train_step()
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            trainer.train_step()
            seconds.append(time.perf_counter() - start)
    config = trainer.config.training
    return {"actors": actors, "threads": torch.get_num_threads() if not actors else "Ray's", "median_s": statistics.median(seconds), "min_s": min(seconds),
            "mean_s": statistics.fmean(seconds), "population": config.population_size,
            "episode_length": config.episode_length, "num_params": trainer.learner_identity["num_params"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(QUICK_CONFIG), help="experiment config (default: the quick one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--actors", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20, help="timed ES steps per actor count (default 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()],
                        help="torch threads of the in-process rows (default: 1, as an actor of one CPU, and all)")
    args = parser.parse_args()
    if any(a < 0 for a in args.actors) or args.steps < 1 or args.warmup < 0:
        parser.error("--actors must be >= 0, --steps >= 1, --warmup >= 0")

    quiet_evotorch()
    rows, all_threads = [], torch.get_num_threads()
    for actors in args.actors:
        for threads in (dict.fromkeys(args.threads) if not actors else [all_threads]):
            torch.set_num_threads(threads)
            if actors:
                ray.init(num_cpus=actors, log_to_driver=False)  # a fresh local Ray per row
            rows.append(time_steps(args.config, args.overrides, actors, args.steps, args.warmup))
            ray.shutdown()
    torch.set_num_threads(all_threads)
    single_thread = next((r["median_s"] for r in rows if r["actors"] == 0 and r["threads"] == 1), None)
    for row in rows:
        if single_thread is not None:
            row["speedup_vs_in_process_1_thread"] = single_thread / row["median_s"]
    one = next((r["median_s"] for r in rows if r["actors"] == 1), None)
    print(json.dumps({
        "benchmark": "ray_overhead", "config": args.config, "overrides": args.overrides, "steps": args.steps,
        "rows": rows,
        "distribution_overhead_s": None if one is None or single_thread is None else one - single_thread,
        "host": platform.node(), "torch_threads": torch.get_num_threads(), "ray": ray.__version__, "torch": torch.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
