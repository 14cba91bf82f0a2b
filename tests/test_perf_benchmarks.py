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


def test_metatraining_throughput_reports_both_trainers_side_by_side(tmp_path, data_root):
    import json
    import subprocess

    config = tmp_path / "tiny.yaml"
    config.write_text("learner: {name: vsml, options: {num_micro_ticks: 1}}\n"
                      "training: {method: gradient, population_size: 2, episode_length: 2, device: cpu,\n"
                      "           tasks: [{env: VSML/MNIST-Online-v0, options: {resize: 7}}]}\n")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "metatraining_throughput.py"
    result = subprocess.run([sys.executable, str(script), "--config", str(config), "--set", f"data_root={data_root}",
                             "--es-population", "2", "--repeats", "1", "--threads", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    forward, gradient = report["forward_es"], report["gradient"]
    assert forward["population"] == 2 and forward["episode_length"] == 2 and forward["antithetic"]
    assert forward["examples_per_episode"] == forward["examples_per_es_step"] == 2 * 2
    assert gradient["batch_streams"] == 2 and gradient["members"] == 1
    assert gradient["examples_per_episode"] == 2 * 2
    for key in ("examples_per_s", "examples_per_s_median", "es_steps_per_hour", "peak_memory_mb"):
        assert forward[key] > 0, key
    for key in ("examples_per_s", "examples_per_s_median", "gradient_steps_per_hour",
                "forward_with_graph_seconds_median", "backward_and_update_seconds_median", "peak_memory_mb"):
        assert gradient[key] > 0, key
    assert forward["es_steps_per_hour"] == pytest.approx(
        3600 * forward["examples_per_s_median"] / forward["examples_per_es_step"], rel=1e-2)
    assert report["gradient_over_forward_cost_per_example"] == pytest.approx(
        forward["examples_per_s_median"] / gradient["examples_per_s_median"], rel=1e-2)
    from agents.vsml.cpu_ticks import cpu_kernel_available

    assert report["torch_threads"] == 1
    assert (report["forward_kernel"] == "C++ CPU kernel") == cpu_kernel_available()
    assert all(g > 0.1 for g in report["cpu_ghz_before_after"][0] + report["cpu_ghz_before_after"][1])


def test_metatraining_screen_writes_a_run_with_validation_at_every_size(tmp_path, data_root):
    import json
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "metatraining_screen.py"
    result = subprocess.run([sys.executable, str(script), "smoke", "--config", "configs/vsml_mnist_cpu.yaml",
                             "--set", f"data_root={data_root}", "--set", "training.iterations=2",
                             "--set", "training.episode_length=4", "--set", "training.population_size=2",
                             "--sizes", "7", "14", "--eval-every", "2", "--eval-episodes", "2", "--eval-steps", "4",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "smoke" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    assert sorted(records[-1]["eval"]) == sorted(f"VSML/{name}-Online-v0@{size}" for name in ("MNIST", "FashionMNIST")
                                                 for size in (7, 14))
    assert all(r["available"] and r["episode_length"] == 4 for r in records[-1]["eval"].values())
    assert (tmp_path / "smoke" / "best.pt").exists() and (tmp_path / "smoke" / "progress.png").exists()
