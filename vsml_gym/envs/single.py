"""The single-stream environment (numpy in and out) for Gymnasium's standard tools."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from vsml_gym import rng
from vsml_gym.envs.core import OnlineEpisode, action_space, episode_keys, fork_safe_threads, observation_space
from vsml_gym.envs.options import parse_options


class OnlineEnv(gym.Env):
    """One online supervised learning stream. Observation: {"x", "error", "label"}, where error
    and label are the feedback of the previous step; action: logits; reward: -cross-entropy.
    The data stream is the one of a vector env's sub-env reset with the same seed."""

    metadata = {"render_modes": []}

    def __init__(self, **options: Any) -> None:
        fork_safe_threads()
        self.options = parse_options(options)
        self.task, self.episode_length = self.options.build("cpu")
        self.episode = OnlineEpisode(self.task, self.episode_length)
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        self._stream_key: torch.Tensor | None = None
        self._episode_index = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"reset options are not supported, got {options}")
        if seed is not None or self._stream_key is None:
            stream_seed = seed if seed is not None else int(self.np_random.integers(1 << 62))
            self._stream_key = rng.seed_keys([stream_seed])
            self._episode_index = 0
        else:
            self._episode_index += 1
        obs = self.episode.begin(episode_keys(self._stream_key, self.options.split, self._episode_index))
        return _numpy(obs), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        result = self.episode.step(self._validated(action))
        info = {
            "loss": float(result.loss[0]),
            "correct": bool(result.correct[0]),
            "label": int(result.label[0]),
            "scored": result.scored,
        }
        return _numpy(result.obs), float(result.reward[0]), False, result.truncated, info

    def _validated(self, action: Any) -> torch.Tensor:
        array = action.detach().cpu().numpy() if isinstance(action, torch.Tensor) else np.asarray(action)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"action must be floating-point logits, got dtype {array.dtype}")
        if array.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape} (one logit per class), got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("action contains NaN or infinite logits")
        return torch.from_numpy(array.astype(np.float32, copy=False)).unsqueeze(0)


def _numpy(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {key: value[0].numpy() for key, value in obs.items()}
