"""Make zoo entries from meta-training runs, and fill their cards' meta-test tables.

    python -m agents.zoo.build pack vsml@mnist --stage runs/vsml_mnist_cpu "vsml-gym train configs/..." \\
        --stage runs/vsml_mnist_cpu_14 "vsml-gym train configs/..." --summary "..." --commit abc1234
    python -m agents.zoo.build tables benchmarks/results/leaderboard/results.jsonl

A stage is a run folder of `vsml-gym train` (its best.pt, log.jsonl) and the command that made it;
the entry ships the last stage's best.pt. The card records, per stage, the resolved config, the
chosen step, the steps run, the training time and the first iterations' log lines (a test
re-runs them from the card).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any, Sequence

import yaml

from agents.registry import make_learner
from agents.training.checkpoint import load_checkpoint
from agents.training.config import current_keys
from agents.zoo import ENTRIES, load_entry, write_weights, zoo_names

FIRST_ITERATIONS = 3


class _CardDumper(yaml.SafeDumper):
    """Cards are read by people: repeated values are written out, not as YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _short_lists_inline(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    inline = all(isinstance(item, (int, float, str, bool)) and len(str(item)) < 30 for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_CardDumper.add_representer(list, _short_lists_inline)


def _dump(card: dict[str, Any]) -> str:
    return yaml.dump(card, Dumper=_CardDumper, sort_keys=False, width=110)
TABLE_METRICS = ("online@100", "acc@100", "acc@2000")


def _log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def stage_card(run: Path, command: str) -> dict[str, Any]:
    """What one meta-training stage did: config, chosen step, compute, first log lines."""
    best = load_checkpoint(run / "best.pt")
    steps = [r for r in _log(run) if "loss" in r or "fitness" in r]
    chosen = best["iteration"]
    config = current_keys(best["config"])
    tasks = [{"env": task["env"], "split": task["options"].get("split", "train"),
              **{k: v for k, v in task["options"].items() if k != "split"}} for task in config["training"]["tasks"]]
    return {"run": config["name"], "command": command, "method": config["training"]["method"], "tasks": tasks,
            "projection_fraction": config["training"]["projection_fraction"],
            "episodes_per_step": config["training"]["population_size"],
            "episode_length": config["training"]["episode_length"],
            "steps_run": steps[-1]["iteration"], "chosen_step": chosen,
            "chosen_by": {"meta_validation_mean_accuracy": round(best["selection"]["mean_accuracy"], 4),
                          "envs": best["selection"]["envs"], **config["evaluation"]},
            "training_hours_to_chosen": round(sum(r["seconds"] for r in steps if r["iteration"] <= chosen) / 3600, 3),
            "training_hours_run": round(sum(r["seconds"] for r in steps) / 3600, 3),
            "first_iterations": [{k: r[k] for k in ("iteration", "loss", "grad_norm") if k in r}
                                 for r in steps[:FIRST_ITERATIONS]],
            "config": config}


def pack(name: str, stages: Sequence[tuple[Path, str]], summary: str, commit: str, hardware: str,
         note: str = "", directory: Path = ENTRIES) -> Path:
    """Write `name`.pt (the last stage's best meta-parameters) and `name`.yaml (its card)."""
    cards = [stage_card(Path(run), command) for run, command in stages]
    best = load_checkpoint(Path(stages[-1][0]) / "best.pt")
    learner_config = best["config"]["learner"]
    first_task = best["config"]["training"]["tasks"][0]
    import gymnasium as gym

    env = gym.make(first_task["env"], **first_task["options"])
    learner = make_learner(learner_config["name"], env.observation_space["x"].shape, env.action_space.shape[0],
                           **learner_config["options"])
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.pt"
    digest = write_weights(weights, name, learner, best["params"], learner_config["options"])
    card = {"name": name, "learner": learner.name, "options": learner_config["options"],
            "num_params": learner.num_params, "weights": weights.name, "sha256": digest, "summary": summary,
            "meta_training": {"note": note, "hardware": hardware, "code_commit": commit, "python": platform.python_version(),
                              "steps": sum(c["chosen_step"] for c in cards),
                              "training_hours": round(sum(c["training_hours_to_chosen"] for c in cards), 3),
                              "stages": cards},
            "meta_test": {}}
    path = directory / f"{name}.yaml"
    path.write_text(_dump(card))
    return path


def fill_tables(results: Sequence[Path], directory: Path = ENTRIES) -> list[Path]:
    """Copy every zoo entry's leaderboard cells (records whose learner is the entry's name) into its card."""
    from agents.leaderboard import read_records

    records = read_records([str(p) for p in results])
    written = []
    for name in zoo_names(directory):
        rows = [r for r in records if r["learner"] == name]
        if not rows:
            continue
        card_path = directory / f"{name}.yaml"
        card = yaml.safe_load(card_path.read_text())
        first = rows[0]
        card["meta_test"] = {
            "protocol": f"vsml-gym benchmark, {first['split']} split, {first['runs']} seeds from {first['seed']}, "
                        f"{first['episode_length']} steps" if first.get("available") else "vsml-gym benchmark",
            "source": ", ".join(str(p) for p in results),
            "units": "% (mean, 95% interval over seeds)",
            "results": {r["env"]: ({m: [round(100 * r["metrics"][m]["mean"], 1), round(100 * r["metrics"][m]["ci95"], 1)]
                                    for m in TABLE_METRICS if m in r["metrics"]}
                                   if r["available"] else {"unavailable": r["reason"]})
                        for r in rows}}
        card_path.write_text(_dump(card))
        load_entry(name, directory)  # the card still matches its weights
        written.append(card_path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.zoo.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("pack", help="make an entry from run folders")
    make.add_argument("name", help="<learner>@<tag>")
    make.add_argument("--stage", nargs=2, action="append", required=True, metavar=("RUN_DIR", "COMMAND"))
    make.add_argument("--summary", required=True, help="one sentence: what it was meta-trained on, what it does")
    make.add_argument("--commit", required=True, help="the git commit whose code trained it")
    make.add_argument("--hardware", default=f"{platform.machine()} CPU, 1 torch thread")
    make.add_argument("--note", default="", help="anything a reader must know (a run stopped early, data caveats)")
    tables = commands.add_parser("tables", help="fill the cards' meta-test tables from results.jsonl files")
    tables.add_argument("results", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        print(pack(args.name, [(Path(r), c) for r, c in args.stage], args.summary, args.commit, args.hardware,
                   args.note))
    else:
        print("\n".join(str(p) for p in fill_tables(args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
