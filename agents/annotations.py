"""Values against simple type annotations: options and config keys are checked when they are
read (`lr='abc'` names the option there), not when a tensor op fails deep inside a run."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

_SEQUENCES = (list, tuple, collections.abc.Sequence)


def fits(value: Any, hint: Any) -> bool:
    """Whether `value` fits `hint`: None, bool, int, float (ints too), str, their unions, lists,
    tuples and dicts are checked (bools are not ints here); anything else is accepted."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int,) if hint is int else (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in _SEQUENCES or origin in _SEQUENCES:
        return isinstance(value, (list, tuple))
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    """'float | None', 'int', 'a list', 'a mapping': what an error message asks for."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if hint in _SEQUENCES or origin in _SEQUENCES:
        return "a list"
    if hint is dict or origin is dict:
        return "a mapping"
    return getattr(hint, "__name__", str(hint))
