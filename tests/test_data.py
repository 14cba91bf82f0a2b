"""Data layer: real-data checks against published statistics, and downloads of generated data in the
official formats served from a loopback HTTP server (torchvision's checksums patched to match)."""

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import re
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from vsml_gym.data import (
    DATASETS,
    DatasetNotFoundError,
    DownloadError,
    dataset_status,
    download_dataset,
    load_split,
    resolve_data_root,
)
from vsml_gym.data import loaders

# ---------------------------------------------------------------- real data


def unit(images: torch.Tensor) -> torch.Tensor:
    return images.double() / 255


def test_catalog_describes_every_dataset():
    assert list(DATASETS) == ["mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "omniglot"]
    assert {name: info.image_shape for name, info in DATASETS.items() if info.image_shape != (1, 28, 28)} == {
        "cifar10": (3, 32, 32)}
    assert [DATASETS[name].num_classes for name in DATASETS] == [10, 10, 10, 62, 10, None]
    assert all(info.splits == ("train", "test") for info in DATASETS.values())


def test_mnist_train_matches_published_counts_and_statistics(data_root):
    data = load_split("mnist", "train", data_root)
    assert data.images.shape == (60000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and len(data) == 60000
    assert data.labels.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    pixels = unit(data.images)
    assert pixels.mean().item() == pytest.approx(0.13066, abs=1e-5)
    assert pixels.std().item() == pytest.approx(0.30811, abs=1e-5)


def test_fashion_mnist_is_balanced(data_root):
    assert load_split("fashion_mnist", "train", data_root).labels.bincount().tolist() == [6000] * 10
    assert load_split("fashion_mnist", "test", data_root).labels.bincount().tolist() == [1000] * 10


def test_kmnist_test_is_balanced(data_root):
    data = load_split("kmnist", "test", data_root)
    assert data.images.shape == (10000, 1, 28, 28)
    assert data.labels.bincount().tolist() == [1000] * 10


def test_emnist_byclass_test_is_delivered_upright(data_root):
    emnist = load_split("emnist", "test", data_root)
    assert emnist.images.shape == (116323, 1, 28, 28)
    assert emnist.num_classes == 62 and emnist.labels.unique().tolist() == list(range(62))
    mnist = load_split("mnist", "test", data_root)
    for digit in range(10):  # EMNIST byclass labels 0-9 are the digits
        reference = unit(mnist.images[mnist.labels == digit]).mean(0).flatten()
        ours = unit(emnist.images[emnist.labels == digit]).mean(0)
        upright = torch.corrcoef(torch.stack([reference, ours.flatten()]))[0, 1]
        transposed = torch.corrcoef(torch.stack([reference, ours.transpose(-1, -2).flatten()]))[0, 1]
        assert upright > transposed + (0.01 if digit == 0 else 0.1), digit  # a 0 is nearly symmetric


def test_cifar10_binary_test_batch(data_root):
    data = load_split("cifar10", "test", data_root)
    assert data.images.shape == (10000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.bincount().tolist() == [1000] * 10


def test_omniglot_splits_are_characters_times_twenty_drawers(data_root):
    for split, characters in (("train", 964), ("test", 659)):
        data = load_split("omniglot", split, data_root)
        assert data.images.shape == (characters * 20, 1, 28, 28) and data.images.dtype == torch.uint8
        assert torch.equal(data.labels, torch.arange(characters).repeat_interleave(20))
        assert data.num_classes == characters
    assert unit(load_split("omniglot", "train", data_root).images).mean().item() == pytest.approx(0.92, abs=0.01)


@pytest.mark.parametrize("name, files", [
    ("kmnist", ["KMNIST/raw/train-images-idx3-ubyte", "KMNIST/raw/train-labels-idx1-ubyte"]),
    ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-bin/data_batch_5.bin"]),
])
def test_missing_split_says_where_it_looked_and_how_to_get_it(data_root, name, files):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_split(name, "train", data_root)
    message = str(caught.value)
    assert name in message and "'train'" in message
    assert all(str(data_root.absolute() / file) in message for file in files)
    assert f"vsml-gym data download {name} --data-root {data_root.absolute()}" in message
    assert "download=True" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_unknown_names_and_splits_are_rejected(data_root):
    with pytest.raises(ValueError, match="valid names: mnist.*Did you mean 'fashion_mnist'"):
        load_split("fashion-mnist", "train", data_root)
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_split("mnist", "validation", data_root)
    with pytest.raises(ValueError, match="unknown dataset"):
        download_dataset("imagenet", data_root)


def test_loaded_splits_are_cached_in_memory(data_root):
    first = load_split("kmnist", "test", data_root)
    assert load_split("kmnist", "test", str(data_root)) is first
    loaders.clear_cache()
    assert load_split("kmnist", "test", data_root) is not first


def test_status_lists_every_split_without_decoding(data_root):
    rows = {(row.name, row.split): row for row in dataset_status(data_root)}
    assert len(rows) == 12
    missing = {key for key, row in rows.items() if not row.present}
    assert missing == {("kmnist", "train"), ("emnist", "train"), ("cifar10", "train")}
    assert all(rows[key].size_bytes == 0 and rows[key].num_examples is None for key in missing)
    assert rows["kmnist", "train"].path == data_root.absolute() / "KMNIST" / "raw"
    expected = {("mnist", "train"): (60000, "idx"), ("emnist", "test"): (116323, "idx"),
                ("cifar10", "test"): (10000, "cifar-binary"), ("omniglot", "train"): (19280, "png-folders"),
                ("omniglot", "test"): (13180, "png-folders")}
    assert {key: (rows[key].num_examples, rows[key].format) for key in expected} == expected
    assert rows["cifar10", "test"].size_bytes == 10000 * 3073


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("VSML_GYM_DATA", raising=False)
    assert resolve_data_root() == tmp_path / "xdg" / "vsml_gym" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "vsml_gym" / "data"
    monkeypatch.setenv("VSML_GYM_DATA", str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root("~/data") == tmp_path / "home" / "data"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root("relative") == tmp_path / "relative"


# ---------------------------------------------------------------- generated data, served on loopback


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(folder, url): files put in folder are served at url, on 127.0.0.1 only."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # Omniglot's decoded cache
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx(array: np.ndarray) -> bytes:
    """IDX file of unsigned bytes: magic 0x0000080<ndim>, big-endian dimensions, data."""
    return (bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
            + array.astype(np.uint8).tobytes())


def random_split(seed: int, n: int, classes: int, shape=(28, 28)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n).astype(np.uint8)


def assert_loaded(name: str, root: Path, generated: dict) -> None:
    for split, (images, labels) in generated.items():
        data = load_split(name, split, root)
        expected = torch.from_numpy(images)
        assert torch.equal(data.images, expected if expected.ndim == 4 else expected.unsqueeze(1)), split
        assert torch.equal(data.labels, torch.from_numpy(labels).long()), split


def write_idx_mirror(folder: Path, generated: dict) -> list[tuple[str, str]]:
    """The four gzipped IDX files of an MNIST-style dataset; returns torchvision-style (file, md5) resources."""
    resources = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, array in zip(("images-idx3", "labels-idx1"), generated[split]):
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(idx(array)))
            resources.append((path.name, md5(path)))
    return resources


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist"])
def test_download_mnist_family(server, monkeypatch, tmp_path, name):
    folder, url = server
    generated = {"train": random_split(1, 30, 10), "test": random_split(2, 12, 10)}
    resources = write_idx_mirror(folder, generated)
    cls = getattr(tvd, DATASETS[name].torchvision_class)
    monkeypatch.setattr(cls, "resources", resources)
    root = tmp_path / "root"
    assert download_dataset(name, root, mirror=url) == root / cls.__name__
    assert url not in cls.mirrors  # torchvision's class is left alone
    assert_loaded(name, root, generated)


def test_load_split_downloads_only_what_is_missing(server, monkeypatch, tmp_path):
    folder, url = server
    generated = {"train": random_split(3, 10, 10), "test": random_split(4, 10, 10)}
    resources = write_idx_mirror(folder, generated)
    monkeypatch.setattr(tvd.KMNIST, "resources", resources)
    calls = []

    def download_from_mirror(name, data_root):
        calls.append(name)
        return download_dataset(name, data_root, mirror=url)

    monkeypatch.setattr(loaders, "download_dataset", download_from_mirror)
    root = tmp_path / "root"
    with pytest.raises(DatasetNotFoundError):
        load_split("kmnist", "test", root)
    assert calls == []
    load_split("kmnist", "test", root, download=True)
    load_split("kmnist", "train", root, download=True)  # fetched with the test split already
    assert calls == ["kmnist"]
    assert_loaded("kmnist", root, generated)


def test_download_rejects_a_corrupted_file(server, monkeypatch, tmp_path):
    folder, url = server
    resources = []
    for prefix in ("train", "t10k"):
        for kind, array in zip(("images-idx3", "labels-idx1"), random_split(5, 10, 10)):
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(idx(array)))
            resources.append((path.name, md5(path)))
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    corrupted = bytearray((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    corrupted[-1] ^= 0xFF
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(corrupted))
    with pytest.raises(RuntimeError, match="MNIST.*t10k-images-idx3-ubyte.gz"):
        download_dataset("mnist", tmp_path / "root", mirror=url)


def test_download_emnist_delivers_images_upright(server, monkeypatch, tmp_path):
    folder, url = server
    generated = {"train": random_split(6, 25, 62), "test": random_split(7, 15, 62)}
    with zipfile.ZipFile(folder / "gzip.zip", "w") as archive:
        for split, (images, labels) in generated.items():
            stored = images.transpose(0, 2, 1)  # the official files hold transposed images
            archive.writestr(f"gzip/emnist-byclass-{split}-images-idx3-ubyte.gz", gzip.compress(idx(stored)))
            archive.writestr(f"gzip/emnist-byclass-{split}-labels-idx1-ubyte.gz", gzip.compress(idx(labels)))
    monkeypatch.setattr(tvd.EMNIST, "md5", md5(folder / "gzip.zip"))
    root = tmp_path / "root"
    assert download_dataset("emnist", root, mirror=url.rstrip("/")) == root / "EMNIST"
    assert_loaded("emnist", root, generated)


CIFAR_BATCH = 4


def cifar_batches(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Batch name -> (images (n, 3, 32, 32), labels) of a tiny CIFAR-10."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {name: random_split(seed + i, CIFAR_BATCH, 10, (3, 32, 32)) for i, name in enumerate(names)}


def write_cifar_python(folder: Path, batches: dict) -> None:
    folder.mkdir(parents=True)
    for name, (images, labels) in batches.items():
        batch = {"batch_label": name, "labels": labels.tolist(), "data": images.reshape(len(images), -1)}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))


def write_cifar_binary(folder: Path, batches: dict) -> None:
    folder.mkdir(parents=True)
    for name, (images, labels) in batches.items():
        (folder / f"{name}.bin").write_bytes(np.concatenate([labels[:, None], images.reshape(len(images), -1)], 1)
                                             .astype(np.uint8).tobytes())


def cifar_splits(batches: dict) -> dict:
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {"train": tuple(np.concatenate(parts) for parts in zip(*train)), "test": batches["test_batch"]}


@pytest.fixture
def cifar_official_md5s(monkeypatch):
    """Make torchvision and our binary reader expect the md5s of files in a given python/binary folder."""

    def patch(python: Path, binary: Path | None = None) -> None:
        monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5(python / f"data_batch_{i}")]
                                                        for i in range(1, 6)])
        monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5(python / "test_batch")]])
        monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5(python / "batches.meta")})
        monkeypatch.setattr(loaders, "CIFAR_RECORDS_PER_BATCH", CIFAR_BATCH)
        if binary is not None:
            monkeypatch.setitem(loaders.CIFAR_BINARY_MD5, "test_batch.bin", md5(binary / "test_batch.bin"))

    return patch


