"""EvoTorch search algorithms with the presets of the suite.

`openai_es` is the reference's ES: antithetic pairs, fixed sigma 0.05, Adam (lr 0.025, betas
0.9/0.999) on the raw (unranked) fitness differences; with EvoTorch that is PGPE with a zero
stdev learning rate and no ranking. The others are EvoTorch's own algorithms as alternatives.
"""

from __future__ import annotations

from typing import Any

import torch
from evotorch import Problem
from evotorch.algorithms import CMAES, PGPE, SNES
from evotorch.algorithms.searchalgorithm import SearchAlgorithm

PRESETS: dict[str, tuple[type, dict[str, Any]]] = {
    "openai_es": (PGPE, {"center_learning_rate": 0.025, "stdev_learning_rate": 0.0, "stdev_init": 0.05,
                         "optimizer": "adam", "optimizer_config": {"beta1": 0.9, "beta2": 0.999},
                         "ranking_method": None, "symmetric": True}),
    "pgpe": (PGPE, {"center_learning_rate": 0.025, "stdev_learning_rate": 0.1, "stdev_init": 0.05,
                    "optimizer": "adam", "ranking_method": "centered", "symmetric": True}),
    "snes": (SNES, {"stdev_init": 0.05}),
    "sep_cmaes": (CMAES, {"stdev_init": 0.05, "separable": True}),
}


def is_antithetic(name: str, options: dict[str, Any] | None = None) -> bool:
    """Whether the searcher samples (theta + e, theta - e) pairs next to each other."""
    cls, preset = _preset(name)
    return cls is PGPE and {**preset, **(options or {})}.get("symmetric", True)


def make_searcher(name: str, problem: Problem, popsize: int, center: torch.Tensor,
                  options: dict[str, Any] | None = None) -> SearchAlgorithm:
    cls, preset = _preset(name)
    return cls(problem, popsize=popsize, center_init=center, **{**preset, **(options or {})})


def _preset(name: str) -> tuple[type, dict[str, Any]]:
    if name not in PRESETS:
        raise ValueError(f"unknown searcher {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
