"""The model zoo: meta-trained learners shipped in the package, named `<learner>@<tag>`.

An entry is two files in `agents/zoo/entries/`: `<name>.pt`, the meta-parameters with the
learner's name, options and parameter shapes, and `<name>.yaml`, its model card: what it was
meta-trained on, the configs and commands that reproduce it, the compute, the commit and its
meta-test table. A zoo name works wherever a learner name does:

    learner = make_learner("vsml@mnist", (1, 28, 28), 10)   # init_params() -> the shipped ones

A file whose bytes differ from its card's sha256, or an entry the code can no longer run as
recorded (other options or parameter shapes), is refused with a message saying why.
"""

from __future__ import annotations

import difflib
import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from agents.learner import Learner

ENTRIES = Path(__file__).resolve().parent / "entries"
FORMAT = "vsml-gym-zoo"
VERSION = 1
CARD_KEYS = ("name", "learner", "options", "num_params", "weights", "sha256", "summary", "meta_training", "meta_test")


class ZooError(ValueError):
    """A zoo entry that is unknown, corrupted, or no longer matches the code."""


class ZooShapeError(ZooError):
    """A zoo entry whose meta-parameters depend on input or output sizes other than an env's."""


def is_zoo_name(text: str) -> bool:
    """`<learner>@<tag>`, as opposed to a registry name or a checkpoint path."""
    return "@" in text and not text.endswith(".pt")


def zoo_names(directory: Path = ENTRIES) -> list[str]:
    return sorted(path.stem for path in Path(directory).glob("*@*.yaml"))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ZooEntry:
    """One shipped learner: build it for an env's sizes with `build`; `card` is its model card."""

    name: str
    learner: str
    options: dict[str, Any]
    params: torch.Tensor  # (D,)
    param_shapes: tuple[tuple[str, tuple[int, ...]], ...]
    trained_shape: tuple[tuple[int, ...], int]  # (input shape, classes) of its meta-training
    card: dict[str, Any]

    def build(self, input_shape: tuple[int, ...], num_classes: int, **overrides: Any) -> Learner:
        """The learner for inputs of `input_shape` and `num_classes` logits, running the shipped
        meta-parameters (`overrides` change options that leave the parameters' shapes alone)."""
        learner = self._make(input_shape, num_classes, overrides)
        if learner.param_spec.shapes != self.param_shapes:
            trained = self._make(*self.trained_shape, {})
            if trained.param_spec.shapes != self.param_shapes:
                raise ZooError(f"{self.name} no longer matches the code: learner {self.learner!r} with options "
                               f"{self.options} has {trained.num_params} meta-parameters, the entry "
                               f"{self.params.numel()} (shapes differ)")
            if overrides and self._make(*self.trained_shape, overrides).param_spec.shapes != self.param_shapes:
                raise ValueError(f"{self.name}: the options {overrides} change the shapes of its meta-parameters; "
                                 "an entry takes only options that leave them alone (its card lists its options)")
            inputs, classes = self.trained_shape
            raise ZooShapeError(f"{self.name} was meta-trained for inputs {inputs} with {classes} classes and its "
                                f"meta-parameters depend on those sizes: it cannot run on inputs "
                                f"{tuple(input_shape)} with {num_classes} classes")
        learner.use_meta_params(self.params, self.name)
        return learner

    def _make(self, input_shape: tuple[int, ...], num_classes: int, overrides: dict[str, Any]) -> Learner:
        """The entry's learner with `overrides`: an option the code refuses is the caller's
        mistake if the entry's own options still work, else the code has changed."""
        from agents.registry import make_learner

        try:
            return make_learner(self.learner, input_shape, num_classes, **{**self.options, **overrides})
        except TypeError as error:
            if overrides:
                self._make(input_shape, num_classes, {})
                raise
            raise ZooError(f"{self.name} no longer matches the code: learner {self.learner!r} refuses its options "
                           f"{self.options} ({error})") from error


def load_entry(name: str, directory: Path = ENTRIES) -> ZooEntry:
    """Read and check zoo entry `name` ('vsml@mnist')."""
    directory = Path(directory)
    card_path = directory / f"{name}.yaml"
    if not card_path.is_file():
        names = zoo_names(directory)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ZooError(f"unknown zoo entry {name!r}{hint}; the zoo holds {names} (vsml-gym zoo lists them)")
    try:
        card = yaml.safe_load(card_path.read_text())
    except yaml.YAMLError as error:
        raise ZooError(f"{card_path}: the model card is not valid YAML ({error})") from error
    missing = [key for key in CARD_KEYS if not isinstance(card, dict) or key not in card]
    if missing:
        raise ZooError(f"{card_path}: the model card lacks {missing}")
    weights = directory / card["weights"]
    if not weights.is_file():
        raise ZooError(f"{name}: its meta-parameters {weights} are missing")
    digest = sha256(weights)
    if digest != card["sha256"]:
        raise ZooError(f"{name}: {weights} is corrupted (sha256 {digest[:12]}..., its card says "
                       f"{str(card['sha256'])[:12]}...)")
    try:
        payload = torch.load(weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as error:
        raise ZooError(f"{name}: {weights} is not readable ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or payload.get("version") != VERSION:
        raise ZooError(f"{name}: {weights} is not a version-{VERSION} vsml-gym zoo file")
    params = payload["params"]
    if payload["name"] != name or payload["learner"] != card["learner"] or params.numel() != card["num_params"]:
        raise ZooError(f"{name}: {weights} does not hold what its card describes")
    shapes = tuple((str(key), tuple(int(s) for s in shape)) for key, shape in payload["param_shapes"])
    trained_inputs, trained_classes = payload["trained_shape"]
    return ZooEntry(name, payload["learner"], dict(payload["options"]), params.reshape(-1), shapes,
                    (tuple(trained_inputs), int(trained_classes)), card)


def write_weights(path: Path, name: str, learner: Learner, params: torch.Tensor, options: dict[str, Any]) -> str:
    """Write an entry's meta-parameters file for `learner` (built at its meta-training sizes);
    returns its sha256 for the card."""
    payload = {"format": FORMAT, "version": VERSION, "name": name, "learner": learner.name, "options": dict(options),
               "params": params.detach().reshape(-1).cpu().clone(),
               "param_shapes": [[key, list(shape)] for key, shape in learner.param_spec.shapes],
               "trained_shape": [list(learner.input_shape), learner.num_classes]}
    torch.save(payload, path)
    return sha256(path)
