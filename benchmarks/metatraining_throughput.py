"""Throughput of VSML meta-training at one recipe: the ES forward rollout against the gradient
trainer's forward + backward through the episode, side by side in one run.

    python benchmarks/metatraining_throughput.py                                   # the CPU recipe
    python benchmarks/metatraining_throughput.py --config configs/vsml_mnist_gradient.yaml \
        --device cuda --es-population 2048 --set training.population_size=128

Both measure the trainers' own code path, built from an experiment config as `vsml-gym train`
builds it (`--config`, `--set key=value` overrides): the learner and its options, the first task
of `training.tasks` with its options (without projection), `training.episode_length`,
`training.streams_per_member`, `training.fitness`, `training.truncation`.

- forward_es: `PopulationEvaluator.fitness` (no grad), as EvoTorch evaluates an ES population:
  `--es-population` members (perturbed around the learner's initial meta-parameters, antithetic
  pairs sharing their stream seeds when the config's searcher is antithetic), `streams_per_member` streams each, through the native
  vector env (on the CPU the learner steps with the C++ kernel, when it builds). One ES step
  evaluates es_population x streams_per_member x episode_length examples.
- gradient: one batch of `GradientTrainer.train_step`: `training.population_size` streams of one
  member (one member per stream for a learner that pools its streams), autograd through the whole
  episode (truncated every `training.truncation` steps if set; the fused kernels have no
  backward, so the learner steps eagerly), timed as forward-with-graph seconds and backward +
  update (gradient clipping, Adam) seconds. One gradient step = population_size x
  episode_length examples.

Each phase runs one short warm-up episode, then `--repeats` timed episodes (the env is built
inside every episode, as the trainers do); examples_per_s is the fastest repeat,
examples_per_s_median the median, and the derived steps per hour and the gradient/forward cost
ratio use the medians. On the CPU each thread's effective clock is probed before and after
(benchmarks/cpu_clock.py): a shared VM's speed swings with the host's load. With a task mixture
the trainers split the batch by task, which this benchmark does not: it times the first task.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vsml_gym  # noqa: E402
from agents.training import ExperimentConfig, load_config  # noqa: E402
from agents.training.population import PopulationEvaluator  # noqa: E402
from agents.training.searchers import is_antithetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "vsml_mnist_cpu.yaml"
WARMUP_STEPS = 5


class Timer:
    """Wall-clock seconds with the device synchronised on both ends, and the phase's peak memory."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        self.sync()
        return time.perf_counter()

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float:
        peak = (torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return round(peak / 2**20, 1)


def _short(config: ExperimentConfig) -> ExperimentConfig:
    """The same experiment with a few-step episode, for warm-up (allocator, kernel build, data)."""
    warm = copy.deepcopy(config)
    warm.training.episode_length = min(WARMUP_STEPS, config.training.episode_length)
    return warm


def _rates(examples: int, totals: list[float]) -> dict:
    return {"examples_per_s": round(examples / min(totals), 1),
            "examples_per_s_median": round(examples / statistics.median(totals), 1)}


def _first_task_only(config: ExperimentConfig, device: torch.device) -> ExperimentConfig:
    """The experiment on its first task, without projections, on `device`: one timed workload."""
    config = copy.deepcopy(config)
    config.training.device = str(device)
    config.training.tasks = config.training.tasks[:1]
    config.training.projection_fraction = 0.0
    return config


def measure_forward(config: ExperimentConfig, population: int, repeats: int, device: torch.device) -> dict:
    """`PopulationEvaluator.fitness` of one population (what EvoTorch calls), first task."""
    config = _first_task_only(config, device)
    t = config.training
    evaluator, warm = PopulationEvaluator(config), PopulationEvaluator(_short(config))
    learner = evaluator.learner_for(evaluator.task_shape(t.tasks[0]))
    antithetic = is_antithetic(t.searcher, t.searcher_options)
    center = learner.init_params(1, seed=config.seed)
    noise = 0.05 * torch.randn(population // 2 if antithetic else population, center.shape[1],
                               generator=torch.Generator().manual_seed(config.seed))
    values = (torch.stack([center + noise, center - noise], dim=1).flatten(0, 1) if antithetic
              else center + noise).to(device)
    timer = Timer(device)

    def episode(on: PopulationEvaluator) -> tuple[int, float]:
        start = timer.now()
        float(on.fitness(values, antithetic, device).mean())  # the host reads the fitness, as EvoTorch does
        return population * t.streams_per_member * on.config.training.episode_length, timer.now() - start

    episode(warm)
    timer.reset_peak()
    seconds, examples = [], 0
    for _ in range(repeats):
        examples, elapsed = episode(evaluator)
        seconds.append(elapsed)
    median = statistics.median(seconds)
    step_examples = population * t.streams_per_member * t.episode_length
    return {
        "population": population, "streams_per_member": t.streams_per_member, "episode_length": t.episode_length,
        "antithetic": antithetic, "examples_per_episode": examples, "seconds": [round(s, 4) for s in seconds],
        "seconds_median": round(median, 4), **_rates(examples, seconds),
        "examples_per_es_step": step_examples,
        "es_steps_per_hour": round(3600 * (examples / median) / step_examples, 2),
        "es_steps_per_hour_formula": "3600 * examples_per_s_median / (population * streams_per_member * "
                                     "episode_length)",
        "peak_memory_mb": timer.peak_mb(),
    }


def measure_gradient(config: ExperimentConfig, repeats: int, device: torch.device) -> dict:
    """Gradient steps of `GradientTrainer` itself (first task, no projection): its batch loss
    (the forward with the graph), then its update (backward, clipping, Adam), timed apart."""
    from agents.training.gradient import GradientTrainer

    config = _first_task_only(config, device)
    t = config.training
    trainer, warm = (GradientTrainer(c, progress=False) for c in (config, _short(config)))
    timer = Timer(device)

    def step(on: GradientTrainer, iteration: int) -> tuple[int, float, float]:
        start = timer.now()
        loss = on.batch_loss(iteration)
        forward_done = timer.now()
        on.update(loss)
        return t.population_size * on.config.training.episode_length, forward_done - start, timer.now() - forward_done

    step(warm, 0)
    timer.reset_peak()
    runs, examples = [], 0
    for repeat in range(repeats):
        examples, *phases = step(trainer, repeat + 1)
        runs.append(phases)
    totals = [sum(run) for run in runs]
    forward, backward = (statistics.median(run[i] for run in runs) for i in range(2))
    median = statistics.median(totals)
    return {
        "batch_streams": t.population_size, "members": t.population_size if trainer.learner.pools_streams else 1,
        "episode_length": t.episode_length, "truncation": t.truncation, "examples_per_episode": examples,
        "forward_with_graph_seconds": [round(r[0], 4) for r in runs],
        "backward_and_update_seconds": [round(r[1], 4) for r in runs],
        "forward_with_graph_seconds_median": round(forward, 4),
        "backward_and_update_seconds_median": round(backward, 4), "seconds_median": round(median, 4),
        "backward_over_forward": round(backward / forward, 2), **_rates(examples, totals),
        "forward_with_graph_examples_per_s_median": round(examples / forward, 1),
        "gradient_steps_per_hour": round(3600 / median, 2),
        "peak_memory_mb": timer.peak_mb(),
    }


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def _kernel(device: torch.device) -> str:
    if device.type == "cpu":
        from agents.vsml.cpu_ticks import cpu_kernel_available

        return "C++ CPU kernel" if cpu_kernel_available() else "eager (the C++ kernel is off or did not build)"
    from agents.vsml.layers import FUSED_KERNEL_ENABLED

    return "Triton kernel" if FUSED_KERNEL_ENABLED else "eager (VSML_GYM_FUSED_KERNEL=0)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None,
                        required=not DEFAULT_CONFIG.exists(),
                        help="experiment config (YAML) that sets the recipe"
                             + (f" (default: {DEFAULT_CONFIG.relative_to(ROOT)})" if DEFAULT_CONFIG.exists() else ""))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.episode_length=100 (repeatable)")
    parser.add_argument("--es-population", type=int, default=64,
                        help="ES members evaluated in one rollout (even for an antithetic searcher; default 64)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed episodes per phase, after one warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: all cores this process may use)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="device of the learners and envs (default: the config's training.device)")
    parser.add_argument("--skip", choices=["forward", "gradient"], action="append", default=[],
                        help="leave a phase out (repeatable)")
    args = parser.parse_args(argv)

    config = load_config(args.config, args.overrides)
    if args.device:
        config.training.device = args.device
    device = torch.device(config.training.device)
    t = config.training
    if args.es_population < 1 or args.repeats < 1:
        parser.error("--es-population and --repeats must be positive")
    if "forward" not in args.skip and is_antithetic(t.searcher, t.searcher_options) and args.es_population % 2:
        parser.error(f"the searcher {t.searcher!r} samples antithetic pairs: --es-population must be even")
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)

    clock: Callable[[], list[float] | None] = lambda: None  # noqa: E731
    if device.type == "cpu":
        from benchmarks.cpu_clock import effective_ghz

        clock = effective_ghz
    ghz = [clock()]
    forward = None if "forward" in args.skip else measure_forward(config, args.es_population, args.repeats, device)
    if forward:
        print(f"forward_es: {forward['examples_per_s_median']:.1f} examples/s (median), "
              f"{forward['es_steps_per_hour']} ES steps/h", file=sys.stderr)
    gradient = None if "gradient" in args.skip else measure_gradient(config, args.repeats, device)
    if gradient:
        print(f"gradient: {gradient['examples_per_s_median']:.1f} examples/s (median), "
              f"{gradient['gradient_steps_per_hour']} gradient steps/h", file=sys.stderr)
    ghz.append(clock())

    import gymnasium

    report = {
        "benchmark": "metatraining_throughput",
        "config": args.config, "overrides": args.overrides,
        "recipe": {"learner": config.learner.name, "learner_options": config.learner.options,
                   "task": config.training.tasks[0].env, "task_options": config.training.tasks[0].options,
                   "episode_length": t.episode_length, "fitness": t.fitness, "searcher": t.searcher,
                   "gradient_population_size": t.population_size, "data_root": config.data_root},
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "peak_memory_kind": "cuda allocated, per phase" if device.type == "cuda" else "process max RSS so far",
        "forward_kernel": _kernel(device), "gradient_kernel": "eager (the fused kernels have no backward)",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "cpu_ghz_before_after": ghz if device.type == "cpu" else None,
        "load_average": os.getloadavg(),
        "repeats": args.repeats,
        "forward_es": forward,
        "gradient": gradient,
        "gradient_over_forward_cost_per_example": (
            round(forward["examples_per_s_median"] / gradient["examples_per_s_median"], 2)
            if forward and gradient else None),
        "cost_ratio_formula": "forward_es.examples_per_s_median / gradient.examples_per_s_median",
        "python": platform.python_version(), "torch": torch.__version__, "gymnasium": gymnasium.__version__,
        "vsml_gym": vsml_gym.__version__, "commit": _commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
