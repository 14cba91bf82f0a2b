"""`agents.rollout`'s records: member p's stream b is sub-env b * P + p, step by step."""

import gymnasium as gym
import numpy as np
import torch

import vsml_gym  # noqa: F401  (registers the environments)
from agents import rollout
from helpers import DataEcho


def test_rollout_records_every_member_and_stream_in_its_place():
    population, batch, steps = 2, 3, 6
    envs = gym.make_vec("VSML/SumSign-Online-v0", num_envs=population * batch, episode_length=steps)
    learner = DataEcho((1, 28, 28), 2)
    result = rollout(learner, learner.init_params(population), envs, seed=10, keep_logits=True)
    assert result.loss.shape == result.correct.shape == result.labels.shape == (steps, population, batch)
    for sub_env in range(population * batch):  # the single env with the sub-env's seed is its reference
        member, stream = sub_env % population, sub_env // population
        env = gym.make("VSML/SumSign-Online-v0", episode_length=steps)
        obs, _ = env.reset(seed=10 + sub_env)
        for t in range(steps):
            logits = np.asarray(obs["x"]).reshape(-1)[:2] * 3.0  # what DataEcho answers
            obs, _, _, _, info = env.step(logits.astype(np.float32))
            assert np.allclose(result.logits[t, member, stream].numpy(), logits, atol=1e-6)
            assert abs(float(result.loss[t, member, stream]) - info["loss"]) < 1e-5
            assert int(result.labels[t, member, stream]) == info["label"]
            assert bool(result.correct[t, member, stream]) == info["correct"]
    assert result.scored.shape == (steps,) and result.scored.all()


def _records(result):
    return result.loss, result.correct, result.labels, result.logits, result.scored


def test_rollout_runs_gymnasium_vector_envs_and_a_single_env_like_the_native_one():
    """Gymnasium's sync/async vector envs of a VSML id (numpy in and out) and a single env give
    the native env's records: sub-env i is seeded seed + i in all of them."""
    population, batch, steps = 2, 2, 8
    learner = DataEcho((1, 28, 28), 2)
    params = learner.init_params(population)

    def run(env, members=params):
        try:
            return _records(rollout(learner, members, env, seed=4, state_seed=4, keep_logits=True))
        finally:
            env.close()

    native = run(gym.make_vec("VSML/SumSign-Online-v0", num_envs=population * batch, episode_length=steps))
    for mode in ("sync", "async"):
        other = run(gym.make_vec("VSML/SumSign-Online-v0", num_envs=population * batch, episode_length=steps,
                                 vectorization_mode=mode))
        for ours, theirs in zip(native, other):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            assert torch.allclose(ours.float(), theirs.float(), atol=1e-5), mode
    single = run(gym.make("VSML/SumSign-Online-v0", episode_length=steps), params[:1])
    assert torch.allclose(single[0][:, 0, 0], native[0][:, 0, 0], atol=1e-5)  # sub-env 0 = the single env


def test_rollout_names_what_is_wrong_with_params_and_env():
    import pytest

    envs = gym.make_vec("VSML/SumSign-Online-v0", num_envs=2, episode_length=4)
    learner = DataEcho((1, 28, 28), 2)
    params = learner.init_params(2)
    cases = [(params[0], ValueError, r"params must have shape \(P, 3\)"),
             (params.double(), TypeError, "params must be float32"),
             (params.numpy(), TypeError, "params must be a torch tensor"),
             (learner.init_params(3), ValueError, "not a multiple of the population 3")]
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            rollout(learner, bad, envs, seed=0)
    other = DataEcho((1, 14, 14), 10)
    with pytest.raises(ValueError, match=r"built for inputs \(1, 14, 14\) and 10 classes, the env emits inputs "
                                         r"\(1, 28, 28\) and 2 classes"):
        rollout(other, other.init_params(2), envs, seed=0)
    with pytest.raises(TypeError, match="rollout needs an env of a VSML task"):
        rollout(learner, params, "VSML/SumSign-Online-v0")
