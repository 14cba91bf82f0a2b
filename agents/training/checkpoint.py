"""Checkpoints: written atomically, checked on load, so a killed run resumes where it stopped.

A checkpoint is one `torch.save` file holding the format tag, the resolved experiment config,
the learner's identity (name, options, parameter count), the meta-parameters, the optimiser or
searcher state, the RNG states and the log history. `load_checkpoint` refuses anything else with
a message that says what is wrong.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "vsml-gym-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "kind", "iteration", "config", "learner", "params")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, of another format, or incompatible."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` atomically: a crash leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated): {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vsml-gym checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('version')}, this vsml-gym reads {VERSION}")
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}")
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{path} is a {payload['kind']!r} checkpoint, expected {kind!r}")
    params = payload["params"]
    if not isinstance(params, torch.Tensor) or params.shape != (payload["learner"]["num_params"],):
        raise CheckpointError(f"{path}: meta-parameters do not match the recorded learner "
                              f"({payload['learner']['num_params']} parameters)")
    return payload


def check_compatible(payload: dict[str, Any], learner: dict[str, Any], path: str | Path = "checkpoint") -> None:
    """Resuming needs the same learner (name, options, size) as the checkpoint was made with."""
    recorded = payload["learner"]
    for key in ("name", "options", "num_params"):
        if recorded.get(key) != learner.get(key):
            raise CheckpointError(f"{path} was made with learner {key} {recorded.get(key)!r}, "
                                  f"but this run has {learner.get(key)!r}")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
