"""Reading dataset splits from a data root into uint8 image / int64 label tensors.

Files are read directly in their official formats rather than through torchvision's dataset classes,
which refuse a root holding a single split (KMNIST/EMNIST test only) or a format they do not know
(CIFAR-10 binary, Omniglot folders without their zip archives).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import pickle
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.datasets import CIFAR10, Omniglot
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import calculate_md5

from vsml_gym.data.catalog import DATASETS, DatasetInfo, get_info
from vsml_gym.data.download import download_dataset
from vsml_gym.data.errors import DatasetNotFoundError
from vsml_gym.data.root import resolve_data_root, user_cache_dir

OMNIGLOT_FOLDERS = {"train": "images_background", "test": "images_evaluation"}
OMNIGLOT_DRAWERS = 20
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR_RECORDS_PER_BATCH = 10_000
# Official md5s of the binary-format batches that are known for sure; the others are checked by size.
CIFAR_BINARY_MD5 = {"test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d"}
#: md5 of the official IDX files once decompressed (torchvision's checksums are of the .gz files),
#: checked when a file has the official size: a file of another size already fails the header check
IDX_MD5 = {
    ("mnist", "train-images-idx3-ubyte"): "6bbc9ace898e44ae57da46a324031adb",
    ("mnist", "train-labels-idx1-ubyte"): "a25bea736e30d166cdddb491f175f624",
    ("mnist", "t10k-images-idx3-ubyte"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte"): "27ae3e4e09519cfbb04c329615203637",
    ("fashion_mnist", "train-images-idx3-ubyte"): "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ("fashion_mnist", "train-labels-idx1-ubyte"): "9018921c3c673c538a1fc5bad174d6f9",
    ("fashion_mnist", "t10k-images-idx3-ubyte"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion_mnist", "t10k-labels-idx1-ubyte"): "15d484375f8d13e6eb1aabb0c3f46965",
    ("kmnist", "t10k-images-idx3-ubyte"): "bf305b8cd328700fbc17f5acbc2856d2",
    ("kmnist", "t10k-labels-idx1-ubyte"): "9f55f451c0988b028eccdf7d5cc265ab",
    ("emnist", "emnist-byclass-test-images-idx3-ubyte"): "5c0133f95f77ae69d867e4dc268094ed",
    ("emnist", "emnist-byclass-test-labels-idx1-ubyte"): "1d0da960e9aa1f2ae43303879cd07bef",
}
#: the official files' example counts, by split: with the file names above they fix the official sizes
OFFICIAL_COUNTS = {"train-": 60_000, "t10k-": 10_000, "emnist-byclass-test-": 116_323}


@dataclass
class LabelledImages:
    """One split of a dataset: images (N, C, H, W) uint8 and labels (N,) int64, on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str

    @property
    def num_classes(self) -> int:
        """Classes of this split: the dataset's fixed count, or (Omniglot) the labels present."""
        return self.info.num_classes if self.info.num_classes is not None else int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SplitStatus:
    """Whether a split is on disk, where, and how big; one row of `vsml-gym data list`."""

    name: str
    split: str
    present: bool
    path: Path
    size_bytes: int
    num_examples: int | None
    format: str
    problem: str | None = None  # why files that are there cannot be used (corrupt, truncated); present is then False


@dataclass(frozen=True)
class _Source:
    """One way a split can be stored: a format and the files (or folder) it needs."""

    format: str
    folder: Path
    files: tuple[Path, ...]

    def present(self) -> bool:
        return all(path.exists() for path in self.files)


