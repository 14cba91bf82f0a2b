"""`vsml-gym train` and `vsml-gym evaluate`: the learners' commands (an entry-point provider)."""

from __future__ import annotations

import argparse
import json

from vsml_gym.commands.table import format_table


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="meta-train a learner from a YAML experiment config",
        description="Meta-train a learner (ES with EvoTorch, or gradient descent through episodes) as described "
                    "by a YAML config (see configs/). Logs go to OUTPUT_DIR/NAME/log.jsonl, checkpoints to "
                    "OUTPUT_DIR/NAME/checkpoint.pt (written atomically).")
    train.add_argument("config", nargs="?", help="YAML experiment config (omit to use the defaults)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.population_size=128 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the run's checkpoint if there is one")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="run a meta-trained learner from a checkpoint on env ids",
        description="Meta-test the meta-parameters of a checkpoint on any env ids (test split).")
    evaluate.add_argument("checkpoint", help="a checkpoint.pt written by `vsml-gym train`")
    evaluate.add_argument("--env", dest="envs", action="append", help="env id (repeatable; default: the run's "
                                                                         "evaluation envs)")
    evaluate.add_argument("--episodes", type=int, default=8, help="independent episodes per env (default 8)")
    evaluate.add_argument("--episode-length", type=int, default=2000, help="steps per episode (default 2000)")
    evaluate.add_argument("--seed", type=int, default=22)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from agents.training import load_config, make_trainer

    config = load_config(args.config, args.overrides)
    trainer = make_trainer(config, resume=args.resume, progress=not args.quiet)
    record = trainer.run()
    print(json.dumps({"run_dir": str(config.run_dir), **record}))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from agents.training import evaluate_params, load_checkpoint

    payload = load_checkpoint(args.checkpoint)
    learner, config = payload["learner"], payload["config"]
    envs = args.envs or config["evaluation"]["envs"]
    results = evaluate_params(learner["name"], learner["options"], payload["params"], envs, args.episodes,
                              args.episode_length, args.seed, args.device, args.data_root,
                              config["evaluation"].get("options"))
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "iteration": payload["iteration"], "results": results}))
        return 0
    rows = [(env_id, f"{r['loss']:.4f}", f"{r['accuracy']:.4f}", r["episodes"]) if r["available"]
            else (env_id, "-", "-", "unavailable: " + r["reason"]) for env_id, r in results.items()]
    print(f"{learner['name']} @ iteration {payload['iteration']} ({args.checkpoint})\n")
    print(format_table(("env", "loss", "accuracy", "episodes"), rows))
    return 0
