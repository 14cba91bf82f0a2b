"""The suite's own commands: `vsml-gym envs` and `vsml-gym data`, on small generated data roots."""

import re

import gymnasium as gym
import pytest

from test_data import write_mnist_test
from vsml_gym.cli import main
from vsml_gym.data import DatasetNotFoundError

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: refused at once, like a machine without a network


def rows_of(output: str) -> dict[str, str]:
    """Table row of each env id in `vsml-gym envs` output."""
    return {line.split()[0]: line for line in output.splitlines() if line.startswith("VSML/")}


def test_envs_checks_the_split_gym_make_uses_and_names_the_missing_one(tmp_path, capsys):
    write_mnist_test(tmp_path)  # MNIST test only, like KMNIST in the shared data
    with pytest.raises(DatasetNotFoundError, match="split 'train'"):
        gym.make("VSML/MNIST-Online-v0", data_root=str(tmp_path))
    assert main(["envs", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "data (train)" in out.splitlines()[0]
    assert re.search(r"data missing: MNIST \('mnist'\) split 'train' is not in the data root", rows_of(out)["VSML/MNIST-Online-v0"])
    assert rows_of(out)["VSML/SumSign-Online-v0"].endswith("present")

    assert main(["envs", "--data-root", str(tmp_path), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "data (test)" in out and rows_of(out)["VSML/MNIST-Online-v0"].endswith("present")
    gym.make("VSML/MNIST-Online-v0", data_root=str(tmp_path), split="test")  # agrees


def test_envs_check_prints_a_stable_table_without_timings(tmp_path, capsys):
    write_mnist_test(tmp_path)
    args = ["envs", "--check", "--split", "test", "--data-root", str(tmp_path), "--num-envs", "2", "--episode-length", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert "steps/s" not in first and "check (test)" in first
    assert rows_of(first)["VSML/MNIST-Online-v0"].endswith("ok") and rows_of(first)["VSML/Random-Online-v0"].endswith("ok")


def test_envs_and_data_list_report_a_corrupt_split(tmp_path, capsys):
    raw = write_mnist_test(tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes()[:-10])
    assert main(["data", "list", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    mnist_test = next(line for line in out.splitlines() if line.startswith("mnist") and " test " in line)
    assert "CORRUPT" in mnist_test and "yes" not in mnist_test
    assert re.search(r"mnist test: .*t10k-images-idx3-ubyte has 5494 bytes but its header \(7 x 28 x 28\) needs 5504", out)
    assert main(["envs", "--split", "test", "--data-root", str(tmp_path)]) == 0
    assert "data unusable: " in rows_of(capsys.readouterr().out)["VSML/MNIST-Online-v0"]


def test_failed_download_is_one_error_line_and_exit_code_2(tmp_path, capsys):
    assert main(["data", "download", "kmnist", "--data-root", str(tmp_path), "--mirror", UNREACHABLE]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert re.match(r"vsml-gym data: error: downloading KMNIST from http://127\.0\.0\.1:9/ into .* failed \(.*\); "
                    r"check the mirror URL$", lines[0])
