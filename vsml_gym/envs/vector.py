"""The native batched environment: N online-learning streams as torch tensors on one device."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from vsml_gym import rng
from vsml_gym.checks import check_device, is_int, is_int_sequence
from vsml_gym.envs.core import OnlineEpisode, action_space, episode_keys, fork_safe_threads, observation_space
from vsml_gym.envs.options import parse_options

NAN_CHECKS = ("step", "episode", "off")
_ENV_OPTIONS = ("device", "envs_per_stream", "autoreset_mode", "nan_check")


class OnlineVectorEnv(VectorEnv):
    """All sub-envs step in lockstep on `device`; observations, rewards, flags and infos are
    torch tensors. Sub-env i is seeded `seed + i // envs_per_stream` by `reset(seed=seed)`, so
    it equals a single env reset with that seed; `envs_per_stream=2` gives consecutive pairs
    one shared data stream (antithetic ES pairs).

    Infos follow Gymnasium's vector convention: each key `k` comes with a bool mask `_k` of the
    sub-envs that have it (none on a NEXT_STEP autoreset step, which only resets). Gymnasium's
    numpy vector wrappers apply through `vsml_gym.with_numpy_wrappers` (or `TorchToNumpy`).

    `nan_check`: "step" validates every action batch (one device sync per step), "episode"
    accumulates the check on the device and raises at the end of the episode (no per-step
    sync, for meta-training), "off" trusts the caller.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: torch.device | str = "cpu",
        envs_per_stream: int = 1,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        nan_check: str = "step",
        **options: Any,
    ) -> None:
        fork_safe_threads()
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not isinstance(envs_per_stream, int) or envs_per_stream < 1 or num_envs % envs_per_stream:
            raise ValueError(f"envs_per_stream must be a positive divisor of num_envs={num_envs}, got {envs_per_stream!r}")
        if nan_check not in NAN_CHECKS:
            raise ValueError(f"nan_check must be one of {NAN_CHECKS}, got {nan_check!r}")
        self.options = parse_options(options, also_valid=_ENV_OPTIONS)
        self.device = check_device(device)
        self.task, self.episode_length = self.options.build(self.device)
        self.episode = OnlineEpisode(self.task, self.episode_length)
        self.num_envs = num_envs
        self.envs_per_stream = envs_per_stream
        self.num_streams = num_envs // envs_per_stream
        self.nan_check = nan_check
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {"autoreset_mode": self.autoreset_mode}
        self.single_observation_space = observation_space(self.task)
        self.single_action_space = action_space(self.task)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._stream_keys: torch.Tensor | None = None
        self._episode_index = 0
        self._autoreset_pending = False
        # (action - action) summed over each batch: stays 0 until an action is NaN or infinite
        self._nonfinite_probe = torch.zeros((), device=self.device)

    # -- seeding and episodes -------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if options:
            raise ValueError(f"reset options are not supported, got {options}")
        if seed is not None:
            self._stream_keys = rng.seed_keys(self._stream_seeds(seed), self.device)
            self._episode_index = 0
        elif self._stream_keys is None:
            base = int(np.random.SeedSequence().entropy) % (1 << 62)
            self._stream_keys = rng.seed_keys(self._stream_seeds(base), self.device)
            self._episode_index = 0
        else:
            self._episode_index += 1
        return self._begin(), {}

    def _stream_seeds(self, seed: int | Sequence[int]) -> list[int]:
        accepted = f"None, a non-negative int or a list of {self.num_streams} non-negative ints (one per stream)"
        if is_int(seed):
            seeds = [int(seed) + i for i in range(self.num_streams)]
        elif is_int_sequence(seed):
            seeds = [int(s) for s in seed]
        else:
            raise TypeError(f"seed must be {accepted}, got {seed!r}")
        if len(seeds) != self.num_streams or min(seeds) < 0:
            raise ValueError(f"seed must be {accepted}, got {seed!r}")
        return seeds

    def _begin(self) -> dict[str, torch.Tensor]:
        keys = episode_keys(self._stream_keys, self.options.split, self._episode_index)
        self._autoreset_pending = False
        return self.episode.begin(keys.repeat_interleave(self.envs_per_stream))

    # -- stepping -------------------------------------------------------------------------
    def step(self, actions: torch.Tensor | np.ndarray) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        if self._stream_keys is None:
            raise RuntimeError("call reset() before step()")
        if self._autoreset_pending:  # NEXT_STEP autoreset: this step's actions are ignored
            self._episode_index += 1
            obs = self._begin()
            info = self._masked({"loss": torch.zeros(self.num_envs, device=self.device), "correct": self._flags(False),
                                 "label": torch.full((self.num_envs,), -1, dtype=torch.int64, device=self.device),
                                 "scored": self._flags(False)}, present=False)
            return obs, torch.zeros(self.num_envs, device=self.device), self._flags(False), self._flags(False), info

        result = self.episode.step(self._validated(actions))
        info = self._masked({
            "loss": result.loss,
            "correct": result.correct,
            "label": result.label,
            "scored": self._flags(result.scored),
        })
        obs = result.obs
        if result.truncated:
            self._raise_if_nonfinite_seen()
            if self.autoreset_mode == AutoresetMode.NEXT_STEP:
                self._autoreset_pending = True
            elif self.autoreset_mode == AutoresetMode.SAME_STEP:
                info = {**info, **self._masked({"final_obs": obs, "final_info": dict(info)})}
                self._episode_index += 1
                obs = self._begin()
        return obs, result.reward, self._flags(False), self._flags(result.truncated), info

    def _masked(self, info: dict[str, Any], present: bool = True) -> dict[str, Any]:
        """`info` with Gymnasium's mask `_k` for each key (rows of one buffer: one op, no shared elements)."""
        masks = torch.full((len(info), self.num_envs), present, device=self.device).unbind(0)
        return {**info, **{f"_{key}": mask for key, mask in zip(info, masks)}}

    def _flags(self, value: bool) -> torch.Tensor:
        """A fresh (num_envs,) flag vector: callers may write into what a step returns."""
        return torch.full((self.num_envs,), value, device=self.device)

    def _validated(self, actions: torch.Tensor | np.ndarray) -> torch.Tensor:
        actions = torch.as_tensor(actions)
        if not actions.is_floating_point():
            raise TypeError(f"actions must be floating-point logits, got dtype {actions.dtype}")
        expected = (self.num_envs, self.task.num_classes)
        if tuple(actions.shape) != expected:
            raise ValueError(f"actions must have shape {expected} (num_envs, num_classes), got {tuple(actions.shape)}")
        actions = actions.to(self.device, torch.float32)
        if self.nan_check == "step":
            if not bool(torch.isfinite(actions).all()):
                raise ValueError("actions contain NaN or infinite logits")
        elif self.nan_check == "episode":
            detached = actions.detach()  # the probe must not hold on to the episode's autograd graph
            self._nonfinite_probe.add_((detached - detached).sum())
        return actions

    def _raise_if_nonfinite_seen(self) -> None:
        if self.nan_check == "episode" and bool(self._nonfinite_probe.isnan()):
            self._nonfinite_probe.zero_()
            raise ValueError("actions contained NaN or infinite logits during the episode that just ended")

    def close_extras(self, **kwargs: Any) -> None:
        self.task = None  # free device memory held by the dataset
