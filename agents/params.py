"""Flat meta-parameter vectors with named views.

Evolution strategies see a learner's meta-parameters as one vector per population member; a
learner sees named tensors. `ParamSpec` is the bridge: the population's parameters live in one
(P, D) tensor and `unflatten` returns views into it, so nothing is copied per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParamSpec:
    """Ordered names and shapes of one member's meta-parameters."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, **shapes: tuple[int, ...]) -> "ParamSpec":
        return cls(tuple((name, tuple(shape)) for name, shape in shapes.items()))

    @property
    def size(self) -> int:
        return sum(math.prod(shape) for _, shape in self.shapes)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """(P, D) -> {name: (P, *shape)} views."""
        if flat.dim() != 2 or flat.shape[1] != self.size:
            raise ValueError(f"expected meta-parameters of shape (population, {self.size}), got {tuple(flat.shape)}")
        views, offset = {}, 0
        for name, shape in self.shapes:
            count = math.prod(shape)
            views[name] = flat[:, offset : offset + count].view(flat.shape[0], *shape)
            offset += count
        return views

    def flatten(self, named: dict[str, torch.Tensor], population: int | None = None) -> torch.Tensor:
        """{name: (P, *shape)} -> (P, D); `population` is needed only when there are no tensors."""
        missing = [name for name, _ in self.shapes if name not in named]
        if missing:
            raise ValueError(f"missing meta-parameters {missing}")
        if population is None:
            if not named:
                raise ValueError("cannot infer the population size from no tensors: pass population=")
            population = next(iter(named.values())).shape[0]
        parts = []
        for name, shape in self.shapes:
            tensor = named[name]
            if tuple(tensor.shape[1:]) != shape:
                raise ValueError(f"{name}: expected shape (P, {', '.join(map(str, shape))}), got {tuple(tensor.shape)}")
            parts.append(tensor.reshape(population, -1))
        return torch.cat(parts, dim=1) if parts else torch.zeros(population, 0)


def truncated_normal(shape: tuple[int, ...], std: float, generator: torch.Generator, device: torch.device | str = "cpu",
                     dtype: torch.dtype | None = None) -> torch.Tensor:
    """Normal(0, std) truncated at two standard deviations, rescaled so the std is `std`
    (the common 'truncated normal, std 1/sqrt(fan_in)' initialiser)."""
    scale = std / 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
    out = torch.empty(shape, device=device, dtype=dtype)
    return torch.nn.init.trunc_normal_(out, 0.0, scale, -2 * scale, 2 * scale, generator=generator)
