"""Downloading datasets through torchvision's own machinery, so its md5 checksums are enforced."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import torchvision.datasets as tvd

from vsml_gym.data.catalog import get_info
from vsml_gym.data.errors import DownloadError
from vsml_gym.data.root import resolve_data_root


def _with_mirror(cls: type, mirror: str) -> type:
    """A subclass of `cls` that downloads from `mirror`, leaving torchvision's class untouched.

    The subclass keeps the class name because torchvision derives the raw folder from it.
    """
    base = mirror if mirror.endswith("/") else mirror + "/"
    if issubclass(cls, (tvd.EMNIST, tvd.CIFAR10)):
        attrs = {"url": base + posixpath.basename(cls.url)}
    elif issubclass(cls, tvd.MNIST):
        attrs = {"mirrors": [base]}
    else:
        attrs = {"download_url_prefix": base.rstrip("/")}
    return type(cls.__name__, (cls,), attrs)


def _folder(cls: type, root: Path) -> Path:
    """The folder torchvision downloads `cls` into."""
    if issubclass(cls, tvd.CIFAR10):
        return root / cls.base_folder
    if issubclass(cls, tvd.Omniglot):
        return root / cls.folder
    return root / cls.__name__


def download_dataset(name: str, data_root: str | os.PathLike | None = None, mirror: str | None = None) -> Path:
    """Download every split of a built-in dataset into the data root and return its folder.

    `mirror` is a base URL that replaces the official download location (offline mirrors, tests);
    the files must still match torchvision's checksums. Files already present are not fetched again.
    """
    info = get_info(name)
    root = resolve_data_root(data_root)
    cls = getattr(tvd, info.torchvision_class)
    if mirror is not None:
        cls = _with_mirror(cls, mirror)
    try:
        if issubclass(cls, tvd.EMNIST):
            cls(root, split="byclass", download=True)  # one archive holds every EMNIST split
        elif issubclass(cls, tvd.Omniglot):
            for background in (True, False):
                cls(root, background=background, download=True)
        else:
            cls(root, download=True)  # MNIST family and CIFAR-10 fetch both splits at once
    except (RuntimeError, OSError) as error:  # URLError is an OSError; torchvision raises RuntimeError
        source = mirror or "the official location"
        reason = " ".join(str(error).split())  # torchvision's reasons span lines: the CLI prints one
        remedy = ("check the mirror URL" if mirror else
                  f"check the network or fetch it from a mirror: vsml-gym data download {name} --mirror URL")
        raise DownloadError(f"downloading {info.title} from {source} into {root} failed ({reason}); {remedy}") from error
    return _folder(cls, root)
