"""`vsml-gym clone`: train a cloned-backprop sub-LSTM (an entry-point provider of vsml_gym.commands)."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    clone = subparsers.add_parser(
        "clone", help="train a VSML sub-LSTM to implement online backprop (learning-algorithm cloning)",
        description="Fit the sub-LSTM meta-parameters by gradient descent (from a hand-built start) so that a VSML "
                    "layer implements a dense layer trained by online backprop: stage 1 on random data, then stage 2, "
                    "the curriculum for deep networks (whole cloned networks learning random tasks, hidden errors "
                    "first from ground-truth backprop, then the clone's own). Prints the errors on fresh random data "
                    "and in deep networks, and writes a checkpoint usable with `vsml_cloned:checkpoint=PATH`.")
    clone.add_argument("--steps", type=int, default=500, help="gradient steps (default 500)")
    clone.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of the fit (default 1e-4)")
    clone.add_argument("--batch", type=int, default=512, help="learners per step (default 512)")
    clone.add_argument("--clone-lr", type=float, default=2.0, help="learning rate of the cloned backprop (default 2)")
    clone.add_argument("--clone-bias-lr", type=float, default=0.05, help="its bias learning rate (default 0.05)")
    clone.add_argument("--backward", choices=("exact", "spec"), default="exact",
                       help="backward message e*w*tanh'(x) (exact backprop, default) or e*w (SPEC 6)")
    clone.add_argument("--deep-steps", type=int, default=800,
                       help="stage-2 steps, one example of every network each (default 800; 0 skips stage 2)")
    clone.add_argument("--deep-lr", type=float, default=3e-4, help="Adam learning rate of stage 2 (default 3e-4)")
    clone.add_argument("--deep-sizes", type=int, nargs="+", default=[32, 16, 10], metavar="SIZE",
                       help="layer sizes of the stage-2 networks: inputs, hidden..., classes (default 32 16 10)")
    clone.add_argument("--seed", type=int, default=0)
    clone.add_argument("--out", default="cloned_backprop.pt", help="checkpoint path (default ./cloned_backprop.pt)")
    clone.add_argument("--quiet", action="store_true", help="no progress bar")
    clone.set_defaults(run=run_clone)


def run_clone(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from agents.cloning.curriculum import DeepConfig, evaluate_deep, train_deep
    from agents.cloning.targets import CloneTargets
    from agents.cloning.train import LOSS_WEIGHTS, TrainConfig, evaluate_clone, save_clone, train_clone

    targets = CloneTargets(lr=args.clone_lr, bias_lr=args.clone_bias_lr, backward=args.backward)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch=args.batch, seed=args.seed, targets=targets)
    deep = DeepConfig(steps=args.deep_steps, lr=args.deep_lr, sizes=tuple(args.deep_sizes), seed=args.seed,
                      targets=targets)
    bar = tqdm(total=args.steps + args.deep_steps, disable=args.quiet, desc="clone")

    def progress(step: int, losses: dict[str, float]) -> None:
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix({k: f"{v ** 0.5:.3g}" for k, v in losses.items() if k in LOSS_WEIGHTS})

    with torch.enable_grad():
        model, summary = train_clone(config, progress)
        if args.deep_steps:
            bar.set_description("clone, deep networks")
            model, deep_summary = train_deep(model, deep, progress)
            summary.update(deep_summary)
    bar.close()
    errors = evaluate_clone(model, targets)
    deep_errors = evaluate_deep(model, deep)
    save_clone(model, targets, args.out, {**summary, "config": {
        "steps": args.steps, "lr": args.lr, "batch": args.batch, "seed": args.seed, "deep_steps": args.deep_steps,
        "deep_lr": args.deep_lr, "deep_sizes": list(args.deep_sizes)}})
    print(json.dumps({"out": args.out, "train_seconds": round(summary["train_seconds"], 1),
                      "rms_errors": errors, "deep_network_errors": deep_errors, "targets": targets.as_dict()},
                     indent=2))
    return 0
