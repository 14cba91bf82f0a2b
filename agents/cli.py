"""The learners' commands of `vsml-gym` (train, evaluate, plot-runs, zoo, benchmark, leaderboard): an
entry-point provider."""

from __future__ import annotations

import argparse
import json
import sys

from vsml_gym.commands.table import format_table
from vsml_gym.plugins import add_import_option


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    add_training_commands(subparsers)
    add_zoo_command(subparsers)
    add_benchmark_commands(subparsers)


def add_zoo_command(subparsers: argparse._SubParsersAction) -> None:
    zoo = subparsers.add_parser(
        "zoo", help="list the shipped meta-trained learners (<learner>@<tag>) and their model cards",
        description="The model zoo: meta-trained learners shipped in the package. Each name works wherever a "
                    "learner name does (benchmark --learner, evaluate, learner.init_from, make_learner). A card "
                    "says what the entry was meta-trained on, the configs and commands that reproduce it, the "
                    "compute, the commit and its meta-test results.",
        epilog="example: vsml-gym benchmark --learner vsml@mnist --learner sgd --env VSML/MNIST-Online-v0")
    zoo.add_argument("name", nargs="?", help="show this entry's whole card (default: a table of all entries)")
    zoo.add_argument("--json", action="store_true", help="print the cards as JSON (all, or NAME's)")
    zoo.set_defaults(run=run_zoo)


def _trained_on(card: dict) -> str:
    envs = dict.fromkeys(task["env"].removeprefix("VSML/").removesuffix("-Online-v0")
                         for stage in card["meta_training"]["stages"] for task in stage["tasks"])
    projected = any(stage["projection_fraction"] for stage in card["meta_training"]["stages"])
    return ", ".join(envs) + (" (+ random projections)" if projected else "")


def run_zoo(args: argparse.Namespace) -> int:
    from agents.zoo import load_entry, zoo_names

    cards = [load_entry(name).card for name in ([args.name] if args.name else zoo_names())]
    if args.json:
        print(json.dumps(cards[0] if args.name else cards, indent=1))
        return 0
    if args.name:
        import yaml

        print(yaml.safe_dump(cards[0], sort_keys=False, width=110))
        return 0
    shown = ("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0", "VSML/KMNIST-Online-v0")
    rows = []
    for card in cards:
        results = card["meta_test"].get("results", {})
        cells = [f"{results[e]['online@100'][0]:.1f}" if "online@100" in results.get(e, {}) else "-" for e in shown]
        training = card["meta_training"]
        rows.append((card["name"], card["num_params"], _trained_on(card), training["steps"],
                     f"{training['training_hours']:.2f}", *cells))
    print(format_table(("entry", "params", "meta-trained on", "steps", "hours", "MNIST", "Fashion", "KMNIST"), rows))
    print("\nMNIST/Fashion/KMNIST: online@100 (%, test split) from each card; vsml-gym zoo NAME shows a whole card")
    return 0


