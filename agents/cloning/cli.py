"""`vsml-gym clone`: train a cloned-backprop sub-LSTM (an entry-point provider of vsml_gym.commands)."""

from __future__ import annotations

import argparse
import json


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    clone = subparsers.add_parser(
        "clone", help="train a VSML sub-LSTM to implement online backprop (learning-algorithm cloning)",
        description="Fit the sub-LSTM meta-parameters by gradient descent (from a hand-built start) so that a VSML "
                    "layer implements a dense layer trained by online backprop; prints the errors on fresh random "
                    "data and writes a checkpoint usable with `vsml_cloned:checkpoint=PATH`.")
    clone.add_argument("--steps", type=int, default=500, help="gradient steps (default 500)")
    clone.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of the fit (default 1e-4)")
    clone.add_argument("--batch", type=int, default=512, help="learners per step (default 512)")
    clone.add_argument("--clone-lr", type=float, default=2.0, help="learning rate of the cloned backprop (default 2)")
    clone.add_argument("--clone-bias-lr", type=float, default=0.05, help="its bias learning rate (default 0.05)")
    clone.add_argument("--backward", choices=("exact", "spec"), default="exact",
                       help="backward message e*w*tanh'(x) (exact backprop, default) or e*w (SPEC 6)")
    clone.add_argument("--seed", type=int, default=0)
    clone.add_argument("--out", default="cloned_backprop.pt", help="checkpoint path (default ./cloned_backprop.pt)")
    clone.add_argument("--quiet", action="store_true", help="no progress bar")
    clone.set_defaults(run=run_clone)


def run_clone(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from agents.cloning.targets import CloneTargets
    from agents.cloning.train import TrainConfig, evaluate_clone, save_clone, train_clone

    targets = CloneTargets(lr=args.clone_lr, bias_lr=args.clone_bias_lr, backward=args.backward)
    config = TrainConfig(steps=args.steps, lr=args.lr, batch=args.batch, seed=args.seed, targets=targets)
    bar = tqdm(total=args.steps, disable=args.quiet, desc="clone")

    def progress(step: int, losses: dict[str, float]) -> None:
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix({k: f"{v ** 0.5:.3g}" for k, v in losses.items()})

    with torch.enable_grad():
        model, summary = train_clone(config, progress)
    bar.close()
    errors = evaluate_clone(model, targets)
    save_clone(model, targets, args.out, {**summary, "config": {"steps": args.steps, "lr": args.lr,
                                                                 "batch": args.batch, "seed": args.seed}})
    print(json.dumps({"out": args.out, "train_seconds": round(summary["train_seconds"], 1),
                      "rms_errors": errors, "targets": targets.as_dict()}, indent=2))
    return 0