def test_download_cifar10_and_read_both_official_formats(server, cifar_official_md5s, monkeypatch, tmp_path):
    folder, url = server
    batches = cifar_batches(10)
    source = tmp_path / "source"
    write_cifar_python(source / "cifar-10-batches-py", batches)
    write_cifar_binary(source / "cifar-10-batches-bin", batches)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    cifar_official_md5s(source / "cifar-10-batches-py", source / "cifar-10-batches-bin")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(folder / "cifar-10-python.tar.gz"))
    root = tmp_path / "root"
    assert download_dataset("cifar10", root, mirror=url) == root / "cifar-10-batches-py"
    assert_loaded("cifar10", root, cifar_splits(batches))

    binary_root = tmp_path / "binary"
    shutil.copytree(source / "cifar-10-batches-bin", binary_root / "cifar-10-batches-bin")
    assert_loaded("cifar10", binary_root, cifar_splits(batches))
    assert {row.format for row in dataset_status(binary_root) if row.name == "cifar10"} == {"cifar-binary"}


@pytest.mark.parametrize("corrupt, error", [
    ("cifar-10-batches-py/data_batch_3", "checksum mismatch for .*data_batch_3"),
    ("cifar-10-batches-bin/test_batch.bin", "checksum mismatch for .*test_batch.bin"),
    ("cifar-10-batches-bin/data_batch_2.bin", "data_batch_2.bin has 12291 bytes.* 12292"),
])
def test_cifar10_files_are_checked_when_read(cifar_official_md5s, tmp_path, corrupt, error):
    batches = cifar_batches(20)
    write_cifar_python(tmp_path / "cifar-10-batches-py", batches)
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", batches)
    cifar_official_md5s(tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-batches-bin")
    root = tmp_path / "root"
    shutil.copytree(tmp_path / Path(corrupt).parent, root / Path(corrupt).parent)
    path = root / corrupt
    path.write_bytes(path.read_bytes()[:-2] + b"\x00")
    split = "test" if "test" in corrupt else "train"
    with pytest.raises(ValueError, match=error):
        load_split("cifar10", split, root)


def test_download_cifar10_rejects_a_corrupted_archive(server, tmp_path):
    folder, url = server
    (folder / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(RuntimeError, match="CIFAR-10"):
        download_dataset("cifar10", tmp_path / "root", mirror=url)


def write_omniglot(folder: Path, alphabets: dict[str, int], first_value: int) -> np.ndarray:
    """Alphabet -> character count; drawings are 105x105, black in the top 15 rows (= 4 rows at 28x28)
    and a value unique to each drawing below. Returns those values in sorted (loading) order."""
    values = []
    for alphabet in sorted(alphabets):
        for character in range(1, alphabets[alphabet] + 1):
            path = folder / alphabet / f"character{character:02d}"
            path.mkdir(parents=True)
            for drawer in range(1, 21):
                value = first_value + len(values)
                pixels = np.full((105, 105), value, np.uint8)
                pixels[:15] = 0
                Image.fromarray(pixels).save(path / f"{1000 + character:04d}_{drawer:02d}.png")
                values.append(value)
    return np.array(values)


def expected_omniglot(values: np.ndarray) -> torch.Tensor:
    images = torch.from_numpy(values.astype(np.uint8))[:, None, None, None].expand(-1, 1, 28, 28).clone()
    images[:, :, :4] = 0
    return images


def test_download_omniglot_both_splits(server, monkeypatch, tmp_path):
    folder, url = server
    source = tmp_path / "source"
    values = {"images_background": write_omniglot(source / "images_background", {"Beta": 1, "Alpha": 2}, 20),
              "images_evaluation": write_omniglot(source / "images_evaluation", {"Gamma": 2}, 120)}
    for split_folder in values:
        shutil.make_archive(str(folder / split_folder), "zip", source, split_folder)
    monkeypatch.setattr(tvd.Omniglot, "zips_md5", {name: md5(folder / f"{name}.zip") for name in values})
    root = tmp_path / "root"
    assert download_dataset("omniglot", root, mirror=url) == root / "omniglot-py"
    for split, split_folder, characters in (("train", "images_background", 3), ("test", "images_evaluation", 2)):
        data = load_split("omniglot", split, root)
        assert torch.equal(data.images, expected_omniglot(values[split_folder]))
        assert torch.equal(data.labels, torch.arange(characters).repeat_interleave(20))
        assert data.num_classes == characters


def test_omniglot_decoded_cache_lives_in_the_user_cache_and_follows_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "root"
    folder = root / "omniglot-py" / "images_evaluation"
    values = write_omniglot(folder, {"Alpha": 2}, 50)
    files_before = sorted(root.rglob("*"))
    first = load_split("omniglot", "test", root)
    assert sorted(root.rglob("*")) == files_before
    assert len(list((tmp_path / "cache" / "vsml_gym" / "decoded").glob("*.pt"))) == 1

    loaders.clear_cache()
    with monkeypatch.context() as no_decoding:
        no_decoding.setattr(loaders.Image, "open", None)
        assert torch.equal(load_split("omniglot", "test", root).images, first.images)

    changed = folder / "Alpha" / "character02" / "1002_20.png"
    Image.fromarray(np.full((105, 105), 7, np.uint8)).save(changed)
    os.utime(changed, ns=(0, 0))
    loaders.clear_cache()
    values[-1] = 7
    expected = expected_omniglot(values)
    expected[-1, :, :4] = 7
    assert torch.equal(load_split("omniglot", "test", root).images, expected)


def test_omniglot_character_without_twenty_drawings_is_an_error(tmp_path):
    folder = tmp_path / "omniglot-py" / "images_background"
    write_omniglot(folder, {"Alpha": 2}, 0)
    (folder / "Alpha" / "character02" / "1002_07.png").unlink()
    with pytest.raises(ValueError, match="character02 has 19 drawings, expected 20"):
        load_split("omniglot", "train", tmp_path)


def test_status_of_generated_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = random_split(30, 7, 10)
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx(images))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx(labels))
    rows = {(row.name, row.split): row for row in dataset_status(tmp_path)}
    assert rows["mnist", "test"].present and rows["mnist", "test"].num_examples == 7
    assert rows["mnist", "test"].size_bytes == (16 + 7 * 784) + (8 + 7)
    assert not rows["mnist", "train"].present
    assert sum(row.present for row in rows.values()) == 1


