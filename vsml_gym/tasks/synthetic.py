"""Tasks generated on the fly: Sum Sign (a simple rule) and Random (pure memorisation)."""

from __future__ import annotations

import math

import torch

from vsml_gym import rng
from vsml_gym.checks import int_in_range
from vsml_gym.tasks.base import Task

_IMAGE_SHAPE = (1, 28, 28)
_EPOCHS_PER_BLOCK = 16  # Random task: epochs whose presentation orders are drawn together


class SumSignTask(Task):
    """x = mu + z with mu ~ U(-1, 1) per example and z ~ N(0, 1) truncated at +-2 per pixel;
    the label is 1 if sum(x) >= 0 else 0."""

    num_classes = 2
    truncation = 2.0

    def __init__(self, device: torch.device | str, input_shape: tuple[int, ...] = _IMAGE_SHAPE) -> None:
        super().__init__(device)
        self.input_shape = tuple(input_shape)
        cdf = 0.5 * (1.0 + math.erf(self.truncation / math.sqrt(2.0)))
        self._low, self._width = 1.0 - cdf, 2.0 * cdf - 1.0  # uniform range of the truncated CDF
        self._keys: torch.Tensor | None = None

    def reset(self, keys: torch.Tensor) -> None:
        self._keys = keys

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        size = math.prod(self.input_shape)
        u = rng.uniform(rng.fold(self._keys, "example", t), (size + 1,))  # the mean, then the noise
        mu = u[:, :1] * 2.0 - 1.0
        z = math.sqrt(2.0) * torch.erfinv(2.0 * (self._low + self._width * u[:, 1:]) - 1.0)  # exact truncation
        x = (mu + z).view(-1, *self.input_shape)
        y = (x.flatten(1).sum(1) >= 0).to(torch.int64)
        return x, y


class RandomTask(Task):
    """`num_pairs` N(0, 1) inputs with uniformly random labels, drawn once per episode and
    shown in a fresh random order every `num_pairs` steps: nothing to generalise, only to
    memorise."""

    def __init__(
        self,
        device: torch.device | str,
        num_pairs: int = 20,
        num_classes: int = 10,
        input_shape: tuple[int, ...] = _IMAGE_SHAPE,
    ) -> None:
        super().__init__(device)
        self.num_pairs = int_in_range("num_pairs", num_pairs, 1)
        self.num_classes = int_in_range("num_classes", num_classes, 2)
        self.input_shape = tuple(input_shape)
        self._inputs: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._order: rng.BlockwiseDraws | None = None

    def reset(self, keys: torch.Tensor) -> None:
        pairs, epochs = self.num_pairs, _EPOCHS_PER_BLOCK

        def orders(block: int) -> torch.Tensor:  # a fresh permutation of the pairs every epoch
            epoch = torch.arange(block * epochs, (block + 1) * epochs, device=self.device)
            return rng.permutation(rng.fold(keys[:, None], "order", epoch), pairs).flatten(1).T

        self._order = rng.BlockwiseDraws(orders, epochs * pairs)
        self._inputs = rng.normal(rng.fold(keys, "inputs"), (self.num_pairs, *self.input_shape))
        self._labels = rng.randint(rng.fold(keys, "labels"), self.num_classes, (self.num_pairs,))

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self._order.at(t)
        rows = torch.arange(pair.shape[0], device=self.device)
        return self._inputs[rows, pair], self._labels[rows, pair]
