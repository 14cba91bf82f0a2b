"""The CPU performance scripts run end to end (their figures are machine-dependent; what they
must get right is the workload and what they report)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cpu_clock import effective_ghz  # noqa: E402
from benchmarks.perf_vsml import run_worker  # noqa: E402


def test_clock_probe_measures_every_thread():
    ghz = effective_ghz(seconds=0.05)
    assert len(ghz) >= 1 and all(0.1 < g < 10 for g in ghz), ghz  # a real core's clock, not 0 or nonsense


@pytest.mark.parametrize("implementation", ["baseline", "vsml"])
def test_perf_worker_reports_speed_memory_and_the_clock(implementation):
    result = run_worker(implementation, 2, 3, "cpu", None, repeats=2)
    assert result["implementation"] == implementation and result["population"] == 2 and result["steps"] == 3
    assert result["examples_per_s"] > 0 and result["examples_per_s_median"] <= result["examples_per_s"]
    assert result["peak_memory_mb"] > 0 and result["flops_per_example"] > 0
    assert result["cpu_kernel"] == (implementation == "vsml")
    before, after = result["cpu_ghz_before_after"]
    assert len(before) == len(after) >= 1 and all(g > 0.1 for g in before + after)
