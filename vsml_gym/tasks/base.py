"""The batched task protocol that every online supervised task implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Task(ABC):
    """A batch of independent example streams of one classification task, on one device.

    Environments drive a task; a task knows nothing about environments or learners.
    `reset(keys)` starts a new episode for every stream (one counter-based RNG key per
    stream, see `vsml_gym.rng`); `sample(t)` returns the t-th example of every stream.
    Because examples are pure functions of (key, t), sampling needs no per-stream state
    beyond what `reset` precomputes, and a stream looks the same in any batch.
    """

    #: shape of one input x, e.g. (1, 28, 28)
    input_shape: tuple[int, ...]
    #: number of logits a learner must output
    num_classes: int
    #: episode length imposed by the task (few-shot episodes), or None if free
    fixed_episode_length: int | None = None
    #: the only scored step of an episode (few-shot query), or None if all steps count
    query_step: int | None = None

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)

    @abstractmethod
    def reset(self, keys: torch.Tensor) -> None:
        """Start a new episode for each stream; `keys` is an int64 tensor of shape (N,)."""

    @abstractmethod
    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Example t of every stream: x float32 (N, *input_shape), y int64 (N,). They may be
        views of the task's cached draws (a block of steps is made at once): read-only, clone
        them before writing into them."""


class TaskWrapper(Task):
    """A task that transforms another task's stream (projection, padding, ...)."""

    def __init__(self, task: Task) -> None:
        super().__init__(task.device)
        self.task = task
        self.input_shape = task.input_shape
        self.num_classes = task.num_classes
        self.fixed_episode_length = task.fixed_episode_length
        self.query_step = task.query_step

    def reset(self, keys: torch.Tensor) -> None:
        self.task.reset(keys)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.task.sample(t)
