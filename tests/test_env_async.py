"""Gymnasium's AsyncVectorEnv over the single env, after torch has run in the parent process.

Forked workers inherit torch's OpenMP thread pool, which is not fork-safe: without care the first
parallel op in a worker blocks forever. Each scenario runs in its own process group with a timeout,
so that a hang fails the test and leaves no orphaned workers behind.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

SCENARIO = """
import gymnasium as gym
import torch
import vsml_gym

torch.set_num_threads(2)
torch.randn(64, 64) @ torch.randn(64, 64)  # the parent's thread pool is now running
torch.randn(4096, 784).mul(2).sum()

def main():
    venv = gym.make_vec("VSML/MNIST-Online-v0", num_envs=2, vectorization_mode="async", split="test",
                        episode_length=3, **KWARGS)
    obs, _ = venv.reset(seed=0)
    assert obs["x"].shape == (2, 1, 28, 28)
    for _ in range(4):  # across the NEXT_STEP autoreset
        obs, reward, terminated, truncated, info = venv.step(venv.action_space.sample())
    assert reward.shape == (2,)
    venv.close()
    assert all(not process.is_alive() for process in venv.processes)
    print("closed cleanly")

if __name__ == "__main__":
    main()
"""


def run_scenario(tmp_path, kwargs: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(SCENARIO).replace("**KWARGS", kwargs))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too
        process.communicate()
        pytest.fail(f"AsyncVectorEnv with {kwargs or 'defaults'} hung for {timeout} s after torch ops in the parent")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("kwargs", ["", "vector_kwargs={'context': 'fork'}", "vector_kwargs={'context': 'spawn'}"],
                         ids=["default", "fork", "spawn"])
def test_async_vector_env_works_after_torch_ran_in_the_parent(tmp_path, data_root, kwargs, monkeypatch):
    monkeypatch.setenv("VSML_GYM_DATA", str(data_root))
    result = run_scenario(tmp_path, kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "closed cleanly" in result.stdout
