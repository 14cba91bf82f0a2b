"""Plots of meta-training progress from `log.jsonl` files, so a run (or several compared runs) can be
judged at a glance: training loss or ES fitness, and meta-test accuracy against iterations and hours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.leaderboard.plots import save_figure, short_env_name  # importing it selects the Agg backend (files only)

import matplotlib.pyplot as plt  # noqa: E402  isort: skip
from matplotlib.figure import Figure  # noqa: E402  isort: skip
from matplotlib.ticker import MaxNLocator  # noqa: E402  isort: skip

# what each training statistic is called on the y axis, in order of preference for a log
TRAINING_METRICS = {"loss": "training loss", "fitness_mean": "fitness (population mean loss)"}
ENV_STYLES = ["-", "--", ":", "-."]
ENV_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def log_path_of(path: str | Path) -> Path:
    """The log.jsonl of a run folder, or the path itself: users point at whichever they have to hand."""
    path = Path(path)
    log = path / "log.jsonl" if path.is_dir() else path
    if not log.is_file():
        raise FileNotFoundError(f"no training log at {log} (give a log.jsonl or a run folder that holds one)")
    return log


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a training log. A half-written last line (a run writing right now) is skipped;
    an empty log is an error, since there is nothing to draw."""
    log = log_path_of(path)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # the trainer is appending this line
            raise ValueError(f"{log}:{number}: not a JSON record ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{log}:{number}: not a training-log record (a JSON object, as `vsml-gym train` writes), "
                             f"got a {type(record).__name__}")
        records.append(record)
    if not records and lines:
        raise ValueError(f"{log} holds no complete JSON record (its one line is not JSON, or cut short while being "
                         f"written): nothing to plot")
    if not records:
        raise ValueError(f"{log} is empty: no iterations logged yet, nothing to plot")
    return records


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over `window` values (fewer at the start), ignoring NaN/inf so that one diverged
    iteration does not blank out the rest of the curve."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - max(window, 1), 0)
    count = counts[end] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (sums[end] - sums[start]) / count, np.nan)


def progress_figure(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> Figure:
    """The figure of `plot_progress` for (label, records) pairs, returned so callers and tests can
    inspect what was drawn. Axes: [training metric, accuracy vs iteration, accuracy vs hours]."""
    if not runs:
        raise ValueError("no training logs to plot")
    for label, records in runs:
        if not records:
            raise ValueError(f"run {label!r} has an empty log: nothing to plot")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (train_ax, iter_ax, hour_ax) = plt.subplots(1, 3, figsize=(16, 4.2))
    metric_names: list[str] = []
    envs = list(dict.fromkeys(env for _, records in runs for r in records
                              for env, result in r.get("eval", {}).items() if result.get("available")))
    evaluated = False
    for i, (label, records) in enumerate(runs):
        colour = colours[i % len(colours)]
        metric = next((m for m in TRAINING_METRICS if any(m in r for r in records)), None)
        if metric is not None:
            if TRAINING_METRICS[metric] not in metric_names:
                metric_names.append(TRAINING_METRICS[metric])
            points = [(r["iteration"], r[metric]) for r in records if metric in r]
            steps, values = (np.asarray(column, dtype=float) for column in zip(*points))
            train_ax.plot(steps, values, color=colour, lw=0.8, alpha=0.25)
            smooth = running_mean(values, max(1, len(values) // 20))
            train_ax.plot(steps, smooth, color=colour, lw=1.6, label=f"{label} ({int(steps[-1])} it)")
        hours = np.cumsum([r.get("seconds", 0.0) for r in records]) / 3600
        evaluated = evaluated or any("eval" in r for r in records)
        for j, env in enumerate(envs):
            points = [(r["iteration"], hour, r["eval"][env]["accuracy"]) for r, hour in zip(records, hours)
                      if r.get("eval", {}).get(env, {}).get("available")]
            if not points:
                continue
            steps, at_hours, accuracy = zip(*points)
            style = {"color": colour, "ls": ENV_STYLES[j % len(ENV_STYLES)], "lw": 1.4, "ms": 3.5,
                     "marker": ENV_MARKERS[j % len(ENV_MARKERS)],
                     "label": short_env_name(env) if len(runs) == 1 else f"{label}: {short_env_name(env)}"}
            iter_ax.plot(steps, accuracy, **style)
            hour_ax.plot(at_hours, accuracy, **style)
    train_ax.set_title("Meta-training objective (running mean; raw faint)")
    train_ax.set_xlabel("iteration")
    train_ax.set_ylabel(" / ".join(metric_names) or "no training statistics logged")
    train_ax.grid(alpha=0.3)
    for ax in (train_ax, iter_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "iteration 2.5"
    if train_ax.get_legend_handles_labels()[0]:
        train_ax.legend(fontsize=8)
    for ax, title, xlabel in [(iter_ax, "Evaluation accuracy (evaluation.envs)", "iteration"),
                              (hour_ax, "Evaluation accuracy over time", "wall-clock hours of training steps")]:
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8, ncol=1 + (len(ax.get_lines()) > 6))
        else:
            ax.text(0.5, 0.5, "no meta-test env was available" if evaluated else "no evaluations yet",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
    names = ", ".join(label for label, _ in runs)
    fig.suptitle(f"Meta-training progress: {names if len(names) < 90 else f'{len(runs)} runs'}")
    fig.tight_layout()
    return fig


def plot_progress(log_paths: Sequence[Path], out: Path, labels: Sequence[str] | None = None) -> Path:
    """Draw the progress of one or more runs (log.jsonl files or run folders) into one image at `out`,
    one colour per run, labelled by run folder name unless `labels` are given. Returns `out`."""
    logs = [log_path_of(path) for path in log_paths]
    if labels is not None and len(labels) != len(logs):
        raise ValueError(f"{len(labels)} label(s) for {len(logs)} log(s): give one label per run or none")
    names = list(labels) if labels is not None else [log.resolve().parent.name for log in logs]
    figure = progress_figure([(name, read_log(log)) for name, log in zip(names, logs)])
    return save_figure(figure, Path(out))
