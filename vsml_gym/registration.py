"""Gymnasium ids of the suite, and `register_task` for users' own labelled data."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch

from vsml_gym.checks import is_int
from vsml_gym.data import DatasetInfo, LabelledImages
from vsml_gym.envs.options import option_names
from vsml_gym.tasks.catalog import labelled_task, register_task_builder

SINGLE_ENTRY_POINT = "vsml_gym.envs.single:OnlineEnv"
VECTOR_ENTRY_POINT = "vsml_gym.envs.vector:OnlineVectorEnv"

#: env id -> default keyword options of the built-in suite
BUILTIN_ENVS: dict[str, dict[str, Any]] = {
    "VSML/MNIST-Online-v0": {"task": "mnist"},
    "VSML/FashionMNIST-Online-v0": {"task": "fashion_mnist"},
    "VSML/KMNIST-Online-v0": {"task": "kmnist"},
    "VSML/EMNIST-Online-v0": {"task": "emnist"},
    "VSML/CIFAR10-Online-v0": {"task": "cifar10"},
    "VSML/SumSign-Online-v0": {"task": "sum_sign"},
    "VSML/Random-Online-v0": {"task": "random"},
    "VSML/Omniglot-5Way1Shot-v0": {"task": "omniglot", "n_way": 5, "k_shot": 1},
    "VSML/MNIST-RandProj-Online-v0": {"task": "mnist", "projection": "fixed"},
    "VSML/FashionMNIST-RandProj-Online-v0": {"task": "fashion_mnist", "projection": "fixed"},
}


def _register_env(env_id: str, kwargs: dict[str, Any]) -> None:
    gym.register(
        id=env_id,
        entry_point=SINGLE_ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs=kwargs,
        disable_env_checker=False,
    )


def register_builtin_envs() -> None:
    for env_id, kwargs in BUILTIN_ENVS.items():
        if env_id not in gym.registry:
            _register_env(env_id, kwargs)


def registered_env_ids() -> list[str]:
    """Every id whose environment is one of ours (built-in and user-registered)."""
    return sorted(env_id for env_id, spec in gym.registry.items() if spec.entry_point == SINGLE_ENTRY_POINT)


def register_task(
    env_id: str,
    *,
    train: Any,
    test: Any = None,
    num_classes: int | None = None,
    mean: float | None = None,
    std: float | None = None,
    **default_options: Any,
) -> str:
    """Turn labelled data into an online task with its own Gymnasium id.

    `train` / `test` are `(images, labels)` torch tensors or numpy arrays (images (N, C, H, W) or
    (N, H, W), uint8 pixels or floats; both splits of one image shape, since it fixes the
    observation space) or any torchvision-style dataset yielding (image, label) pairs (PIL images
    or tensors; converted once, here). `mean`/`std` standardise pixels (in [0, 1] for uint8);
    by default they are measured on `train`. Further keyword options (projection, classes,
    episode_length, ...) become the id's defaults. The new id supports `gym.make` and
    `gym.make_vec` exactly like the built-in tasks. Returns the id.
    """
    if env_id in gym.registry:
        raise ValueError(f"environment id {env_id!r} is already registered")
    splits = {"train": _as_tensors(train, "train")}
    if test is not None:
        splits["test"] = _as_tensors(test, "test")
        shapes = {split: tuple(images.shape[1:]) for split, (images, _) in splits.items()}
        if shapes["test"] != shapes["train"]:
            raise ValueError(f"test images have shape {shapes['test']} but train images {shapes['train']}: both splits "
                             f"must have one image shape (C, H, W), which fixes the env's observation space")
    largest = int(max(labels.max() for _, labels in splits.values()))
    if num_classes is not None and (not is_int(num_classes) or num_classes <= largest):
        raise ValueError(f"num_classes must be an int above the largest label, {largest}, got {num_classes!r}")
    classes = num_classes or largest + 1
    if mean is None or std is None:
        pixels = _unit_pixels(splits["train"][0])
        mean = float(pixels.mean()) if mean is None else mean
        std = float(pixels.std()) if std is None else std
    info = DatasetInfo(name=env_id, title=env_id, num_classes=classes, image_shape=tuple(splits["train"][0].shape[1:]),
                       mean=mean, std=std, splits=tuple(splits))
    data = {split: LabelledImages(images, labels, info, split) for split, (images, labels) in splits.items()}

    def build(split: str, device: torch.device | str, data_root: str | None, download: bool,
              classes: Sequence[int] | None = None):
        if split not in data:
            raise ValueError(f"task {env_id!r} was registered without a {split!r} split")
        return labelled_task(data[split], device, classes)

    register_task_builder(env_id, build, f"user task {env_id}")
    kwargs = {"task": env_id, **default_options}
    unknown = set(default_options) - set(option_names(env_id))
    if unknown:
        raise TypeError(f"unknown default option(s) {sorted(unknown)} for {env_id!r}")
    _register_env(env_id, kwargs)
    return env_id


def _as_tensors(split: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = (torch.Tensor, np.ndarray)
    if isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(part, arrays) for part in split):
        images, labels = (torch.as_tensor(part) for part in split)
    elif isinstance(split, (*arrays, str, bytes)):
        raise TypeError(f"{name} must be an (images, labels) pair of tensors or numpy arrays, or a dataset of "
                        f"(image, label) pairs, got a single {type(split).__name__}")
    else:
        images, labels = _collect(split)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{name}: expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
    if labels.shape[0] == 0:
        raise ValueError(f"{name} holds no examples: a split needs at least one (image, label) pair")
    if labels.is_floating_point() or labels.min() < 0:
        raise ValueError(f"{name}: labels must be non-negative integers")
    return images, labels.to(torch.int64)


def _collect(dataset: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.transforms.functional import pil_to_tensor

    images, labels = [], []
    for image, label in dataset:
        images.append(image if isinstance(image, torch.Tensor) else pil_to_tensor(image))
        labels.append(int(label))
    if not images:
        raise ValueError("the dataset is empty")
    return torch.stack(images), torch.tensor(labels)


def _unit_pixels(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
