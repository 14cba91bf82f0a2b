"""What each built-in dataset is: size, classes and pixel statistics, independent of where it lives."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Description of a labelled image dataset.

    ``num_classes`` is None when it depends on the split (Omniglot: one class per character).
    ``mean``/``std`` are the pixel statistics on [0, 1] used to standardise inputs.
    ``torchvision_class`` names the torchvision dataset that downloads it (its folder name for IDX data).
    ``transposed_on_disk`` marks files that store images transposed (EMNIST); loaders deliver them upright.
    """

    name: str
    title: str
    num_classes: int | None
    image_shape: tuple[int, int, int]
    mean: float
    std: float
    splits: tuple[str, ...] = ("train", "test")
    torchvision_class: str | None = None
    transposed_on_disk: bool = False


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", "MNIST", 10, (1, 28, 28), 0.1307, 0.3081, torchvision_class="MNIST"),
        DatasetInfo("fashion_mnist", "Fashion-MNIST", 10, (1, 28, 28), 0.2860, 0.3530,
                    torchvision_class="FashionMNIST"),
        DatasetInfo("kmnist", "KMNIST", 10, (1, 28, 28), 0.1918, 0.3483, torchvision_class="KMNIST"),
        DatasetInfo("emnist", "EMNIST (byclass)", 62, (1, 28, 28), 0.1739, 0.3319, torchvision_class="EMNIST",
                    transposed_on_disk=True),
        DatasetInfo("cifar10", "CIFAR-10", 10, (3, 32, 32), 0.4734, 0.2516, torchvision_class="CIFAR10"),
        DatasetInfo("omniglot", "Omniglot", None, (1, 28, 28), 0.9221, 0.2681, torchvision_class="Omniglot"),
    )
}


def get_info(name: str, split: str | None = None) -> DatasetInfo:
    """Look up a built-in dataset (and check the split), with a did-you-mean hint for typos."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}.{hint}")
    info = DATASETS[name]
    if split is not None and split not in info.splits:
        raise ValueError(f"unknown split {split!r} of {name!r}; valid splits: {', '.join(info.splits)}")
    return info
