"""Argument checks shared by the options, tasks and envs, so that every bad value gets one clear sentence."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np
import torch


def is_int(value: Any) -> bool:
    """A Python or numpy integer; bools are flags, not counts."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_int_sequence(value: Any) -> bool:
    """A list, tuple or 1-d array of ints (a string of digits is not one)."""
    return (isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes))
            and all(is_int(item) for item in value))


def int_in_range(name: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (high None: unbounded), or an error naming `name` and the range."""
    accepted = f"an int >= {low}" if high is None else f"an int in {low}..{high}"
    if not is_int(value):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def positive_ints(name: str, value: Any, length: int, accepted: str, one_for_all: bool = False) -> tuple[int, ...]:
    """`value` as a tuple of `length` positive ints, or an error naming `name` and the `accepted` forms.
    `one_for_all`: a single int stands for `length` copies of itself (a square size)."""
    items = (value,) * length if one_for_all and is_int(value) else value
    if not is_int_sequence(items):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if len(items) != length or any(item < 1 for item in items):
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return tuple(int(item) for item in items)


def check_device(device: Any, where: str = "device") -> torch.device:
    """`device` as a torch device that exists on this machine, or one sentence naming `where`."""
    try:
        parsed = torch.device(device if isinstance(device, torch.device) else str(device))
    except RuntimeError:
        raise ValueError(f"{where} is {device!r}, not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{where} is {device!r}, but torch sees no CUDA GPU on this machine (use cpu)")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"{where} is {device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return parsed
