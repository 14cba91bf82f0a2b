"""The README's custom learner, executed verbatim, runs through the standard tools."""

import re
from pathlib import Path

import gymnasium as gym
import torch

import vsml_gym  # noqa: F401  (registers the environments)
from agents import learner_names, make_learner, rollout
from agents.registry import _REGISTERED

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- example:custom-learner -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lacks the custom learner example"
    return match.group(1)


def test_readme_custom_learner_is_about_30_lines_and_learns_mnist(data_root):
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 35
    _REGISTERED.pop("prototype", None)
    exec(compile(code, str(README), "exec"), {})
    assert "prototype" in learner_names()

    envs = gym.make_vec("VSML/MNIST-Online-v0", num_envs=4, split="test", episode_length=600, data_root=str(data_root))
    learner = make_learner("prototype", (1, 28, 28), 10)
    params = learner.init_params(population=2, seed=0)
    assert params.shape == (2, 1)
    with torch.no_grad():
        result = rollout(learner, params, envs, seed=0)
    late = result.correct[300:].float().mean()
    print(f"prototype learner, MNIST accuracy over steps 300-600: {float(late):.3f}")
    assert float(late) > 0.5  # chance is 0.1


def test_readme_custom_learner_meta_trains_with_es(tmp_path):
    from agents.training import load_config, make_trainer

    _REGISTERED.pop("prototype", None)
    exec(compile(readme_example(), str(README), "exec"), {})
    config = load_config(None, [f"output_dir={tmp_path}", "name=prototype", "learner.name=prototype",
                                "training.population_size=4", "training.iterations=2", "training.episode_length=30",
                                "training.tasks=[VSML/SumSign-Online-v0]", "evaluation.every=2",
                                "evaluation.envs=[VSML/SumSign-Online-v0]", "evaluation.episode_length=30"])
    record = make_trainer(config, progress=False).run()
    assert record["iteration"] == 2 and record["eval"]["VSML/SumSign-Online-v0"]["available"]


def test_readme_learner_reaches_the_command_line_with_import(tmp_path):
    """The README's `--import` route, as a user runs it: the example saved as my_learners.py in
    the current folder, `vsml-gym benchmark --import my_learners --learner prototype` in a fresh
    process (a console script does not look in the current folder by itself)."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "my_learners.py").write_text(readme_example())
    command = [sys.executable, "-m", "vsml_gym.cli", "benchmark", "--import", "my_learners", "--learner", "prototype",
               "--env", "VSML/SumSign-Online-v0", "--seeds", "2", "--episode-length", "30", "--quiet",
               "--out", str(tmp_path / "board")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "board" / "results.jsonl").read_text().splitlines()]
    assert [(r["learner"], r["available"]) for r in records] == [("prototype", True)]
    missing = subprocess.run(command[:5] + ["no_such_module"] + command[6:], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [
        f"vsml-gym benchmark: error: cannot import 'no_such_module': no such module on sys.path or in the current "
        f"folder {tmp_path} (a file: --import path/to/no_such_module.py)"]


def test_a_configs_imports_reach_the_trainer(tmp_path, monkeypatch):
    from agents.training import load_config, make_trainer

    _REGISTERED.pop("prototype", None)
    (tmp_path / "my_learners_cfg.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(None, [f"output_dir={tmp_path}", "imports=[my_learners_cfg]", "learner.name=prototype",
                                "training.population_size=4", "training.iterations=1", "training.episode_length=20",
                                "training.tasks=[VSML/SumSign-Online-v0]", "evaluation.every=0"])
    assert make_trainer(config, progress=False).run()["iteration"] == 1
