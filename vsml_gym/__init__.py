"""vsml-gym: online supervised learning tasks as Gymnasium environments for meta-learning
learning algorithms. Importing the package registers every task id (namespace ``VSML``)."""

from vsml_gym.envs import OnlineEnv, OnlineVectorEnv, TorchToNumpy, with_numpy_wrappers
from vsml_gym.registration import BUILTIN_ENVS, register_builtin_envs, register_task, registered_env_ids

__version__ = "0.1.0"

register_builtin_envs()

__all__ = ["BUILTIN_ENVS", "OnlineEnv", "OnlineVectorEnv", "TorchToNumpy", "register_task", "registered_env_ids",
           "with_numpy_wrappers", "__version__"]
