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
