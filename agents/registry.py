"""Learners by name: the built-in ones and third-party plug-ins.

Plug-ins register with `register_learner(name, factory)` or declare a Python entry point in the
group ``vsml_gym.learners`` (``name = "package.module:FactoryOrClass"``); either way the learner is
then available everywhere a learner name is accepted (rollouts, benchmarks, meta-training).
Meta-trained learners of the model zoo are reached by `<learner>@<tag>` (`agents.zoo`).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable

from agents.annotations import describe, fits
from agents.learner import Learner

LearnerFactory = Callable[..., Learner]  # (input_shape, num_classes, **config) -> Learner

_BUILTIN = {
    "vsml": "agents.vsml.learner:VSML",
    "meta_rnn": "agents.meta_rnn:MetaRNN",
    "hebbian": "agents.hebbian:Hebbian",
    "fw_memory": "agents.fw_memory:FWMemory",
    "sgd": "agents.online_sgd:SGDLearner",
    "adam": "agents.online_sgd:AdamLearner",
    "vsml_cloned": "agents.cloning.learner:ClonedBackpropVSML",
}
_REGISTERED: dict[str, LearnerFactory] = {}


def register_learner(name: str, factory: LearnerFactory, overwrite: bool = False) -> None:
    """Make `factory(input_shape, num_classes, **config)` available as learner `name`."""
    if not overwrite and (name in _REGISTERED or name in _BUILTIN):
        raise ValueError(f"a learner named {name!r} is already registered")
    _REGISTERED[name] = factory


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="vsml_gym.learners")}


def learner_names() -> list[str]:
    from agents.zoo import zoo_names

    return sorted({*_BUILTIN, *_REGISTERED, *_plugins(), *zoo_names()})


def _load(path: str) -> LearnerFactory:
    module, _, attribute = path.partition(":")
    return getattr(import_module(module), attribute)


def get_learner_factory(name: str) -> LearnerFactory:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        return _load(_BUILTIN[name])
    plugins = _plugins()
    if name in plugins:
        return plugins[name].load()
    from agents.zoo import is_zoo_name, load_entry

    if is_zoo_name(name):
        return load_entry(name).build
    close = difflib.get_close_matches(name, learner_names(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown learner {name!r}{hint}; available: {learner_names()}")


def make_learner(name: str, input_shape: tuple[int, ...], num_classes: int, **config: Any) -> Learner:
    """Build learner `name` for inputs of `input_shape` and `num_classes` logits. Options are
    checked against the factory's signature first: an unknown name or a value of the wrong
    type is named here ('sgd: option lr must be float | None, got 'abc''), not deep inside."""
    factory = get_learner_factory(name)
    check_options(name, factory, config)
    return factory(input_shape, num_classes, **config)


def check_options(name: str, factory: LearnerFactory, options: dict[str, Any]) -> None:
    """Option names and (where the factory annotates them) types."""
    function = factory.__init__ if isinstance(factory, type) else factory
    try:
        parameters = list(inspect.signature(function).parameters.values())
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError):  # a callable without an inspectable signature: it checks itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    valid = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    valid = [v for v in valid if v not in ("self", "input_shape", "num_classes")]
    for key, value in options.items():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"{name}: unknown option {key!r}{hint}; its options: {valid}")
        if key in hints and not fits(value, hints[key]):
            raise TypeError(f"{name}: option {key} must be {describe(hints[key])}, got {value!r} "
                            f"({type(value).__name__})")
