"""Gymnasium environments over the task suite: a single numpy env and a native torch vector env."""

from vsml_gym.envs.single import OnlineEnv
from vsml_gym.envs.vector import OnlineVectorEnv
from vsml_gym.envs.wrappers import TorchToNumpy, with_numpy_wrappers

__all__ = ["OnlineEnv", "OnlineVectorEnv", "TorchToNumpy", "with_numpy_wrappers"]
