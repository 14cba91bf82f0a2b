"""Learning-algorithm cloning: the cloned-backprop VSML beside true online backprop (paper Figs. 10/11).

For MNIST and Fashion-MNIST (test split), shallow (784 x 10) and deep (784 x 32 x 10) networks,
batch 64 with state averaging (one learner per member), `--steps` steps of 64 examples:
`vsml_cloned` (shipped clone) against `BackpropReference` (true online backprop of the same
network with the same learning rates), unbounded and with its weights clipped to the range the
clone can store (|w| <= scale). Writes results.json, learning_curves.png and
forward_error.png (forward-message error over inputs x and weights w) to --out.

    OMP_NUM_THREADS=1 VSML_GYM_DATA=/work/shared/data python benchmarks/cloning.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import vsml_gym  # noqa: E402,F401
from agents import make_learner, rollout  # noqa: E402
from agents.cloning.learner import CHECKPOINT  # noqa: E402
from agents.cloning.targets import BackpropReference  # noqa: E402
from agents.cloning.train import evaluate_clone, load_clone  # noqa: E402

ENVS = {"MNIST": "VSML/MNIST-Online-v0", "Fashion-MNIST": "VSML/FashionMNIST-Online-v0"}
NETS = {"shallow": (), "deep": (32,)}
LEARNERS = {"clone": "VSML (cloned backprop)", "backprop": "online backprop (SGD)",
            "backprop_bounded": "online backprop, |w| <= {scale:g} (the clone's range)"}


def run(args: argparse.Namespace) -> dict:
    clone, targets, _ = load_clone(CHECKPOINT)
    results = {"targets": targets.as_dict(), "batch": args.batch, "steps": args.steps, "seeds": args.seeds,
               "clone_rms_errors": evaluate_clone(clone, targets), "settings": []}
    for data, env_id in ENVS.items():
        for net, hidden in NETS.items():
            for kind in args.learners:
                if kind == "clone":
                    learner = make_learner("vsml_cloned", (1, 28, 28), 10, hidden=hidden)
                else:
                    clip = targets.scale if kind == "backprop_bounded" else None
                    learner = BackpropReference((1, 28, 28), 10, hidden=hidden, lr=targets.lr, bias_lr=targets.bias_lr,
                                                backward=targets.backward, weight_clip=clip)
                params = learner.init_params(args.seeds)
                envs = gym.make_vec(env_id, num_envs=args.batch * args.seeds, split="test",
                                    episode_length=args.steps, data_root=args.data_root)
                started = time.time()
                with torch.no_grad():
                    result = rollout(learner, params, envs, seed=args.seed, state_seed=args.seed)
                curve = result.accuracy_curve()  # (T, P): accuracy over the 64 examples of each step
                final = curve[-args.final:].mean(0)
                record = {"dataset": data, "net": net, "learner": kind, "curve": curve.mean(1).tolist(),
                          "final_accuracy": final.mean().item(), "final_accuracy_per_seed": final.tolist(),
                          "seconds": time.time() - started}
                results["settings"].append(record)
                print(f"{data:14s} {net:8s} {kind:16s} final acc {record['final_accuracy']:.3f} "
                      f"({record['seconds']:.0f}s)", flush=True)
    return results


def plot_curves(results: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4), sharey=True)
    settings = [(d, n) for d in ENVS for n in NETS]
    for ax, (data, net) in zip(axes, settings):
        for rec in results["settings"]:
            if rec["dataset"] == data and rec["net"] == net:
                x = [(t + 1) * results["batch"] for t in range(len(rec["curve"]))]
                style = "--" if rec["learner"] == "backprop_bounded" else "-"
                label = LEARNERS[rec["learner"]].format(scale=results["targets"]["scale"])
                ax.plot(x, rec["curve"], style, label=label)
        ax.set_title(f"{data}, {net}")
        ax.set_xlabel("examples seen")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (batch of 64)")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def plot_forward_error(path: Path) -> dict:
    """|forward message - tanh(x) w| of one forward tick from a fresh state holding weight w (b = 0)."""
    clone, targets, _ = load_clone(CHECKPOINT)
    xs, ws = torch.linspace(-4, 4, 81), torch.linspace(-4, 4, 81)
    x, w = torch.meshgrid(xs, ws, indexing="ij")
    from agents.cloning.train import COPY_DIMS, WEIGHT_DIM  # noqa: PLC0415
    c = torch.zeros(*x.shape, clone.n)
    for d in (WEIGHT_DIM, *COPY_DIMS):
        c[..., d] = w / targets.scale
    _, _, y, _ = clone.tick(x, torch.zeros_like(x), torch.zeros_like(c), c)
    err = (y - targets.forward(x, w, torch.zeros_like(w))).abs()
    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(err.T, origin="lower", extent=(-4, 4, -4, 4), aspect="auto", cmap="viridis")
    ax.set_xlabel("input x")
    ax.set_ylabel("weight w")
    ax.set_title("cloned forward error |y - tanh(x) w|")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    inner = err[(x.abs() <= 4) & (w.abs() <= 2)]
    return {"max": err.max().item(), "mean": err.mean().item(), "max_w_le_2": inner.max().item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps of 64 examples (default 40 = 2560 examples)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2, help="independent runs (population members)")
    parser.add_argument("--final", type=int, default=10, help="steps averaged for the final accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learners", nargs="+", choices=list(LEARNERS), default=list(LEARNERS),
                        help="which rows to run (default all)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="benchmarks/results/cloning")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    results["forward_error_grid"] = plot_forward_error(out / "forward_error.png")
    plot_curves(results, out / "learning_curves.png")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "settings"}, indent=1))


if __name__ == "__main__":
    main()
