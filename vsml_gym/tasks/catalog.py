"""Named tasks: how to build each task of the suite (and users' own) for a split and device."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from vsml_gym.data import DATASETS, LabelledImages, load_split
from vsml_gym.tasks.base import Task
from vsml_gym.tasks.classification import ClassificationTask, select_classes
from vsml_gym.tasks.few_shot import FewShotTask
from vsml_gym.tasks.synthetic import RandomTask, SumSignTask

SPLITS = ("train", "test")

#: build(split, device, data_root, download, **task_options) -> Task
TaskBuilder = Callable[..., Task]


@dataclass(frozen=True)
class TaskEntry:
    name: str
    build: TaskBuilder
    description: str

    @property
    def options(self) -> tuple[str, ...]:
        """Task-specific keyword options of the builder (beyond split/device/data_root/download)."""
        params = inspect.signature(self.build).parameters
        return tuple(p for p in params if p not in ("split", "device", "data_root", "download"))


_TASKS: dict[str, TaskEntry] = {}


def register_task_builder(name: str, build: TaskBuilder, description: str = "", overwrite: bool = False) -> None:
    if name in _TASKS and not overwrite:
        raise ValueError(f"a task named {name!r} is already registered")
    _TASKS[name] = TaskEntry(name, build, description)


def task_entry(name: str) -> TaskEntry:
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(_TASKS)}") from None


def task_names() -> list[str]:
    return sorted(_TASKS)


def labelled_task(
    data: LabelledImages,
    device: torch.device | str,
    classes: Sequence[int] | None = None,
) -> ClassificationTask:
    images, labels, num_classes = data.images, data.labels, data.num_classes
    if classes is not None:
        images, labels = select_classes(images, labels, classes, num_classes)
        num_classes = len(classes)
    return ClassificationTask(images, labels, num_classes, data.info.mean, data.info.std, device)


def _dataset_builder(dataset: str) -> TaskBuilder:
    def build(
        split: str,
        device: torch.device | str,
        data_root: str | None,
        download: bool,
        classes: Sequence[int] | None = None,
    ) -> Task:
        return labelled_task(load_split(dataset, split, data_root, download), device, classes)

    return build


def _build_omniglot(
    split: str, device: torch.device | str, data_root: str | None, download: bool, n_way: int = 5, k_shot: int = 1
) -> Task:
    data = load_split("omniglot", split, data_root, download)
    return FewShotTask(data.images, data.labels, data.info.mean, data.info.std, device, n_way=n_way, k_shot=k_shot)


def _build_sum_sign(split: str, device: torch.device | str, data_root: str | None, download: bool) -> Task:
    return SumSignTask(device)


def _build_random(
    split: str, device: torch.device | str, data_root: str | None, download: bool, num_pairs: int = 20
) -> Task:
    return RandomTask(device, num_pairs=num_pairs)


def _register_builtins() -> None:
    for name in ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10"):
        register_task_builder(name, _dataset_builder(name), f"online classification of {DATASETS[name].title}")
    register_task_builder("omniglot", _build_omniglot, "N-way K-shot episodes of Omniglot characters")
    register_task_builder("sum_sign", _build_sum_sign, "label = sign of the sum of a noisy input")
    register_task_builder("random", _build_random, "memorise 20 random input/label pairs")


_register_builtins()


def build_task(name: str, split: str, device: torch.device | str, data_root: str | None, download: bool,
               **options: Any) -> Task:
    """Build a registered task; options are checked against what the task accepts."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    entry = task_entry(name)
    return entry.build(split=split, device=device, data_root=data_root, download=download, **options)
