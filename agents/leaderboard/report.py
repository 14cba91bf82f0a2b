"""Leaderboards from benchmark records: Markdown and CSV tables, merged over result files."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

from agents.leaderboard.metrics import METRIC_HELP, METRICS
from agents.leaderboard.plots import short_env_name

LOWER_IS_BETTER = {"loss"}


def read_records(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Records of several results.jsonl files; a later (learner, env) result replaces an earlier one."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        if Path(path).is_dir():
            raise FileNotFoundError(f"{path} is a folder: give the results.jsonl file in it")
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results file {str(path)!r} (a results.jsonl that `vsml-gym benchmark` wrote)")
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not a JSON record: {error}") from None
            if not isinstance(record, dict) or not {"learner", "env", "available"} <= record.keys():
                raise ValueError(f"{path}:{number} is not a benchmark record (a JSON object with 'learner', 'env' and "
                                 f"'available' keys, as `vsml-gym benchmark` writes)")
            key = (record["learner"], record["env"])
            if key in merged:
                warnings.warn(f"{path}: a second result for {key}; keeping the later one", stacklevel=2)
            merged[key] = record
    return list(merged.values())


def _ordered(records: Sequence[dict[str, Any]], field: str) -> list[str]:
    return list(dict.fromkeys(r[field] for r in records))


def _cell(record: dict[str, Any] | None, metric: str) -> tuple[str, float | None]:
    if record is None:
        return "not run", None
    if not record["available"]:
        return f"n/a ({record.get('unavailable', 'data missing')})", None
    stats = record["metrics"].get(metric)
    if stats is None:
        return f"n/a (episode < {metric.split('@')[-1]} steps)", None
    scale = 1.0 if metric == "loss" else 100.0
    return f"{stats['mean'] * scale:.1f} ± {stats['ci95'] * scale:.1f}", stats["mean"]


def leaderboard_markdown(records: Sequence[dict[str, Any]], metric: str = "final") -> str:
    """Learners x envs, mean ± 95% CI over seeds (accuracies in %), best per env in bold."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    learners, envs = _ordered(records, "learner"), _ordered(records, "env")
    table = {(r["learner"], r["env"]): r for r in records}
    cells = {key: _cell(table.get(key), metric) for key in ((l, e) for l in learners for e in envs)}
    best = {}
    for env in envs:
        values = [v for (l, e), (_, v) in cells.items() if e == env and v is not None]
        if values:
            best[env] = min(values) if metric in LOWER_IS_BETTER else max(values)
    header = "| learner | " + " | ".join(short_env_name(e) for e in envs) + " |"
    lines = [header, "|" + " --- |" * (len(envs) + 1)]
    for learner in learners:
        row = []
        for env in envs:
            text, value = cells[(learner, env)]
            row.append(f"**{text}**" if value is not None and value == best.get(env) else text)
        lines.append(f"| {learner} | " + " | ".join(row) + " |")
    help_key = "acc@k" if metric.startswith("acc@") else metric
    lines.append("")
    splits = sorted({r.get("split", "test") for r in records})
    where = f"the {splits[0]} split" if len(splits) == 1 else f"the {' and '.join(splits)} splits"
    lines.append(f"Metric `{metric}`: {METRIC_HELP[help_key]} ({'%' if metric != 'loss' else 'nats'}; mean ± 95% CI "
                 f"over seeds), on {where}. Few-shot envs: {METRIC_HELP['query']}.")
    return "\n".join(lines)


def leaderboard_csv(records: Sequence[dict[str, Any]]) -> str:
    """Every metric of every (learner, env), one row each, numbers unrounded."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["learner", "env", "available", "metric", "mean", "std", "ci95", "low", "high", "n",
                     "episode_length"])
    for record in records:
        if not record["available"]:
            writer.writerow([record["learner"], record["env"], False, *[""] * 8])
            continue
        for metric, stats in record["metrics"].items():
            writer.writerow([record["learner"], record["env"], True, metric, stats["mean"], stats["std"],
                             stats["ci95"], stats.get("low", ""), stats.get("high", ""), stats["n"],
                             record["episode_length"]])
    return out.getvalue()
