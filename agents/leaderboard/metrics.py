"""Leaderboard metrics of online learning runs, with their spread over seeds.

All metrics are computed per seed (one seed = one independent learning run) from the per-step
records, then summarised by mean, standard deviation and a 95% confidence interval (Student t).
"""

from __future__ import annotations

import base64
import math
from typing import Any, Sequence

import numpy as np

#: two-sided 95% quantiles of Student's t by degrees of freedom (standard table values)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
         29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
ACCURACY_STEPS = (100, 500, 2000)
ONLINE_WINDOW = 100
LOSS_BOUNDS = (0.0, math.inf)  # cross-entropy
METRICS = ("acc@100", "acc@500", "acc@2000", "online@100", "final", "loss")
METRIC_HELP = {
    "acc@k": "accuracy over the 10% of steps before step k (steps [0.9k, k)), averaged over seeds",
    "online@100": "cumulative (prequential) accuracy over the first 100 examples",
    "final": "accuracy over the last 10% of the episode",
    "loss": "mean cross-entropy over the episode",
    "query": "accuracy (or loss) of the scored query, one episode per seed",
}


def t_quantile(dof: int) -> float:
    if dof < 1:
        return math.nan
    if dof in _T975:
        return _T975[dof]
    larger = [d for d in _T975 if d > dof]
    return _T975[min(larger)] if larger else 1.960


def summarise(values: np.ndarray, bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, float]:
    """mean, std (ddof 1), 95% half-width and interval of per-seed values; the interval is cut
    to `bounds`, the values' range (accuracies by default: an accuracy of 101 % is no bound)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    half = t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return {"mean": mean, "std": std, "ci95": half, "low": low, "high": high, "n": n}


def window_accuracy(correct: np.ndarray, end: int) -> np.ndarray:
    """Per-seed accuracy over steps [end - end // 10, end) of correct (T, S)."""
    start = end - max(1, end // 10)
    return correct[start:end].mean(axis=0)


def run_metrics(correct: np.ndarray, loss: np.ndarray, scored: np.ndarray) -> dict[str, dict[str, float]]:
    """Metrics of S runs from correct/loss (T, S) and scored (T,). Few-shot runs (one scored
    step) report the query's accuracy and loss under every accuracy metric."""
    correct = np.asarray(correct, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    scored = np.asarray(scored, dtype=bool)
    if scored.sum() < len(scored):  # few-shot: only the query counts
        query = correct[scored].mean(axis=0)
        metrics = {name: summarise(query) for name in METRICS if name != "loss"}
        metrics["loss"] = summarise(loss[scored].mean(axis=0), LOSS_BOUNDS)
        return metrics
    steps = correct.shape[0]
    metrics: dict[str, dict[str, float]] = {}
    for k in ACCURACY_STEPS:
        if k <= steps:
            metrics[f"acc@{k}"] = summarise(window_accuracy(correct, k))
    metrics["online@100"] = summarise(correct[:ONLINE_WINDOW].mean(axis=0))
    metrics["final"] = summarise(window_accuracy(correct, steps))
    metrics["loss"] = summarise(loss.mean(axis=0), LOSS_BOUNDS)
    return metrics


def accuracy_curve(correct: np.ndarray, points: int = 100, min_window: int = 20) -> dict[str, Any]:
    """Mean accuracy (and 95% band over seeds) in consecutive windows of at least `min_window`
    steps, for learning-curve plots."""
    correct = np.asarray(correct, dtype=np.float64)
    steps = correct.shape[0]
    windows = max(1, min(points, steps // min_window))
    edges = np.unique(np.linspace(0, steps, windows + 1).astype(int))
    per_seed = np.stack([correct[a:b].mean(axis=0) for a, b in zip(edges[:-1], edges[1:])])  # (W, S)
    stats = [summarise(row) for row in per_seed]
    return {"step": [int(b) for b in edges[1:]], "mean": [s["mean"] for s in stats],
            "low": [s["low"] for s in stats], "high": [s["high"] for s in stats]}


def pack_correct(correct: np.ndarray) -> list[str]:
    """Per-seed correctness as base64 bit strings: raw results stay small but complete."""
    return [base64.b64encode(np.packbits(column).tobytes()).decode() for column in correct.T.astype(bool)]


def unpack_correct(packed: Sequence[str], steps: int) -> np.ndarray:
    columns = [np.unpackbits(np.frombuffer(base64.b64decode(p), dtype=np.uint8))[:steps] for p in packed]
    return np.stack(columns, axis=1).astype(bool)