# ---------------------------------------------------------------- corrupt files and failed downloads


def write_mnist_test(root: Path, n: int = 7, seed: int = 31) -> Path:
    """An MNIST test split of `n` random examples in the official IDX files; returns the raw folder."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = random_split(seed, n, 10)
    (raw / "t10k-images-idx3-ubyte").write_bytes(idx(images))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx(labels))
    return raw


def truncate(path: Path, size: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:-size])


def flip_first_label(path: Path, value: int = 11) -> None:
    data = bytearray(path.read_bytes())
    data[8] = value
    path.write_bytes(bytes(data))


def bad_magic(path: Path) -> None:
    path.write_bytes(b"\x00\x00\x09" + path.read_bytes()[3:])


def fewer_labels(path: Path) -> None:
    labels = np.arange(6, dtype=np.uint8)
    path.write_bytes(idx(labels))


#: (file of the MNIST test split, how it is damaged, message regex): all ValueErrors, at load and in `data list`
CORRUPTIONS = [
    ("t10k-images-idx3-ubyte", truncate,
     r"t10k-images-idx3-ubyte has 5404 bytes but its header \(7 x 28 x 28\) needs 5504, so the file is truncated "
     r"or corrupted: delete it and download it again \(vsml-gym data download\)"),
    ("t10k-labels-idx1-ubyte", lambda path: truncate(path, 2),
     r"t10k-labels-idx1-ubyte has 13 bytes but its header \(7\) needs 15"),
    ("t10k-labels-idx1-ubyte", flip_first_label,
     r"t10k-labels-idx1-ubyte holds labels \d+\.\.11 but MNIST has classes 0\.\.9, so the labels are corrupted"),
    ("t10k-images-idx3-ubyte", bad_magic,
     r"t10k-images-idx3-ubyte does not start like an IDX file of 3-d unsigned bytes \(magic 00000803, found 00000903\)"),
    ("t10k-labels-idx1-ubyte", fewer_labels, r"t10k-images-idx3-ubyte holds 7 images but .*t10k-labels-idx1-ubyte 6 labels"),
]


@pytest.mark.parametrize("file, damage, message", CORRUPTIONS, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(CORRUPTIONS)])
def test_corrupt_idx_files_are_refused_when_loaded_and_not_listed_as_present(tmp_path, file, damage, message):
    raw = write_mnist_test(tmp_path)
    damage(raw / file)
    with pytest.raises(ValueError, match=message):
        load_split("mnist", "test", tmp_path)
    row = {(r.name, r.split): r for r in dataset_status(tmp_path)}["mnist", "test"]
    assert not row.present and row.num_examples is None and re.search(message, row.problem)
    import gymnasium as gym

    with pytest.raises(ValueError, match=message):  # at env creation, not mid-episode
        gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(tmp_path))


def test_a_flipped_pixel_byte_in_an_official_size_idx_file_fails_its_md5(data_root, tmp_path):
    """The real MNIST test split loads; one pixel byte changed (size, header and labels intact) is caught
    by the decompressed file's md5."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(data_root / "MNIST" / "raw" / name, raw / name)
    assert len(load_split("mnist", "test", tmp_path).labels) == 10_000
    images = raw / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[16 + 28 * 14 + 14] ^= 0xFF  # the middle pixel of the first image
    images.write_bytes(bytes(data))
    loaders.clear_cache()  # the split held in memory is the file's old version
    with pytest.raises(ValueError, match=r"checksum mismatch for .*t10k-images-idx3-ubyte: md5 [0-9a-f]{32}, the official "
                                         r"file has 2646ac647ad5339dbf082846283269ea"):
        load_split("mnist", "test", tmp_path)
    row = {(r.name, r.split): r for r in dataset_status(tmp_path)}["mnist", "test"]
    assert not row.present and "checksum mismatch" in row.problem


