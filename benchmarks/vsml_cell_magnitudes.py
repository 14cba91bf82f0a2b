"""How large VSML's cell states grow over an online episode at the start of meta-training, for
several input-gate starts (`input_gate_init`): gates opened too wide saturate the cells (tanh(c)
at +-1 carries no information and no gradient), gates shut barely write.

    python benchmarks/vsml_cell_magnitudes.py --gate-inits 0 2.5 5 > cell_magnitudes.json

Prints JSON: per gate start and meta-parameter seed, the mean |c| and the share of |c| > 3 after
10, 50 and 100 examples of 7x7 MNIST (train split, 4 streams), with the recipe's other options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vsml_gym  # noqa: E402,F401
from agents import make_learner  # noqa: E402
from agents.rollout import env_view, members_view  # noqa: E402

OPTIONS = {"backward_pass": True, "feed_label": True, "init_rand_proportion": 0.0, "num_micro_ticks": 1}
STEPS = (10, 50, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate-inits", type=float, nargs="+", default=[0.0, 2.5, 5.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    results = []
    for gate in args.gate_inits:
        learner = make_learner("vsml", (1, 7, 7), 10, input_gate_init=gate, **OPTIONS)
        for seed in args.seeds:
            params = learner.init_params(1, seed=seed)
            env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=4, split="train", episode_length=max(STEPS),
                               resize=7, data_root=args.data_root)
            obs, _ = env.reset(seed=0)
            state = learner.initial_state(params, 4, torch.Generator().manual_seed(0))
            row = {"input_gate_init": gate, "seed": seed}
            with torch.no_grad():
                for t in range(1, max(STEPS) + 1):
                    logits, state = learner.step(params, state, {k: members_view(v, 1) for k, v in obs.items()})
                    obs, *_ = env.step(env_view(logits))
                    if t in STEPS:
                        c = state["c0"].abs()
                        row[f"after_{t}"] = {"mean_abs_c": round(float(c.mean()), 3),
                                             "share_abs_c_above_3": round(float((c > 3).float().mean()), 3)}
            results.append(row)
    print(json.dumps({"options": OPTIONS, "task": "VSML/MNIST-Online-v0, resize 7, train split, 4 streams",
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
