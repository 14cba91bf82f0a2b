"""Meta-test evaluation: run meta-parameters on env ids they may never have seen."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import torch

import vsml_gym  # noqa: F401  (registers the environments)
from agents.registry import make_learner
from agents.rollout import members_for_runs, rollout
from vsml_gym.data import DatasetNotFoundError


def evaluate_params(learner_name: str, learner_options: dict[str, Any], params: torch.Tensor,
                    env_ids: Sequence[str], episodes: int = 4, episode_length: int | None = 2000, seed: int = 22,
                    device: str = "cpu", data_root: str | None = None, env_options: dict[str, Any] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Mean loss and accuracy of one member (`params`, (D,)) over `episodes` independent episodes
    of each env (test split). Unavailable datasets are reported, not dropped."""
    results: dict[str, dict[str, Any]] = {}
    for env_id in env_ids:
        options = {"split": "test", "data_root": data_root, **(env_options or {})}
        if episode_length is not None:
            options["episode_length"] = episode_length
        try:
            env = gym.make_vec(env_id, num_envs=episodes, device=device, nan_check="episode", **options)
        except DatasetNotFoundError as missing:
            results[env_id] = {"available": False, "reason": str(missing)}
            continue
        except ValueError as error:  # e.g. few-shot tasks with their own fixed episode length
            if "fixed episodes" not in str(error):
                raise
            options.pop("episode_length")
            env = gym.make_vec(env_id, num_envs=episodes, device=device, nan_check="episode", **options)
        learner = make_learner(learner_name, env.single_observation_space["x"].shape,
                               env.single_action_space.shape[0], **learner_options)
        if learner.num_params != params.numel():
            raise ValueError(f"{env_id}: learner {learner_name!r} needs {learner.num_params} meta-parameters here, "
                             f"the given ones have {params.numel()}")
        members = members_for_runs(learner, params.view(1, -1), episodes)
        with torch.no_grad():
            result = rollout(learner, members.to(device), env, seed=seed, state_seed=seed)
        env.close()
        results[env_id] = {"available": True, "loss": float(result.mean_loss().mean()),
                           "accuracy": float(result.accuracy().mean()), "episodes": episodes,
                           "episode_length": int(result.loss.shape[0])}
    return results
