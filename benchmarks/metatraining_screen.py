"""Short meta-training runs for screening recipes: a config plus overrides, trained by `vsml-gym
train`'s own loop for a few hundred steps, evaluated on meta-validation streams (train split,
other seeds than training) at several input sizes, since VSML is meta-trained small and
meta-tested at 28x28.

    python benchmarks/metatraining_screen.py NAME --config configs/vsml_mnist_cpu.yaml \
        --set training.iterations=600 --set training.episode_length=50 --sizes 7 14 28

Writes a run folder OUT/NAME as `vsml-gym train` does (log.jsonl, progress.png, best.pt,
checkpoint.pt; `--resume` continues it); its evaluations every `--eval-every` steps are
`ENV@SIZE`: loss and accuracy over `--eval-steps` examples of `--eval-episodes` episodes
(cumulative accuracy over the first 100 examples with the defaults, the leaderboard's
online@100).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.training import evaluate_params, load_config, make_trainer  # noqa: E402

VALIDATION_ENVS = ("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="name of the screening run (its folder under --out)")
    parser.add_argument("--config", help="experiment config (YAML); overrides apply on top")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable), as for `vsml-gym train`")
    parser.add_argument("--sizes", type=int, nargs="+", default=[7, 28], help="input sizes to meta-validate at")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--eval-steps", type=int, default=100)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--eval-seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: two screens side by side)")
    parser.add_argument("--out", default="runs/screening", help="folder of the run folders (default runs/screening)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = load_config(args.config, [f"name={args.name}", f"output_dir={args.out}",
                                       f"evaluation.every={args.eval_every}", f"checkpoint_every={args.eval_every}",
                                       *args.overrides])
    trainer = make_trainer(config, resume=args.resume, progress=False, echo=lambda _: None)

    def validate() -> dict:
        """The evaluation envs at every size, named ENV@SIZE (what the trainer logs and plots)."""
        results = {}
        for size in args.sizes:
            options = {"split": "train", **({} if size == 28 else {"resize": size})}
            found = evaluate_params(config.learner.name, config.learner.options, trainer.center().detach(),
                                    VALIDATION_ENVS, args.eval_episodes, args.eval_steps, args.eval_seed,
                                    config.training.device, config.data_root, options)
            results.update({f"{env}@{size}": result for env, result in found.items()})
        return results

    trainer.evaluate = validate
    trainer.run()
    print(f"wrote {trainer.run_dir}")


if __name__ == "__main__":
    main()