def _sources(info: DatasetInfo, split: str, root: Path) -> list[_Source]:
    """Where a split may be stored under `root`, in order of preference."""
    if info.name == "cifar10":
        names = [name for name, _ in (CIFAR10.train_list if split == "train" else CIFAR10.test_list)]
        python, binary = root / CIFAR10.base_folder, root / "cifar-10-batches-bin"
        return [_Source("cifar-python", python, tuple(python / name for name in names)),
                _Source("cifar-binary", binary, tuple(binary / f"{name}.bin" for name in names))]
    if info.name == "omniglot":
        folder = root / Omniglot.folder / OMNIGLOT_FOLDERS[split]
        return [_Source("png-folders", folder, (folder,))]
    raw = root / info.torchvision_class / "raw"
    if info.name == "emnist":
        prefix = f"emnist-byclass-{split}"
    else:
        prefix = "train" if split == "train" else "t10k"
    return [_Source("idx", raw, (raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"))]


def _present(sources: list[_Source]) -> _Source | None:
    """The first source whose files are all on disk."""
    return next((source for source in sources if source.present()), None)


def _not_found(info: DatasetInfo, split: str, root: Path, sources: list[_Source]) -> DatasetNotFoundError:
    looked = "\n".join(f"  {path} ({'found' if path.exists() else 'missing'})"
                       for source in sources for path in source.files)
    return DatasetNotFoundError(
        f"{info.title} ({info.name!r}) split {split!r} is not in the data root {root}.\n"
        f"Looked for:\n{looked}\n"
        f"Get it with:\n  vsml-gym data download {info.name} --data-root {shlex.quote(str(root))}\n"
        f"or call load_split(..., download=True) (environments: make them with the kwarg download=True)."
    )


def load_split(name: str, split: str, data_root: str | os.PathLike | None = None,
               download: bool = False) -> LabelledImages:
    """Load one split of a built-in dataset, downloading it first if asked and missing.

    Results are cached in memory per (name, split, root): environments are rebuilt often and share data.
    The returned tensors are shared between callers; do not modify them in place.
    """
    info = get_info(name, split)
    root = resolve_data_root(data_root)
    if download and _present(_sources(info, split, root)) is None:
        download_dataset(name, root)
    return _load(name, split, root)


def clear_cache() -> None:
    """Forget the splits held in memory (to free it, or to reread files changed on disk)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=None)
def _load(name: str, split: str, root: Path) -> LabelledImages:
    info = DATASETS[name]
    sources = _sources(info, split, root)
    source = _present(sources)
    if source is None:
        raise _not_found(info, split, root, sources)
    _INSPECTORS[source.format](source, info)
    images, labels = _READERS[source.format](source)
    if info.transposed_on_disk:
        images = images.transpose(-1, -2).contiguous()
    if tuple(images.shape[1:]) != info.image_shape or len(images) != len(labels):
        raise ValueError(f"{source.folder}: read images {tuple(images.shape)} and {len(labels)} labels, "
                         f"expected (N, {', '.join(map(str, info.image_shape))}) images with N labels")
    _check_labels(labels, info, source.folder)
    return LabelledImages(images, labels, info, split)


_REDOWNLOAD = "delete it and download it again (vsml-gym data download)"


def _check_labels(labels: torch.Tensor, info: DatasetInfo, where: Path) -> None:
    """Labels outside the dataset's classes (a flipped byte) would fail mid-episode, far from the cause."""
    if info.num_classes is None or not len(labels):
        return
    if not 0 <= int(labels.min()) <= int(labels.max()) < info.num_classes:
        raise ValueError(f"{where} holds labels {int(labels.min())}..{int(labels.max())} but {info.title} has classes "
                         f"0..{info.num_classes - 1}, so the labels are corrupted: {_REDOWNLOAD}")


def _idx_dims(path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions in the header of an IDX file of unsigned bytes, checked against the file's length."""
    with path.open("rb") as f:
        header = f.read(4 * (ndim + 1))
    if len(header) != 4 * (ndim + 1) or header[:4] != bytes([0, 0, 8, ndim]):
        raise ValueError(f"{path} does not start like an IDX file of {ndim}-d unsigned bytes (magic "
                         f"{bytes([0, 0, 8, ndim]).hex()}, found {header[:4].hex() or 'nothing'}): {_REDOWNLOAD}")
    dims = tuple(int.from_bytes(header[4 * i:4 * (i + 1)], "big") for i in range(1, ndim + 1))
    expected, size = len(header) + math.prod(dims), path.stat().st_size
    if size != expected:
        raise ValueError(f"{path} has {size} bytes but its header ({' x '.join(map(str, dims))}) needs {expected}, "
                         f"so the file is truncated or corrupted: {_REDOWNLOAD}")
    return dims


def _inspect_idx(source: _Source, info: DatasetInfo) -> int:
    images, labels = source.files
    count, height, width = _idx_dims(images, 3)
    (label_count,) = _idx_dims(labels, 1)
    if label_count != count:
        raise ValueError(f"{images} holds {count} images but {labels} {label_count} labels: {_REDOWNLOAD}")
    if (height, width) != info.image_shape[1:]:
        raise ValueError(f"{images} holds {height}x{width} images but {info.title} has "
                         f"{info.image_shape[1]}x{info.image_shape[2]}: {_REDOWNLOAD}")
    _check_labels(torch.from_numpy(np.fromfile(labels, np.uint8, offset=8)), info, labels)
    if any(images.name.startswith(prefix) and count == official for prefix, official in OFFICIAL_COUNTS.items()):
        for path in (images, labels):
            if (info.name, path.name) in IDX_MD5:
                _verify_md5(path, IDX_MD5[info.name, path.name])
    return count


def _read_idx(source: _Source) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = source.files
    return read_image_file(str(images)).unsqueeze(1), read_label_file(str(labels))


@functools.lru_cache(maxsize=None)
def _md5(path: Path, size: int, mtime_ns: int) -> str:
    """md5 of one version of a file (size and mtime name it): checked once per process, not per load."""
    return calculate_md5(path)


def _verify_md5(path: Path, expected: str) -> None:
    stat = path.stat()
    actual = _md5(path, stat.st_size, stat.st_mtime_ns)
    if actual != expected:
        raise ValueError(f"checksum mismatch for {path}: md5 {actual}, the official file has {expected}, so the "
                         f"file is corrupted or not the official one: {_REDOWNLOAD}")


def _cifar_tensors(pixels: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR rows of 3072 channel-major bytes -> (N, 3, 32, 32) images."""
    images = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return images, torch.from_numpy(np.asarray(labels, dtype=np.int64))


def _inspect_cifar_python(source: _Source, info: DatasetInfo) -> int | None:
    expected = dict(CIFAR10.train_list + CIFAR10.test_list)
    for path in source.files:
        _verify_md5(path, expected[path.name])


def _read_cifar_python(source: _Source) -> tuple[torch.Tensor, torch.Tensor]:
    pixels, labels = [], []
    for path in source.files:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        pixels.append(batch["data"])
        labels.append(batch["labels"])
    return _cifar_tensors(np.concatenate(pixels), np.concatenate(labels))


def _inspect_cifar_binary(source: _Source, info: DatasetInfo) -> int:
    for path in source.files:
        if path.name in CIFAR_BINARY_MD5:
            _verify_md5(path, CIFAR_BINARY_MD5[path.name])
        elif path.stat().st_size != CIFAR_RECORDS_PER_BATCH * CIFAR_RECORD_BYTES:
            raise ValueError(f"{path} has {path.stat().st_size} bytes but an official CIFAR-10 binary batch has "
                             f"{CIFAR_RECORDS_PER_BATCH * CIFAR_RECORD_BYTES}: {_REDOWNLOAD}")
    return sum(path.stat().st_size for path in source.files) // CIFAR_RECORD_BYTES


def _read_cifar_binary(source: _Source) -> tuple[torch.Tensor, torch.Tensor]:
    records = []
    for path in source.files:
        records.append(np.fromfile(path, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES))
    table = np.concatenate(records)
    return _cifar_tensors(table[:, 1:], table[:, 0])


def _sorted_subfolders(folder: str | os.PathLike) -> list[os.DirEntry]:
    return sorted((entry for entry in os.scandir(folder) if entry.is_dir()), key=lambda entry: entry.name)


def _omniglot_characters(folder: Path) -> dict[str, list[os.DirEntry]]:
    """Character folder -> its PNG files; alphabets, characters and files sorted by name."""
    return {character.path: sorted((entry for entry in os.scandir(character) if entry.name.endswith(".png")),
                                   key=lambda entry: entry.name)
            for alphabet in _sorted_subfolders(folder) for character in _sorted_subfolders(alphabet)}


def _decoded_cache_file(folder: Path, files: list[os.DirEntry], shape: tuple[int, ...]) -> Path:
    """Cache entry named by the source folder, its files and their mtimes, so any change misses it."""
    key = hashlib.sha256(f"{folder}\n{len(files)}\n{shape}\n".encode())
    for entry in files:
        key.update(f"{entry.path}\t{entry.stat().st_mtime_ns}\t{entry.stat().st_size}\n".encode())
    return user_cache_dir() / "decoded" / f"omniglot-{folder.name}-{key.hexdigest()[:24]}.pt"


def _save_atomically(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write via a temporary file and a rename so that readers never see half a cache file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        warnings.warn(f"could not write the decoded-image cache {path}: {error}", stacklevel=3)


def _read_png_folders(source: _Source) -> tuple[torch.Tensor, torch.Tensor]:
    """Omniglot: 105x105 PNGs -> (N, 1, 28, 28), ordered character-major so index = char * 20 + drawer.

    Decoding ~32k PNGs takes seconds, so the result is kept in a disk cache in the user's cache folder
    (never in the data root, which may be read-only).
    """
    characters = _omniglot_characters(source.folder)
    files = [entry for character in characters.values() for entry in character]
    size = DATASETS["omniglot"].image_shape[1:]
    cache = _decoded_cache_file(source.folder, files, size)
    if cache.exists():
        cached = torch.load(cache, weights_only=True)
        return cached["images"], cached["labels"]
    pixels = np.stack([np.asarray(Image.open(entry.path).convert("L")) for entry in files])
    resized = F.interpolate(torch.from_numpy(pixels).unsqueeze(1).float(), size=size, mode="area")
    images = resized.round_().clamp_(0, 255).to(torch.uint8)
    labels = torch.arange(len(characters)).repeat_interleave(OMNIGLOT_DRAWERS)
    _save_atomically({"images": images, "labels": labels}, cache)
    return images, labels


def _inspect_png_folders(source: _Source, info: DatasetInfo) -> int:
    characters = _omniglot_characters(source.folder)
    for character, files in characters.items():
        if len(files) != OMNIGLOT_DRAWERS:
            raise ValueError(f"{character} has {len(files)} drawings, expected {OMNIGLOT_DRAWERS} per character")
    if not characters:
        raise ValueError(f"{source.folder} holds no <alphabet>/<character>/*.png folders")
    return len(characters) * OMNIGLOT_DRAWERS


_READERS = {
    "idx": _read_idx,
    "cifar-python": _read_cifar_python,
    "cifar-binary": _read_cifar_binary,
    "png-folders": _read_png_folders,
}
#: checks without decoding (headers, sizes, label bytes, md5s where known) that return the example
#: count where the format tells it cheaply; they raise ValueError for files that cannot be used
_INSPECTORS = {
    "idx": _inspect_idx,
    "cifar-python": _inspect_cifar_python,
    "cifar-binary": _inspect_cifar_binary,
    "png-folders": _inspect_png_folders,
}


def _size_bytes(source: _Source) -> int:
    if source.format == "png-folders":
        return sum(entry.stat().st_size for files in _omniglot_characters(source.folder).values() for entry in files)
    return sum(path.stat().st_size for path in source.files)


def dataset_status(data_root: str | os.PathLike | None = None) -> list[SplitStatus]:
    """One row per (dataset, split) saying whether and where it is on disk, without decoding anything.
    A split is present only if its files pass the checks loading makes before decoding."""
    root = resolve_data_root(data_root)
    rows = []
    for info in DATASETS.values():
        for split in info.splits:
            sources = _sources(info, split, root)
            source = _present(sources)
            if source is None:
                rows.append(SplitStatus(info.name, split, False, sources[0].folder, 0, None, sources[0].format))
                continue
            try:
                count, problem = _INSPECTORS[source.format](source, info), None
            except ValueError as error:
                count, problem = None, str(error)
            rows.append(SplitStatus(info.name, split, problem is None, source.folder, _size_bytes(source), count,
                                    source.format, problem))
    return rows