def add_training_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="meta-train a learner from a YAML experiment config",
        description="Meta-train a learner (ES with EvoTorch, or gradient descent through episodes) as described "
                    "by a YAML config (see configs/). Logs go to OUTPUT_DIR/NAME/log.jsonl, checkpoints to "
                    "OUTPUT_DIR/NAME/checkpoint.pt (written atomically), a progress plot to "
                    "OUTPUT_DIR/NAME/progress.png (redrawn after each evaluation and at the end).")
    train.add_argument("config", nargs="?", help="YAML experiment config (see configs/; omit it for a quick CPU run: "
                                                 "a small Meta RNN learns Sum Sign in about 20 s)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.population_size=128 (repeatable)")
    train.add_argument("--resume", action="store_true",
                       help="continue from the run's checkpoint if there is one (refused if settings other than "
                            "iterations, devices, Ray actors and address, output and evaluation changed)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing run of the same name (without it, an existing run is never touched)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_import_option(train)
    train.set_defaults(run=run_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="run a meta-trained learner (a checkpoint or a zoo entry) on env ids",
        description="Meta-test the meta-parameters of a checkpoint or of a zoo entry on any env ids (test split).")
    evaluate.add_argument("checkpoint", metavar="CHECKPOINT_OR_ZOO_NAME",
                          help="a checkpoint.pt written by `vsml-gym train`, or a zoo entry such as vsml@mnist")
    evaluate.add_argument("--env", dest="envs", action="append", help="env id (repeatable; default: the run's "
                                                                         "evaluation envs; MNIST, Fashion-MNIST and "
                                                                         "KMNIST for a zoo entry)")
    evaluate.add_argument("--episodes", type=int, default=8, help="independent episodes per env (default 8)")
    evaluate.add_argument("--episode-length", type=int, default=2000, help="steps per episode (default 2000)")
    evaluate.add_argument("--seed", type=int, default=22)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_import_option(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    plot = subparsers.add_parser(
        "plot-runs", help="plot the progress of training runs from their logs",
        description="Draw the training loss (or ES fitness) and the meta-test accuracy of one or more runs, "
                    "against iterations and wall-clock hours, from their log.jsonl into one image; several "
                    "runs are compared in the same panels, one colour each. Works on a run still training.",
        epilog="example: vsml-gym plot-runs runs/vsml_mnist runs/vsml_mnist_gradient --out compare.png")
    plot.add_argument("logs", nargs="+", metavar="LOG_OR_RUN_DIR",
                      help="a log.jsonl written by `vsml-gym train`, or the run folder holding it")
    plot.add_argument("--out", required=True, metavar="FILE.png",
                      help="image to write (the suffix picks the format: .png, .pdf, .svg)")
    plot.add_argument("--label", dest="labels", action="append", metavar="NAME",
                      help="legend name of a run, once per run in order (default: the run folder names)")
    plot.set_defaults(run=run_plot_runs)


def add_benchmark_commands(subparsers: argparse._SubParsersAction) -> None:
    from agents.leaderboard.metrics import METRICS

    bench = subparsers.add_parser(
        "benchmark", help="meta-test learners on a suite of envs and write a leaderboard",
        description="Run every learner on every env (test split) for several seeds, each (learner, env) as one "
                    "batched rollout; write results.jsonl (raw, reproducible), leaderboard.md/.csv and plots.")
    bench.add_argument("--learner", dest="learners", action="append", metavar="SPEC",
                       help="learner name with options ('adam:num_layers=2'), a zoo entry ('vsml@mnist'), a "
                            "plug-in name, or a checkpoint path (repeatable; default: SGD/Adam with 1 and 2 layers and the untrained meta-learners)")
    bench.add_argument("--env", dest="envs", action="append", metavar="ID", help="env id (repeatable; default: "
                                                                                     "the meta-test suite)")
    bench.add_argument("--seeds", type=int, default=32, help="independent runs per (learner, env) (default 32)")
    bench.add_argument("--episode-length", type=int, default=2000, help="steps per run (default 2000)")
    bench.add_argument("--few-shot-episodes", type=int, default=100, help="episodes of few-shot envs (default 100)")
    bench.add_argument("--seed", type=int, default=0, help="first seed (runs use seed, seed+1, ...)")
    bench.add_argument("--split", choices=("test", "train"), default="test",
                       help="data split (default test, the protocol; train for meta-validation, e.g. choosing "
                            "checkpoints, with --seed away from the training streams)")
    bench.add_argument("--metric", choices=METRICS, help="headline metric of the table (default: final; online@100 "
                                                          "with --quick)")
    bench.add_argument("--introspect", metavar="LEARNER", action="append", default=[],
                       help="learner label whose predictions the introspection plot shows (repeatable: one panel "
                            "each, same examples; default: the first learner)")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    bench.add_argument("--out", default="runs/leaderboard", help="output folder (default runs/leaderboard)")
    bench.add_argument("--quick", action="store_true", help="a small default: the shipped vsml@mnist beside SGD, "
                                                             "Adam and untrained VSML on 4 envs, 4 seeds, 500 "
                                                             "steps, 20 few-shot episodes (about a minute)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    add_import_option(bench)
    bench.set_defaults(run=run_benchmark_command)

    board = subparsers.add_parser("leaderboard", help="merge benchmark result files into one table",
                                  description="Merge results.jsonl files (e.g. from several machines) into one "
                                              "leaderboard; a later (learner, env) result replaces an earlier one.")
    board.add_argument("results", nargs="+", help="results.jsonl files")
    board.add_argument("--metric", default="final", choices=METRICS)
    board.add_argument("--introspect", metavar="LEARNER", action="append", default=[],
                       help="learner label for the introspection plot (repeatable)")
    board.add_argument("--out", help="also write leaderboard.md/.csv, plots and the merged results.jsonl here")
    board.set_defaults(run=run_leaderboard_command)


QUICK = {"learners": ["vsml@mnist", "sgd", "adam", "vsml"], "seeds": 4, "episode_length": 500, "few_shot_episodes": 20,
         "envs": ["VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0", "VSML/SumSign-Online-v0",
                  "VSML/Omniglot-5Way1Shot-v0"]}


def run_benchmark_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agents.leaderboard import DEFAULT_LEARNERS, DEFAULT_SUITE, LearnerSpec, run_benchmark, write_outputs
    from agents.leaderboard.report import leaderboard_markdown

    if args.quick:
        args.learners = args.learners or QUICK["learners"]
        args.envs = args.envs or QUICK["envs"]
        args.seeds, args.episode_length = QUICK["seeds"], QUICK["episode_length"]
        args.few_shot_episodes = QUICK["few_shot_episodes"]
    args.metric = args.metric or ("online@100" if args.quick else "final")
    specs = [LearnerSpec.parse(text) for text in (args.learners or DEFAULT_LEARNERS)]
    _check_arguments(args, ("seeds", "episode_length", "few_shot_episodes"), args.envs or DEFAULT_SUITE)
    for spec in specs:
        spec.check()
    labels = [spec.label or spec.name for spec in specs]
    unknown = [label for label in args.introspect if label not in labels]
    if unknown:
        raise ValueError(f"--introspect {unknown[0]!r} is not one of the learners: {labels}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file: give a folder for the results")
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.write_text("")

    def append(record: dict) -> None:
        with results.open("a") as file:
            file.write(json.dumps(record) + "\n")

    records = run_benchmark(specs, args.envs or DEFAULT_SUITE, args.seeds, args.episode_length, args.seed,
                            args.device, args.data_root, args.few_shot_episodes, not args.quiet, append, args.split)
    paths = write_outputs(records, out, args.metric, args.introspect)
    print(leaderboard_markdown(records, args.metric))
    print("\nwrote " + ", ".join(str(p) for p in [results, *paths.values()]))
    return 0


def run_leaderboard_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agents.leaderboard import read_records, write_outputs
    from agents.leaderboard.report import leaderboard_markdown

    records = read_records(args.results)
    print(leaderboard_markdown(records, args.metric))
    if args.out:
        write_outputs(records, args.out, args.metric, args.introspect)
        (Path(args.out) / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from agents.training import QUICK_CONFIG, load_config, make_trainer, quiet_evotorch
    from agents.training.trainer import TrainingStopped

    if args.config is None:
        print(f"no config given: the quick CPU experiment ({QUICK_CONFIG.name}); configs/ holds the reference "
              "experiments", file=sys.stderr)
    config = load_config(args.config or QUICK_CONFIG, args.overrides)
    quiet_evotorch()
    trainer = make_trainer(config, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    try:
        record = trainer.run()
    except TrainingStopped as stopped:  # not a usage mistake: exit 1, one line
        print(f"vsml-gym train: stopped: {stopped}", file=sys.stderr)
        return 1
    print(json.dumps({"run_dir": str(config.run_dir), **record}))
    return 0


def run_plot_runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agents.training.progress_plot import plot_progress

    print(f"wrote {plot_progress([Path(p) for p in args.logs], Path(args.out), args.labels)}")
    return 0


def _check_arguments(args: argparse.Namespace, counts: tuple[str, ...], envs) -> None:
    """Flags that count something must be positive, and every env id must exist: checked before
    any work, so a mistake costs one line, not a run."""
    from agents.leaderboard.specs import parse_env
    from agents.training.config import check_env_ids
    from vsml_gym.checks import check_device

    for name in counts:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative int, got {args.seed}")
    check_env_ids([("--env", parse_env(text)[0]) for text in envs])
    check_device(args.device, "--device")


def run_evaluate(args: argparse.Namespace) -> int:
    from agents.training import evaluate_params, load_checkpoint
    from agents.zoo import is_zoo_name, load_entry

    _check_arguments(args, ("episodes", "episode_length"), args.envs or ())
    if is_zoo_name(args.checkpoint):
        entry = load_entry(args.checkpoint)
        name, options, params, env_options, iteration = entry.name, {}, entry.params, None, None
        envs = args.envs or ["VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0", "VSML/KMNIST-Online-v0"]
        title = f"{entry.name} (zoo: {entry.card['summary']})"
    else:
        payload = load_checkpoint(args.checkpoint)
        learner, config = payload["learner"], payload["config"]
        name, options, params, iteration = learner["name"], learner["options"], payload["params"], payload["iteration"]
        envs, env_options = args.envs or config["evaluation"]["envs"], config["evaluation"].get("options")
        title = f"{name} @ iteration {payload['iteration']} ({args.checkpoint})"
    results = evaluate_params(name, options, params, envs, args.episodes, args.episode_length, args.seed,
                              args.device, args.data_root, env_options)
    if args.json:
        print(json.dumps({"learner": args.checkpoint, "iteration": iteration, "results": results}))
        return 0
    rows = [(env_id, f"{r['loss']:.4f}", f"{r['accuracy']:.4f}", r["episodes"]) if r["available"]
            else (env_id, "-", "-", "unavailable: " + r["reason"].splitlines()[0]) for env_id, r in results.items()]
    print(title + "\n")
    print(format_table(("env", "loss", "accuracy", "episodes"), rows))
    return 0
