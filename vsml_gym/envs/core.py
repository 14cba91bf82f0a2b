"""The online-learning episode logic shared by the single and the vector environment.

Prediction comes before the label: at step t the learner sees x_t with the feedback of its
previous prediction (error e_{t-1} = softmax(a_{t-1}) - onehot(y_{t-1}) and onehot(y_{t-1}),
zeros at t = 0), answers logits a_t, and is rewarded -CE(a_t, y_t).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from vsml_gym import rng
from vsml_gym.tasks.base import Task

Observation = dict[str, torch.Tensor]

_forked = False


def _note_fork() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_note_fork)


def fork_safe_threads() -> None:
    """In a process forked from one that had run torch ops (AsyncVectorEnv's default workers), torch's
    OpenMP thread pool is not fork-safe: the first parallel op blocks forever. One thread each avoids
    it, and is what N workers sharing the cores want anyway. Spawned processes are left alone."""
    if _forked:
        torch.set_num_threads(1)


def observation_space(task: Task) -> gym.spaces.Dict:
    """One stream's observation: the input and the previous step's feedback."""
    c = task.num_classes
    return gym.spaces.Dict(
        {
            "x": gym.spaces.Box(-np.inf, np.inf, task.input_shape, np.float32),
            "error": gym.spaces.Box(-1.0, 1.0, (c,), np.float32),
            "label": gym.spaces.Box(0.0, 1.0, (c,), np.float32),
        }
    )


def action_space(task: Task) -> gym.spaces.Box:
    """One stream's action: one logit per class."""
    return gym.spaces.Box(-np.inf, np.inf, (task.num_classes,), np.float32)


def episode_keys(stream_keys: torch.Tensor, split: str, episode: int) -> torch.Tensor:
    """The key of each stream's `episode`-th episode; train and test splits never share one."""
    return rng.fold(stream_keys, split, episode)


@dataclass
class StepResult:
    obs: Observation
    reward: torch.Tensor  # (N,) float32, 0 on unscored steps
    loss: torch.Tensor  # (N,) float32 cross-entropy of this step's prediction
    correct: torch.Tensor  # (N,) bool
    label: torch.Tensor  # (N,) int64 label of this step
    scored: bool  # whether this step counts (few-shot: the query only)
    truncated: bool  # the episode has ended


class OnlineEpisode:
    """Runs episodes of a task over N streams; all streams step in lockstep."""

    def __init__(self, task: Task, episode_length: int) -> None:
        self.task = task
        self.episode_length = episode_length
        self.t = 0
        self.running = False
        self._y: torch.Tensor | None = None

    def begin(self, keys: torch.Tensor) -> Observation:
        """Start a new episode for every stream (keys: one per stream)."""
        self.task.reset(keys)
        self.t = 0
        self.running = True
        x, self._y = self.task.sample(0)
        feedback = x.new_zeros((x.shape[0], self.task.num_classes))
        return {"x": x, "error": feedback, "label": feedback.clone()}

    def step(self, logits: torch.Tensor) -> StepResult:
        """Score `logits` (N, C) for the current example and move to the next one."""
        if not self.running:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        y = self._y
        log_probs = F.log_softmax(logits, dim=-1)
        loss = F.nll_loss(log_probs, y, reduction="none")
        # scatter, not F.one_hot: one_hot checks its indices with a host-device sync on CUDA
        onehot = torch.zeros_like(logits).scatter_(1, y[:, None], 1.0)
        error = log_probs.exp() - onehot
        correct = logits.argmax(dim=-1) == y
        scored = self.task.query_step in (None, self.t)
        reward = -loss if scored else torch.zeros_like(loss)

        self.t += 1
        truncated = self.t >= self.episode_length
        if truncated:
            self.running = False
            x = logits.new_zeros((logits.shape[0], *self.task.input_shape))  # no further input
        else:
            x, self._y = self.task.sample(self.t)
        obs = {"x": x, "error": error, "label": onehot}
        return StepResult(obs, reward, loss, correct, y, scored, truncated)
