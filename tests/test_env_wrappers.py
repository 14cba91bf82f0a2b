"""Gymnasium's vector wrappers on the native vector env, over every built-in id.

Through `with_numpy_wrappers` everything that comes out is a torch tensor on the env's device
(observations, rewards, flags, infos); on `TorchToNumpy` everything is numpy.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import vector as V

import vsml_gym
from vsml_gym import TorchToNumpy, with_numpy_wrappers

#: every Gymnasium vector wrapper that applies to these spaces (a Dict of Boxes in, unbounded logits out).
#: Not here: RescaleAction and RescaleObservation (they need bounded Boxes), Grayscale/ResizeObservation
#: (image Boxes), RecordVideo/HumanRendering (no rendering), and the array conversions themselves.
WRAPPERS = {
    "RecordEpisodeStatistics": V.RecordEpisodeStatistics,
    "ClipAction": V.ClipAction,
    "TransformAction": lambda env: V.TransformAction(env, lambda actions: actions * 0.5),
    "VectorizeTransformAction": lambda env: V.VectorizeTransformAction(env, gym.wrappers.ClipAction),
    "NormalizeReward": V.NormalizeReward,
    "ClipReward": lambda env: V.ClipReward(env, -3.0, 0.0),
    "TransformReward": lambda env: V.TransformReward(env, lambda rewards: rewards * 2),
    "FlattenObservation": V.FlattenObservation,
    "FilterObservation": lambda env: V.FilterObservation(env, ["x", "error"]),
    "TransformObservation": lambda env: V.TransformObservation(env, lambda obs: {**obs, "x": obs["x"] * 2}),
    "VectorizeTransformObservation": lambda env: V.VectorizeTransformObservation(env, gym.wrappers.FlattenObservation),
    "NormalizeObservation": lambda env: V.NormalizeObservation(V.FlattenObservation(env)),
    "DtypeObservation": lambda env: V.DtypeObservation(V.FlattenObservation(env), np.float64),
    "ReshapeObservation": lambda env: reshaped(V.FlattenObservation(env)),
}


def reshaped(flat):
    return V.ReshapeObservation(flat, (flat.single_observation_space.shape[0], 1))
NUM_ENVS = 2


def native(env_id, data_root):
    episode = {} if "Omniglot" in env_id else {"episode_length": 3}
    return gym.make_vec(env_id, num_envs=NUM_ENVS, split="test", data_root=str(data_root), **episode)


def arrays(tree):
    """Every array-like leaf of an observation or info."""
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in arrays(value)]
    if isinstance(tree, (list, tuple)):
        return [leaf for value in tree for leaf in arrays(value)]
    return [tree]


def step_info(outputs, step):
    """The info of the `step`-th step (1-based) in `episode`'s outputs: reset gives 2, each step 5."""
    return outputs[2 + 5 * step - 1]


def episode(env, actions):
    """Reset, then two episodes' worth of steps (across the autoreset); every output of every call."""
    outputs = list(env.reset(seed=0))
    length = env.unwrapped.episode_length
    for _ in range(2 * length + 1):
        outputs.extend(env.step(actions))
    return outputs, length


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("env_id", sorted(vsml_gym.BUILTIN_ENVS))
def test_gymnasium_vector_wrapper_through_with_numpy_wrappers_gives_torch_throughout(env_id, wrapper, data_root):
    base = native(env_id, data_root)
    env = with_numpy_wrappers(base, WRAPPERS[wrapper])
    actions = torch.randn(NUM_ENVS, base.single_action_space.shape[0], generator=torch.Generator().manual_seed(0))
    outputs, length = episode(env, actions)
    leaves = arrays(outputs)
    assert all(isinstance(leaf, torch.Tensor) and leaf.device == base.device for leaf in leaves), \
        {type(leaf).__name__ for leaf in leaves}
    obs, reward, terminated, truncated, info = outputs[-5:]
    assert reward.shape == (NUM_ENVS,) and reward.is_floating_point()
    assert terminated.dtype == truncated.dtype == torch.bool
    assert obs.shape[0] == NUM_ENVS if isinstance(obs, torch.Tensor) else set(obs) <= {"x", "error", "label"}
    if wrapper == "RecordEpisodeStatistics":
        ended = step_info(outputs, length)
        assert ended["_episode"].all() and (ended["episode"]["l"] == length).all()
    env.close()


@pytest.mark.parametrize("env_id", sorted(vsml_gym.BUILTIN_ENVS))
def test_torch_to_numpy_gives_numpy_throughout_and_the_same_stream(env_id, data_root):
    base, reference = native(env_id, data_root), native(env_id, data_root)
    env = V.DictInfoToList(V.RecordEpisodeStatistics(TorchToNumpy(base)))  # DictInfoToList outermost, as Gymnasium asks
    actions = torch.randn(NUM_ENVS, base.single_action_space.shape[0], generator=torch.Generator().manual_seed(0))
    outputs, length = episode(env, actions.numpy())
    expected, _ = episode(reference, actions)
    assert all(isinstance(leaf, (np.ndarray, np.generic)) for leaf in arrays(outputs))
    for got, want in zip(outputs, expected):
        if isinstance(want, dict) and isinstance(got, dict):  # observations (infos are lists here)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key].numpy())
        elif isinstance(want, torch.Tensor):  # rewards and flags
            np.testing.assert_array_equal(got, want.numpy())
    last_step_info = step_info(outputs, length)
    assert all(env_info["episode"]["l"] == length and "loss" in env_info for env_info in last_step_info)
    assert step_info(outputs, length + 1) == [{}] * NUM_ENVS  # the autoreset step has no step info (masks False)
    env.close()


def test_with_numpy_wrappers_refuses_dict_info_to_list_and_says_where_it_goes():
    env = gym.make_vec("VSML/SumSign-Online-v0", num_envs=2, episode_length=2)
    with pytest.raises(TypeError, match=r"apply DictInfoToList outermost on TorchToNumpy\(env\) instead"):
        with_numpy_wrappers(env, V.RecordEpisodeStatistics, V.DictInfoToList)
