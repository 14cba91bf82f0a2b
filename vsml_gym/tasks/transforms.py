"""Augmentations and invariance probes, composable over any task.

"fixed" transforms draw their randomness once from `task_seed` (the same for every stream,
like the reference's one projection per worker); "episode" transforms draw it from each
stream's episode key (a new projection / label permutation every episode, GPICL-style).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from vsml_gym import rng
from vsml_gym.tasks.base import Task, TaskWrapper

Mode = Literal["fixed", "episode"]
MODES = ("fixed", "episode")


def _check_mode(name: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{name} must be one of {MODES} (or None), got {mode!r}")


def _fixed_key(task_seed: int, name: str, device: torch.device) -> torch.Tensor:
    return rng.fold(rng.seed_keys([task_seed], device), name)


class Resize(TaskWrapper):
    """Resize images to (H, W) with antialiased bilinear interpolation."""

    def __init__(self, task: Task, size: tuple[int, int]) -> None:
        super().__init__(task)
        if len(task.input_shape) != 3:
            raise ValueError(f"resize needs image inputs (C, H, W), got shape {task.input_shape}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"resize must be a positive int or (height, width), got {size}")
        self.size = (int(size[0]), int(size[1]))
        self.input_shape = (task.input_shape[0], *self.size)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.sample(t)
        return F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False), y


class PadInput(TaskWrapper):
    """Zero-pad images (centred, extra channels zero) to a larger (C, H, W)."""

    def __init__(self, task: Task, shape: tuple[int, int, int]) -> None:
        super().__init__(task)
        shape = tuple(int(s) for s in shape)
        if len(task.input_shape) != 3 or len(shape) != 3:
            raise ValueError(f"pad_input needs (C, H, W) shapes, got task {task.input_shape} and target {shape}")
        if any(target < have for target, have in zip(shape, task.input_shape)):
            raise ValueError(f"pad_input target {shape} is smaller than the task's input shape {task.input_shape}")
        (c, h, w), (tc, th, tw) = task.input_shape, shape
        top, left = (th - h) // 2, (tw - w) // 2
        self._padding = (left, tw - w - left, top, th - h - top, 0, tc - c)
        self.input_shape = shape

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.sample(t)
        return F.pad(x, self._padding), y


class PixelShuffle(TaskWrapper):
    """Permute the input entries with one fixed permutation drawn from task_seed."""

    def __init__(self, task: Task, task_seed: int) -> None:
        super().__init__(task)
        size = math.prod(task.input_shape)
        self.permutation = rng.permutation(_fixed_key(task_seed, "pixel_shuffle", self.device), size)[0]

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.sample(t)
        return x.flatten(1)[:, self.permutation].view_as(x), y


class RandomProjection(TaskWrapper):
    """x <- flat(x) @ P with P ~ Glorot uniform, limit sqrt(6 / (D + D)); shape is kept."""

    def __init__(self, task: Task, mode: Mode, task_seed: int) -> None:
        super().__init__(task)
        _check_mode("projection", mode)
        self.mode = mode
        self.size = math.prod(task.input_shape)
        self.limit = math.sqrt(6.0 / (2 * self.size))
        self.matrix: torch.Tensor | None = None
        if mode == "fixed":
            self.matrix = self._draw(_fixed_key(task_seed, "projection", self.device))[0]

    def _draw(self, keys: torch.Tensor) -> torch.Tensor:
        return (rng.uniform(rng.fold(keys, "projection"), (self.size, self.size)) * 2.0 - 1.0) * self.limit

    def reset(self, keys: torch.Tensor) -> None:
        super().reset(keys)
        if self.mode == "episode":
            self.matrix = self._draw(keys)  # (N, D, D)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.sample(t)
        flat = x.flatten(1)
        if self.mode == "fixed":
            projected = flat @ self.matrix
        else:
            projected = torch.bmm(flat.unsqueeze(1), self.matrix).squeeze(1)
        return projected.view_as(x), y


class LabelPermutation(TaskWrapper):
    """Relabel classes with a random permutation (fixed, or new every episode)."""

    def __init__(self, task: Task, mode: Mode, task_seed: int) -> None:
        super().__init__(task)
        _check_mode("label_permutation", mode)
        self.mode = mode
        self.permutation: torch.Tensor | None = None
        if mode == "fixed":
            self.permutation = rng.permutation(_fixed_key(task_seed, "labels", self.device), self.num_classes)[0]

    def reset(self, keys: torch.Tensor) -> None:
        super().reset(keys)
        if self.mode == "episode":
            self.permutation = rng.permutation(rng.fold(keys, "label_permutation"), self.num_classes)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.task.sample(t)
        if self.mode == "fixed":
            return x, self.permutation[y]
        return x, self.permutation.gather(1, y[:, None]).squeeze(1)


class PadOutputs(TaskWrapper):
    """Ask for more logits than there are classes (e.g. 62, EMNIST's count, for every task)."""

    def __init__(self, task: Task, num_outputs: int) -> None:
        super().__init__(task)
        if num_outputs < task.num_classes:
            raise ValueError(f"pad_outputs={num_outputs} is fewer than the task's {task.num_classes} classes")
        self.num_classes = int(num_outputs)
