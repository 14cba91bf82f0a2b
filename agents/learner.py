"""The learner protocol: what an environment loop or a meta-trainer needs from a learning algorithm.

A learner is stateless code; everything that changes lives in tensors with leading axes
(P, B) = (population members, streams per member):

- meta-parameters: one flat (P, D) tensor (`init_params`), named views via `param_spec`;
- learner state (fast weights, LSTM states, ...): a dict of (P, B, ...) tensors (`initial_state`);
- `step(params, state, obs) -> (logits, state)` advances every member on every stream at once
  (`step_donated`: the same for callers that never read the old state again).

Observations follow the environment suite: obs["x"] (P, B, *input_shape), obs["error"] and
obs["label"] (P, B, C) carry the feedback of the previous step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from agents.params import ParamSpec
from vsml_gym.checks import is_int

State = dict[str, torch.Tensor]
Observation = dict[str, torch.Tensor]


class Learner(ABC):
    """Base class of all learners. Subclasses set `name`, build `param_spec` in `__init__` and
    implement `init_named_params`, `initial_state` and `step`."""

    name: ClassVar[str] = ""
    #: whether the learner has meta-parameters worth meta-training (SGD/Adam have none)
    meta_learned: ClassVar[bool] = True
    #: True when the B streams of a member form ONE learner (a batched learning algorithm):
    #: independent runs then need one member each, not one stream each
    pools_streams: bool = False
    #: meta-parameters that `init_params` hands out instead of fresh ones (a zoo entry's), and their source
    meta_params: torch.Tensor | None = None
    meta_params_source: str = ""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        self.input_shape, self.num_classes = check_sizes(input_shape, num_classes)
        self.param_spec = ParamSpec.of()
        self.config: dict[str, Any] = {}  # subclasses record their options here

    @property
    def num_params(self) -> int:
        return self.param_spec.size

    def init_params(self, population: int = 1, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
        """Fresh meta-parameters for `population` members, (P, D); member p is the same for
        any population size (drawn from seed + p). A learner given meta-trained ones
        (`use_meta_params`) returns those for every member instead."""
        if not isinstance(population, int) or isinstance(population, bool) or population < 1:
            raise ValueError(f"population must be a positive int (members to draw), got {population!r}")
        if self.meta_params is not None:
            return self.meta_params.to(device).expand(population, -1).clone()
        members = []
        for member in range(population):
            generator = torch.Generator().manual_seed(seed + member)
            named = self.init_named_params(generator)
            members.append(self.param_spec.flatten({k: v.unsqueeze(0) for k, v in named.items()}, population=1))
        return torch.cat(members).to(device)

    def use_meta_params(self, params: torch.Tensor, source: str) -> None:
        """Make `init_params` return `params` (D,), meta-trained elsewhere (`source`: e.g. a zoo
        entry's name), so that every caller that starts from `init_params` runs them."""
        if tuple(params.shape) != (self.num_params,):
            raise ValueError(f"{source}: expected {self.num_params} meta-parameters, got shape {tuple(params.shape)}")
        self.meta_params = params.detach().clone()
        self.meta_params_source = source

    @abstractmethod
    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One member's meta-parameters by name (CPU tensors, shapes as in `param_spec`)."""

    @abstractmethod
    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        """The state at the start of an episode for each of P members x `batch` streams.
        `generator` lives on the params' device and drives any random initialisation."""

    @abstractmethod
    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        """Predict logits (P, B, C) for obs["x"] after learning from obs["error"]/obs["label"]."""

    def step_donated(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        """`step` for a caller that hands `state` over: it never reads those tensors again (a
        rollout does not), so the learner may write the new state into them instead of fresh
        memory. The results are the same as `step`'s. Default: `step`."""
        return self.step(params, state, obs)

    def describe(self) -> dict[str, Any]:
        """Name, sizes and configuration, for logs and result files."""
        described = {"learner": self.name, "num_params": self.num_params, "input_shape": list(self.input_shape),
                     "num_classes": self.num_classes, **self.config}
        if self.meta_params_source:
            described["meta_params"] = self.meta_params_source
        return described


def check_sizes(input_shape: Any, num_classes: Any) -> tuple[tuple[int, ...], int]:
    """A learner's sizes as the envs give them: a non-empty shape of positive ints, a positive
    number of logits (the envs have >= 2 classes; one logit is a valid network all the same)."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if not shape or not all(is_int(s) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive ints such as (1, 28, 28) "
                         f"(env.single_observation_space['x'].shape), got {input_shape!r}")
    if not is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int (one logit per class), got {num_classes!r}")
    return tuple(int(s) for s in shape), int(num_classes)


def check_positive(**options: Any) -> None:
    """Sizes, counts and rates that must be > 0 (None: the option's default): one clear error
    that names the option, not a shape error later."""
    for name, value in options.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
