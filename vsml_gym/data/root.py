"""Where datasets live: one rule shared by the loaders, the downloader and the CLI."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "VSML_GYM_DATA"


def user_cache_dir() -> Path:
    """The per-user cache folder of vsml_gym (XDG convention), for downloads and decoded tensors."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser().absolute() / "vsml_gym"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root to use: the explicit argument, else $VSML_GYM_DATA, else the user cache.

    A per-user default keeps downloads out of the working directory and lets every project share them.
    """
    if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
        raise TypeError(f"data_root must be a folder path (a str or os.PathLike) or None, got {data_root!r}")
    chosen = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV) or user_cache_dir() / "data"
    return Path(chosen).expanduser().absolute()
