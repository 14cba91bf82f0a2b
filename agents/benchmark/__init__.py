"""The leaderboard: a standard meta-test protocol over learners x envs x seeds, with metrics,
tables and plots that people can compare and cite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from agents.benchmark import plots
from agents.benchmark.report import leaderboard_csv, leaderboard_markdown, read_records
from agents.benchmark.runner import DEFAULT_LEARNERS, DEFAULT_SUITE, LearnerSpec, run_benchmark


def write_outputs(records: Sequence[dict[str, Any]], out_dir: str | Path, metric: str = "final",
                  introspect: str | None = None) -> dict[str, Path]:
    """leaderboard.md/.csv and the plots (learning curves, online accuracy, introspection) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv"}
    paths["markdown"].write_text(leaderboard_markdown(records, metric) + "\n")
    paths["csv"].write_text(leaderboard_csv(records))
    available = [r for r in records if r["available"]]
    if any(not r["few_shot"] for r in available):
        paths["curves"] = plots.learning_curves(records, out / "plots" / "learning_curves.png")
    if available:
        paths["online"] = plots.online_accuracy_bars(records, out / "plots" / "online_accuracy.png")
        chosen = [r for r in available if introspect in (None, r["learner"]) and not r["few_shot"]] or available
        paths["introspection"] = plots.introspection(chosen[0], out / "plots" / "introspection.png")
    return paths


__all__ = ["DEFAULT_LEARNERS", "DEFAULT_SUITE", "LearnerSpec", "leaderboard_csv", "leaderboard_markdown",
           "read_records", "run_benchmark", "write_outputs"]
