"""Gymnasium's vector wrappers on the native torch vector env.

Gymnasium's vector wrappers (RecordEpisodeStatistics, NormalizeReward, ClipAction,
FlattenObservation, ...) compute with numpy, so they cannot run on torch tensors, least of all on
a GPU. Gymnasium's own answer for envs of another array framework is to convert at the boundary
(as JaxToNumpy / NumpyToTorch do): `TorchToNumpy` gives the native env numpy in and out, and
`with_numpy_wrappers` puts Gymnasium's wrappers, unchanged, between that and a conversion back to
torch on the env's device, so that every output is a tensor again. The native env itself stays
torch, without conversions, for learners that train through it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import ArrayConversion, DictInfoToList, NumpyToTorch

VectorWrapperFactory = Callable[[VectorEnv], VectorEnv]


class TorchToNumpy(ArrayConversion):
    """The native env with numpy observations, rewards, flags and infos; actions may be numpy or torch.
    Gymnasium 1.x has NumpyToTorch but no vector TorchToNumpy; this is ArrayConversion with the
    env's device filled in."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env, env_xp=torch, target_xp=np, env_device=env.unwrapped.device)


def with_numpy_wrappers(env: VectorEnv, *wrappers: VectorWrapperFactory) -> VectorEnv:
    """`env` (the native vector env) inside Gymnasium's numpy vector `wrappers`, innermost first, with
    torch tensors on the env's device in and out: observations, rewards, flags and infos alike.

    DictInfoToList is refused: its per-env infos of numpy scalars have no torch form; apply it
    outermost around `TorchToNumpy(env)` and the other wrappers, as Gymnasium asks.
    """
    wrapped: VectorEnv = TorchToNumpy(env)
    for wrapper in wrappers:
        wrapped = wrapper(wrapped)
        if _wraps(wrapped, DictInfoToList):
            raise TypeError("with_numpy_wrappers cannot convert DictInfoToList's per-env infos back to torch: apply "
                            "DictInfoToList outermost on TorchToNumpy(env) instead, e.g. "
                            "DictInfoToList(RecordEpisodeStatistics(TorchToNumpy(env)))")
    return NumpyToTorch(wrapped, device=env.unwrapped.device)


def _wraps(env: VectorEnv, kind: type) -> bool:
    """Whether `kind` is one of the wrappers between `env` and the unwrapped env."""
    while isinstance(env, VectorWrapper):
        if isinstance(env, kind):
            return True
        env = env.env
    return False
