"""Online classification over a labelled image set (MNIST, CIFAR-10, users' own data)."""

from __future__ import annotations

from typing import Sequence

import torch

from vsml_gym import rng
from vsml_gym.checks import is_int_sequence
from vsml_gym.tasks.base import Task

_BLOCK = 256  # steps whose example indices are drawn together
#: examples of consecutive steps are gathered and standardised together, as many steps as fit
#: this many bytes (a power of two up to _BLOCK): a step then costs one view instead of a gather
#: and three element-wise ops. On the CPU the block must stay in the caches (with 8 MB, steps of
#: 64 or more MNIST streams got slower than gathering every step); on a GPU, where the ops'
#: launches are the cost, 8 MB (benchmarks/results/README.md, native vector env).
_GATHER_BYTES_CPU = 2 << 20
_GATHER_BYTES_GPU = 8 << 20


def steps_per_gather(num_streams: int, example_size: int, budget: int) -> int:
    """Steps gathered at once: the largest power of two <= _BLOCK whose float32 examples of all
    streams fit `budget` bytes (at least 1)."""
    steps = 1
    while steps < _BLOCK and 2 * steps * num_streams * example_size * 4 <= budget:
        steps *= 2
    return steps


class Standardiser:
    """Maps stored pixels to standardised floats, ((p / 255 if uint8 else p) - mean) / std."""

    def __init__(self, mean: float, std: float, dtype: torch.dtype) -> None:
        if not std > 0:
            raise ValueError(f"pixel std must be positive, got {std}")
        pixel_scale = 1.0 / 255.0 if dtype == torch.uint8 else 1.0
        self.scale = pixel_scale / std
        self.shift = -mean / std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        # in place on a fresh copy: a batch of large fresh buffers costs page faults on the CPU
        return pixels.to(torch.float32, copy=True).mul_(self.scale).add_(self.shift)


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for an integer index of any shape: rows copied by index_select, which on the
    CPU is 6x (64 rows of MNIST) to 14x (1024 rows) faster than advanced indexing."""
    return table.index_select(0, index.flatten()).view(*index.shape, *table.shape[1:])


def select_classes(
    images: torch.Tensor, labels: torch.Tensor, classes: Sequence[int], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only `classes`, renumbered 0..len(classes)-1 in the given order."""
    accepted = f"a list of at least 2 distinct ints in 0..{num_classes - 1}"
    if not is_int_sequence(classes):
        raise TypeError(f"classes must be {accepted}, got {classes!r}")
    classes = [int(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be {accepted} (a task needs two classes to tell apart), got {classes}")
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"classes {bad} are out of range: classes must be {accepted}")
    lookup = torch.full((num_classes,), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    new_labels = lookup[labels]
    keep = new_labels >= 0
    return images[keep], new_labels[keep]


class ClassificationTask(Task):
    """Each step shows one example drawn uniformly (with replacement) from the split."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        mean: float,
        std: float,
        device: torch.device | str,
    ) -> None:
        super().__init__(device)
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        if images.shape[0] == 0:
            raise ValueError("the dataset is empty")
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.standardise = Standardiser(mean, std, images.dtype)
        self.input_shape = tuple(images.shape[1:])
        self.num_classes = int(num_classes)
        self._examples: rng.BlockwiseDraws | None = None

    def reset(self, keys: torch.Tensor) -> None:
        size = self.images.shape[0]
        indices = rng.BlockwiseDraws(  # step-major and contiguous, so are the gathered examples
            lambda block: rng.randint(rng.fold(keys, "index", block), size, (_BLOCK,)).T.contiguous(), _BLOCK)
        budget = _GATHER_BYTES_CPU if self.device.type == "cpu" else _GATHER_BYTES_GPU
        steps = steps_per_gather(keys.shape[0], self.images[0].numel(), budget)

        def gather(block: int) -> tuple[torch.Tensor, torch.Tensor]:  # (steps, N, ...) and (steps, N)
            index = indices.span(block * steps, (block + 1) * steps)
            return self.standardise(gather_rows(self.images, index)), gather_rows(self.labels, index)

        self._examples = rng.BlockwiseDraws(gather, steps)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._examples.at(t)
