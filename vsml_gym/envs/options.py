"""Environment keyword options: validated once, then turned into a (possibly transformed) task."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from vsml_gym.checks import is_int, positive_ints
from vsml_gym.data import resolve_data_root
from vsml_gym.tasks.base import Task
from vsml_gym.tasks.catalog import SPLITS, build_task, task_entry
from vsml_gym.tasks.transforms import (
    MODES,
    LabelPermutation,
    PadInput,
    PadOutputs,
    PixelShuffle,
    RandomProjection,
    Resize,
)

#: episode lengths of the reference: meta-training episodes are short, meta-test ones long
DEFAULT_EPISODE_LENGTH = {"train": 500, "test": 2000}


@dataclass(frozen=True)
class TaskOptions:
    """Everything that defines an online task stream, shared by the single and vector envs."""

    task: str
    split: str = "train"
    episode_length: int | None = None
    data_root: str | None = None
    download: bool = False
    task_seed: int = 0
    resize: int | tuple[int, int] | None = None  # stored as (height, width)
    pad_input: tuple[int, int, int] | None = None
    pixel_shuffle: bool = False
    projection: str | None = None
    label_permutation: str | None = None
    pad_outputs: int | None = None
    task_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.episode_length is not None and not _is_positive_int(self.episode_length):
            raise ValueError(f"episode_length must be a positive int, got {self.episode_length!r}")
        if not is_int(self.task_seed) or self.task_seed < 0:
            raise ValueError(f"task_seed must be a non-negative int, got {self.task_seed!r}")
        resolve_data_root(self.data_root)  # a data_root of the wrong type fails here, also for tasks without data
        if self.resize is not None:
            object.__setattr__(self, "resize", positive_ints(
                "resize", self.resize, 2, "a positive int or a (height, width) pair of positive ints", one_for_all=True))
        if self.pad_input is not None:
            object.__setattr__(self, "pad_input", positive_ints(
                "pad_input", self.pad_input, 3, "a (channels, height, width) triple of positive ints"))
        for name in ("download", "pixel_shuffle"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("projection", "label_permutation"):
            if getattr(self, name) not in (None, *MODES):
                raise ValueError(f"{name} must be None, 'fixed' or 'episode', got {getattr(self, name)!r}")
        if self.pad_outputs is not None and not _is_positive_int(self.pad_outputs):
            raise ValueError(f"pad_outputs must be a positive int, got {self.pad_outputs!r}")

    def build(self, device: torch.device | str) -> tuple[Task, int]:
        """The task with its transforms applied, and the episode length."""
        task = build_task(self.task, self.split, device, self.data_root, self.download, **self.task_options)
        if self.resize is not None:
            task = Resize(task, self.resize)
        if self.pad_input is not None:
            task = PadInput(task, self.pad_input)
        if self.pixel_shuffle:
            task = PixelShuffle(task, self.task_seed)
        if self.projection is not None:
            task = RandomProjection(task, self.projection, self.task_seed)
        if self.label_permutation is not None:
            task = LabelPermutation(task, self.label_permutation, self.task_seed)
        if self.pad_outputs is not None:
            task = PadOutputs(task, self.pad_outputs)
        return task, self._episode_length(task)

    def _episode_length(self, task: Task) -> int:
        fixed = task.fixed_episode_length
        if fixed is None:
            return self.episode_length or DEFAULT_EPISODE_LENGTH[self.split]
        if self.episode_length not in (None, fixed):
            raise ValueError(f"task {self.task!r} has fixed episodes of {fixed} steps; got episode_length={self.episode_length}")
        return fixed


_GENERIC = tuple(f for f in TaskOptions.__dataclass_fields__ if f not in ("task", "task_options"))


def parse_options(kwargs: dict[str, Any], also_valid: Iterable[str] = ()) -> TaskOptions:
    """Turn env kwargs into task options, rejecting unknown names (`also_valid`: the env's
    own parameters, named in the error message)."""
    kwargs = dict(kwargs)
    if "task" not in kwargs:
        raise TypeError("missing the 'task' option (the registered task name, e.g. 'mnist')")
    task = kwargs.pop("task")
    specific = task_entry(task).options
    allowed = (*option_names(task), *also_valid)
    unknown = [name for name in kwargs if name not in allowed]
    if unknown:
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(name, allowed, 1))
                 else repr(name) for name in unknown]
        raise TypeError(f"unknown option(s) {', '.join(hints)} for task {task!r}; valid options: {sorted(allowed)}")
    generic = {name: value for name, value in kwargs.items() if name in _GENERIC}
    task_options = {name: value for name, value in kwargs.items() if name in specific}
    return TaskOptions(task=task, task_options=task_options, **generic)


def option_names(task: str) -> tuple[str, ...]:
    """Every keyword option an env of `task` accepts (generic and task-specific)."""
    return (*_GENERIC, *task_entry(task).options)


def _is_positive_int(value: Any) -> bool:
    return is_int(value) and value > 0
