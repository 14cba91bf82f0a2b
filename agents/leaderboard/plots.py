"""Plots of benchmark records: learning curves, early online accuracy, and one learner's predictions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agents.leaderboard.metrics import summarise, unpack_correct  # noqa: E402
from agents.leaderboard.specs import split_env  # noqa: E402


def short_env_name(env_id: str) -> str:
    """'VSML/MNIST-Online-v0:resize=14' -> 'MNIST-Online:resize=14'."""
    head, options = split_env(env_id)
    return head.removeprefix("VSML/").removesuffix("-v0") + (":" + options if options else "")


def learner_colors(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One distinct colour per learner, the same in every panel (up to 20 learners)."""
    learners = list(dict.fromkeys(r["learner"] for r in records))
    palette = plt.get_cmap("tab10" if len(learners) <= 10 else "tab20")
    return {learner: palette(i % palette.N) for i, learner in enumerate(learners)}


def _legend(axes: np.ndarray, used: int) -> None:
    """The legend in the first unused panel (the rest switched off), else in the first panel."""
    spare = list(axes.flat)[used:]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=8, ncol=1 + len(labels) // 12)
    else:
        axes.flat[0].legend(fontsize=8)


def _curve_panels(records: Sequence[dict[str, Any]], path: Path, curve: Callable[[dict[str, Any]], tuple],
                  ylabel: str, title: str) -> Path:
    """One panel per online env, one line with its 95% band per learner: `curve(record)` gives
    (x, mean, low, high)."""
    runs = [r for r in records if r["available"] and not r["few_shot"]]
    envs = list(dict.fromkeys(r["env"] for r in runs))
    if not envs:
        raise ValueError("no learning curves to plot (only unavailable or few-shot results)")
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    colors = learner_colors(runs)
    for ax, env in zip(axes.flat, envs):
        for record in (r for r in runs if r["env"] == env):
            x, mean, low, high = curve(record)
            color = colors[record["learner"]]
            ax.plot(x, mean, label=record["learner"], lw=1.5, color=color)
            ax.fill_between(x, low, high, alpha=0.2, color=color)
        ax.set_title(short_env_name(env))
        ax.set_xlabel("examples seen")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    _legend(axes, len(envs))
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel per env: accuracy over steps per learner, with the 95% band over seeds."""
    def curve(record: dict[str, Any]) -> tuple:
        c = record["curve"]
        return c["step"], c["mean"], c["low"], c["high"]

    return _curve_panels(records, path, curve, "accuracy", "Meta-test learning curves (mean and 95% CI over seeds)")


def early_online_curves(records: Sequence[dict[str, Any]], path: Path, steps: int = 100) -> Path:
    """One panel per env: cumulative online accuracy after each of the first `steps` examples
    (online@t, t = 1..steps), mean and 95% band over seeds: who learns from the first examples."""
    def curve(record: dict[str, Any]) -> tuple:
        shown = min(steps, record["episode_length"])
        correct = unpack_correct(record["correct"], record["episode_length"])[:shown]  # (T, S)
        stats = [summarise(row) for row in np.cumsum(correct, axis=0) / np.arange(1, shown + 1)[:, None]]
        return np.arange(1, shown + 1), *([s[k] for s in stats] for k in ("mean", "low", "high"))

    return _curve_panels(records, path, curve, "online accuracy so far",
                         f"Online accuracy over the first {steps} examples (mean and 95% CI over seeds)")


def online_accuracy_bars(records: Sequence[dict[str, Any]], path: Path, metric: str = "online@100") -> Path:
    """Grouped bars: cumulative accuracy over the first 100 examples, per env and learner."""
    available = [r for r in records if r["available"]]
    envs = list(dict.fromkeys(r["env"] for r in available))
    learners = list(dict.fromkeys(r["learner"] for r in available))
    table = {(r["learner"], r["env"]): r["metrics"][metric] for r in available}
    width = 0.8 / max(len(learners), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(envs) * max(1, len(learners) / 3)), 4))
    for i, learner in enumerate(learners):
        x = np.arange(len(envs)) + i * width
        stats = [table.get((learner, env)) for env in envs]
        means = [s["mean"] if s else 0.0 for s in stats]
        errors = [s["ci95"] if s and np.isfinite(s["ci95"]) else 0.0 for s in stats]
        ax.bar(x, means, width, yerr=errors, capsize=2, label=learner)
    ax.set_xticks(np.arange(len(envs)) + 0.4 - width / 2)
    ax.set_xticklabels([short_env_name(e) for e in envs], rotation=20)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Cumulative online accuracy over the first 100 examples (few-shot: query accuracy)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


def introspection(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Learners' output probabilities over their first steps of one stream (the same examples
    for all: seed 0), one panel each, true (o) and predicted (x) class marked."""
    fig, axes = plt.subplots(len(records), 1, squeeze=False,
                             figsize=(10, sum(0.25 * len(r["introspection"]["probs"][0]) + 1.8 for r in records)))
    for ax, record in zip(axes[:, 0], records):
        probs = np.asarray(record["introspection"]["probs"])  # (T, C)
        labels = np.asarray(record["introspection"]["labels"])
        steps, classes = probs.shape
        image = ax.imshow(probs.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
                          extent=(-0.5, steps - 0.5, -0.5, classes - 0.5))
        ax.scatter(np.arange(steps), labels, s=14, facecolors="none", edgecolors="white", label="true class")
        ax.scatter(np.arange(steps), probs.argmax(axis=1), s=10, marker="x", c="red", label="predicted")
        ax.set_xlabel("step (example)")
        ax.set_ylabel("class")
        ax.set_title(f"{record['learner']} on {short_env_name(record['env'])}: output probabilities, "
                     f"first {steps} steps")
        fig.colorbar(image, ax=ax, label="probability")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def generalisation(records: Sequence[dict[str, Any]], path: Path, seen: str, unseen: str,
                   metric: str = "online@100") -> Path:
    """Per learner: `metric` on the dataset it was meta-trained on (`seen`) beside an unseen one.
    A learner that stored its training data in its meta-parameters drops; one that learned to
    learn keeps most of its accuracy (the paper's Fig. 6)."""
    table = {(r["learner"], r["env"]): r["metrics"][metric] for r in records if r["available"]}
    learners = [l for l in dict.fromkeys(r["learner"] for r in records) if (l, seen) in table and (l, unseen) in table]
    if not learners:
        raise ValueError(f"no learner has results on both {seen} and {unseen}")
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(learners) + 2), 4))
    x = np.arange(len(learners))
    for offset, env in ((-0.2, seen), (0.2, unseen)):
        stats = [table[(l, env)] for l in learners]
        ax.bar(x + offset, [s["mean"] for s in stats], 0.4, yerr=[s["ci95"] for s in stats], capsize=2,
               label=short_env_name(env))
    for i, learner in enumerate(learners):
        drop = table[(learner, seen)]["mean"] - table[(learner, unseen)]["mean"]
        ax.annotate(f"{-100 * drop:+.0f}", (i, max(table[(learner, seen)]["mean"], table[(learner, unseen)]["mean"])),
                    xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(learners, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.1)
    ax.set_title(f"{metric} on {short_env_name(seen)} and on the unseen {short_env_name(unseen)}\n"
                 "(numbers: the change, in points)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
