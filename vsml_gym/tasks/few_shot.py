"""N-way K-shot episodes (Omniglot 5-way 1-shot): a support set, then one scored query."""

from __future__ import annotations

import torch

from vsml_gym import rng
from vsml_gym.checks import int_in_range
from vsml_gym.tasks.base import Task
from vsml_gym.tasks.classification import Standardiser, gather_rows


class FewShotTask(Task):
    """An episode shows n_way * k_shot support examples of n_way distinct classes in random
    order, then one query: a different drawing of one of those classes. Labels are renumbered
    0..n_way-1 per episode, so only the support examples tell which class is which.

    `images` must be grouped by class with the same number of drawings per class:
    image index = class * per_class + drawing.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: float,
        std: float,
        device: torch.device | str,
        n_way: int = 5,
        k_shot: int = 1,
    ) -> None:
        super().__init__(device)
        num_source_classes = int(labels.max()) + 1
        per_class, remainder = divmod(images.shape[0], num_source_classes)
        expected = torch.arange(num_source_classes).repeat_interleave(per_class)
        if remainder or not torch.equal(labels.cpu(), expected):
            raise ValueError("few-shot images must be grouped by class with equally many drawings per class")
        n_way = int_in_range("n_way", n_way, 2, num_source_classes)
        k_shot = int_in_range("k_shot (one drawing of each class is kept for the query)", k_shot, 1, per_class - 1)
        self.images = images.to(self.device)
        self.standardise = Standardiser(mean, std, images.dtype)
        self.num_source_classes = num_source_classes
        self.per_class = per_class
        self.n_way, self.k_shot = n_way, k_shot
        self.input_shape = tuple(images.shape[1:])
        self.num_classes = self.n_way
        self.query_step = self.n_way * self.k_shot
        self.fixed_episode_length = self.query_step + 1
        self._index: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None

    def reset(self, keys: torch.Tensor) -> None:
        n_way, k_shot = self.n_way, self.k_shot
        classes = rng.permutation(rng.fold(keys, "classes"), self.num_source_classes)[:, :n_way]
        way_keys = rng.fold(keys[:, None], "drawings", torch.arange(n_way, device=self.device))
        drawings = rng.permutation(way_keys, self.per_class)[..., : k_shot + 1]  # (N, n_way, k+1)
        first_image = classes * self.per_class  # (N, n_way)

        order = rng.permutation(rng.fold(keys, "order"), n_way * k_shot)  # (N, n_way*k)
        support_way = order // k_shot
        support_drawings = drawings[..., :k_shot].reshape(keys.shape[0], n_way * k_shot)  # index = way*k+shot
        support = first_image.gather(1, support_way) + support_drawings.gather(1, order)

        query_way = rng.randint(rng.fold(keys, "query"), n_way)  # (N,)
        query = first_image.gather(1, query_way[:, None]) + drawings[:, :, k_shot].gather(1, query_way[:, None])

        self._index = torch.cat([support, query], dim=1)
        self._labels = torch.cat([support_way, query_way[:, None]], dim=1)

    def sample(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.standardise(gather_rows(self.images, self._index[:, t])), self._labels[:, t]
