"""The leaderboard: a standard meta-test protocol over learners x envs x seeds, with metrics,
tables and plots that people can compare and cite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from agents.leaderboard import plots
from agents.zoo import is_zoo_name
from agents.leaderboard.report import leaderboard_csv, leaderboard_markdown, read_records
from agents.leaderboard.runner import DEFAULT_LEARNERS, DEFAULT_SUITE, LearnerSpec, run_benchmark


GENERALISATION = ("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0")  # meta-trained on, unseen


def write_outputs(records: Sequence[dict[str, Any]], out_dir: str | Path, metric: str = "final",
                  introspect: Sequence[str] = ()) -> dict[str, Path]:
    """leaderboard.md/.csv and the plots in out_dir: learning curves, online accuracy over the
    first 100 examples (curves and bars), the introspection of the `introspect` learners (default: the first) on one
    env, and MNIST vs Fashion-MNIST when both were run (of the meta-trained learners, if any)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv"}
    paths["markdown"].write_text(leaderboard_markdown(records, metric) + "\n")
    paths["csv"].write_text(leaderboard_csv(records))
    available = [r for r in records if r["available"]]
    if any(not r["few_shot"] for r in available):
        paths["curves"] = plots.learning_curves(records, out / "plots" / "learning_curves.png")
        paths["first_100"] = plots.early_online_curves(records, out / "plots" / "first_100.png")
    if available:
        paths["online"] = plots.online_accuracy_bars(records, out / "plots" / "online_accuracy.png")
        paths["introspection"] = plots.introspection(_introspected(available, introspect),
                                                     out / "plots" / "introspection.png")
    envs = {r["env"] for r in available}
    if set(GENERALISATION) <= envs:
        meta_trained = [r for r in records if is_zoo_name(r["spec"]["name"]) or r["spec"].get("checkpoint")]
        paths["generalisation"] = plots.generalisation(meta_trained or records,
                                                       out / "plots" / "generalisation.png", *GENERALISATION)
    return paths


def _introspected(available: Sequence[dict[str, Any]], learners: Sequence[str]) -> list[dict[str, Any]]:
    """The records of `learners` on the first (online) env that all of them ran."""
    online = [r for r in available if not r["few_shot"]] or list(available)
    learners = [l for l in learners if any(r["learner"] == l for r in online)] or [online[0]["learner"]]
    for env in dict.fromkeys(r["env"] for r in online):
        chosen = {r["learner"]: r for r in online if r["env"] == env and r["learner"] in learners}
        if len(chosen) == len(learners):
            return [chosen[l] for l in learners]
    return [next(r for r in online if r["learner"] == learners[0])]


__all__ = ["DEFAULT_LEARNERS", "DEFAULT_SUITE", "LearnerSpec", "leaderboard_csv", "leaderboard_markdown",
           "read_records", "run_benchmark", "write_outputs"]