def test_cifar_binary_label_bytes_out_of_range_are_refused(monkeypatch, tmp_path):
    write_cifar_binary(tmp_path / "cifar-10-batches-bin", cifar_batches(40))
    monkeypatch.setattr(loaders, "CIFAR_RECORDS_PER_BATCH", CIFAR_BATCH)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin"
    data = bytearray(path.read_bytes())
    data[0] = 200  # the first record's label byte
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"cifar-10-batches-bin holds labels \d\.\.200 but CIFAR-10 has classes 0\.\.9"):
        load_split("cifar10", "train", tmp_path)


def test_md5_of_a_file_is_computed_once_per_version(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    calls = []
    monkeypatch.setattr(loaders, "calculate_md5", lambda p: calls.append(p) or hashlib.md5(p.read_bytes()).hexdigest())
    loaders._md5.cache_clear()
    for _ in range(3):
        loaders._verify_md5(path, hashlib.md5(b"abc").hexdigest())
    assert len(calls) == 1
    path.write_bytes(b"abd")
    with pytest.raises(ValueError, match=r"checksum mismatch for .*file\.bin: md5 .*, the official file has .*"):
        loaders._verify_md5(path, hashlib.md5(b"abc").hexdigest())


def test_failed_download_is_one_line_a_dataset_not_found_error_and_a_runtime_error(server, tmp_path):
    _, url = server  # serves nothing: every file is a 404, as without a network
    with pytest.raises(DownloadError) as caught:
        download_dataset("kmnist", tmp_path / "root", mirror=url)
    message = str(caught.value)
    assert "\n" not in message and re.match(r"downloading KMNIST from http://127\.0\.0\.1:\d+/ into .* failed \(.*\); "
                                            r"check the mirror URL$", message)
    assert isinstance(caught.value, DatasetNotFoundError) and isinstance(caught.value, RuntimeError)


def test_env_creation_with_download_reports_the_failed_download(server, tmp_path, monkeypatch):
    _, url = server
    monkeypatch.setattr(loaders, "download_dataset", lambda name, root: download_dataset(name, root, mirror=url))
    import gymnasium as gym

    with pytest.raises(DownloadError, match=r"downloading Fashion-MNIST from .* failed"):
        gym.make("VSML/FashionMNIST-Online-v0", split="test", data_root=str(tmp_path), download=True)
