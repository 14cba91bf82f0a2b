"""The CPU's effective clock in GHz, per thread: dependent integer adds (one per cycle) timed on
all threads at once (benchmarks/csrc/clock_probe.cpp, built like the VSML kernel). A shared VM's
speed swings with the host's load; benchmarks record this beside their figures.

    python benchmarks/cpu_clock.py            # prints JSON: GHz of each thread, a few probes
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.vsml.cpu_ticks import build_directory, compile_and_load  # noqa: E402

SOURCE = Path(__file__).resolve().parent / "csrc" / "clock_probe.cpp"


@functools.lru_cache(maxsize=None)
def _load() -> None:
    compile_and_load("vsml_gym_clock_probe", SOURCE, build_directory() / "clock_probe")


def effective_ghz(seconds: float = 0.2) -> list[float]:
    """GHz of each of torch's CPU threads, all busy at once for about `seconds`."""
    _load()
    threads = torch.get_num_threads()
    calibration = torch.ops.vsml_gym_bench.clock_probe(10_000_000, threads)
    iterations = int(seconds * float(calibration.min()) * 1e9)
    return [round(float(g), 2) for g in torch.ops.vsml_gym_bench.clock_probe(iterations, threads)]


def main() -> None:
    print(json.dumps({"threads": torch.get_num_threads(), "ghz": [effective_ghz() for _ in range(5)]}))


if __name__ == "__main__":
    main()
