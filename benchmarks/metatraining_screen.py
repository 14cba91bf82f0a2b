"""Short meta-training runs for screening recipes: a config plus overrides, trained for a few hundred
steps, with meta-validation (train split, other seeds than training) at several input sizes, since
VSML is meta-trained small and meta-tested at 28x28.

    python benchmarks/metatraining_screen.py NAME --config configs/vsml_mnist_cpu.yaml \
        --set training.iterations=600 --set training.episode_length=50 --sizes 7 14 28

Writes one JSON record per line to OUT/NAME.jsonl: the overrides, the running mean of the
training objective every 25 steps, and {dataset: [loss, accuracy]} over `--eval-steps` examples
of `--eval-episodes` episodes every `--eval-every` steps and at the end (cumulative accuracy over
the first 100 examples with the defaults, the leaderboard's online@100). No checkpoint is
written: a recipe that wins is then run with `vsml-gym train`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training import evaluate_params, load_config, make_trainer  # noqa: E402

VALIDATION_ENVS = ("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="name of the screening run (the output file's stem)")
    parser.add_argument("--config", help="experiment config (YAML); overrides apply on top")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable), as for `vsml-gym train`")
    parser.add_argument("--sizes", type=int, nargs="+", default=[7, 28], help="input sizes to meta-validate at")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--eval-seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: two screens side by side)")
    parser.add_argument("--out", default="benchmarks/results/metatraining/screening")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = load_config(args.config, [f"name={args.name}", "evaluation.every=0", *args.overrides])
    trainer = make_trainer(config, progress=False, echo=lambda _: None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / f"{args.name}.jsonl"
    log_path.write_text("")

    def write(record: dict) -> None:
        with log_path.open("a") as log:
            log.write(json.dumps(record) + "\n")

    def validate() -> dict:
        results = {}
        for size in args.sizes:
            options = {"split": "train", **({} if size == 28 else {"resize": size})}
            found = evaluate_params(config.learner.name, config.learner.options, trainer.center().detach(),
                                    VALIDATION_ENVS, args.eval_episodes, args.eval_steps, args.eval_seed,
                                    config.training.device, config.data_root, options)
            results[str(size)] = {env.split("/")[-1].split("-")[0]: [round(r["loss"], 3), round(r["accuracy"], 3)]
                                  for env, r in found.items() if r["available"]}
        return results

    write({"config": args.config, "overrides": args.overrides, "threads": args.threads})
    start, objective = time.time(), []
    total = config.training.iterations
    while trainer.iteration < total:
        stats = trainer.train_step()
        trainer.iteration += 1
        objective.append(stats.get("loss", stats.get("fitness_mean")))
        if trainer.iteration % 25 == 0:
            write({"iteration": trainer.iteration, "seconds": round(time.time() - start),
                   "objective": round(sum(objective[-25:]) / len(objective[-25:]), 4),
                   **{k: round(v, 5) for k, v in stats.items()}})
        if trainer.iteration % args.eval_every == 0 or trainer.iteration == total:
            write({"iteration": trainer.iteration, "validation": validate()})
    write({"final": True, "seconds": round(time.time() - start)})


if __name__ == "__main__":
    main()
