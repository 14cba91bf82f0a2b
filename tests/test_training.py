"""Meta-training: ES gradient, antithetic data sharing, real improvement, resume, Ray, checkpoints."""

import json

import pytest
import torch
from evotorch import Problem

from agents import register_learner
from agents.registry import _REGISTERED
from agents.training import CheckpointError, load_checkpoint, load_config, make_trainer
from agents.training.checkpoint import save_checkpoint
from agents.training.config import config_from_dict
from agents.training.population import PopulationEvaluator, stream_ids
from agents.training.searchers import make_searcher
from helpers import DataEcho
from vsml_gym.cli import main as cli_main

SUM_SIGN_7x7 = "training.tasks=[{env: VSML/SumSign-Online-v0, options: {resize: 7}}]"


def tiny(tmp_path, name, *overrides):
    return load_config(None, [f"name={name}", f"output_dir={tmp_path}", "training.population_size=8",
                              "training.iterations=4", "training.episode_length=12", "evaluation.every=0",
                              "learner.name=meta_rnn", "learner.options={hidden_size: 8}", SUM_SIGN_7x7,
                              "checkpoint_every=2", *overrides])


# ---------------------------------------------------------------- the search gradient
def test_openai_es_gradient_estimate_points_along_the_true_gradient():
    scales = torch.linspace(0.5, 3.0, 20)
    problem = Problem("min", lambda x: (scales * x**2).sum(-1), solution_length=20, vectorized=True,
                      initial_bounds=(-1, 1), dtype=torch.float32)
    center = torch.linspace(-1, 1, 20)
    torch.manual_seed(0)
    searcher = make_searcher("openai_es", problem, 4000, center.clone(), {"optimizer": None, "center_learning_rate": 1.0})
    searcher.step()  # EvoTorch's PGPE samples and evaluates first, and updates at the next step
    searcher.step()
    step = searcher.status["center"].as_subclass(torch.Tensor) - center
    true_gradient = 2 * scales * center
    cosine = torch.nn.functional.cosine_similarity(-step, true_gradient, dim=0)
    assert float(cosine) > 0.95, float(cosine)


# ---------------------------------------------------------------- antithetic partners share data
@pytest.fixture
def data_echo():
    register_learner("data_echo", DataEcho, overwrite=True)
    yield
    _REGISTERED.pop("data_echo", None)


def test_antithetic_partners_see_identical_data_wherever_they_sit(data_echo, tmp_path):
    config = load_config(None, ["learner.name=data_echo", "training.episode_length=20",
                                "training.tasks=[{env: VSML/MNIST-Online-v0, options: {split: test}}, "
                                "VSML/SumSign-Online-v0]", "training.projection_fraction=0.5"])
    evaluator = PopulationEvaluator(config)
    center = torch.zeros(3)
    noise = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    values = torch.stack([center + sign * e for e in noise for sign in (1, -1)])  # (+e0, -e0, +e1, -e1, ...)
    ids = stream_ids(values, antithetic=True)
    assert ids[0::2] == ids[1::2] and len(set(ids)) == 6
    fitness = evaluator.fitness(values, antithetic=True, device="cpu")
    assert torch.equal(fitness[0::2], fitness[1::2])  # partners: the same data
    assert len(set(fitness[0::2].tolist())) == 6  # pairs: different data
    order = torch.tensor([4, 5, 0, 1, 10, 11, 2, 3, 8, 9, 6, 7])  # pairs moved around (as over Ray actors)
    moved = evaluator.fitness(values[order], antithetic=True, device="cpu")
    torch.testing.assert_close(moved, fitness[order], atol=1e-6, rtol=0)  # rounding of other batch sizes only
    assert {task for task, _ in evaluator.assign(ids)} == {0, 1}  # the mixture is used


# ---------------------------------------------------------------- learning, resuming, distributing
def test_short_meta_training_lowers_the_meta_test_loss(tmp_path):
    config = load_config("configs/quick_sumsign.yaml", [f"output_dir={tmp_path}", "evaluation.every=0"])
    trainer = make_trainer(config, progress=False)
    before = trainer.evaluate()["VSML/SumSign-Online-v0"]["loss"]
    trainer.run()
    after = trainer.evaluate()["VSML/SumSign-Online-v0"]
    print(f"Sum Sign meta-test loss: {before:.3f} -> {after['loss']:.3f} (accuracy {after['accuracy']:.3f})")
    assert after["loss"] < before - 0.3 and after["accuracy"] > 0.85


@pytest.mark.parametrize("method", ["es", "gradient"])
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, method):
    extra = ["training.method=gradient", "training.truncation=4"] if method == "gradient" else []
    straight = make_trainer(tiny(tmp_path, "straight", *extra), progress=False)
    straight.run()

    killed = make_trainer(tiny(tmp_path, "killed", *extra), progress=False)
    original_step = killed.train_step

    def dies_in_iteration_four():
        if killed.iteration == 3:
            raise KeyboardInterrupt  # the process is killed mid-way, after the checkpoint at 2
        return original_step()

    killed.train_step = dies_in_iteration_four
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    assert load_checkpoint(killed.checkpoint_path)["iteration"] == 2

    resumed = make_trainer(tiny(tmp_path, "killed", *extra), resume=True, progress=False)
    resumed.run()
    assert torch.equal(resumed.center(), straight.center())
    lines = [json.loads(line) for line in resumed.log_path.read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [1, 2, 3, 4]


def test_ray_with_two_actors_matches_the_single_process_path(tmp_path):
    single = make_trainer(tiny(tmp_path, "single", "training.iterations=2"), progress=False)
    single.run()
    distributed = make_trainer(tiny(tmp_path, "ray", "training.iterations=2", "training.num_actors=2"), progress=False)
    distributed.run()
    # the same data and initial states per member; batched kernels of another size round differently
    torch.testing.assert_close(distributed.center(), single.center(), atol=1e-5, rtol=0)
    initial = make_trainer(tiny(tmp_path, "initial"), progress=False).center()
    assert float((single.center() - initial).abs().max()) > 1e-3  # and training did move the center


def test_gradient_meta_training_lowers_the_loss(tmp_path):
    config = tiny(tmp_path, "grad", "training.method=gradient", "training.iterations=25",
                  "training.learning_rate=0.01", "training.truncation=6")
    trainer = make_trainer(config, progress=False)
    trainer.run()
    losses = [json.loads(line)["loss"] for line in trainer.log_path.read_text().splitlines()]
    print(f"gradient meta-training loss: {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1


# ---------------------------------------------------------------- checkpoints and configs
def test_corrupt_and_incompatible_checkpoints_are_rejected_clearly(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a vsml-gym checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")

    trainer = make_trainer(tiny(tmp_path, "run", "training.iterations=2"), progress=False)
    trainer.run()
    payload = load_checkpoint(trainer.checkpoint_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trainer.checkpoint_path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    wrong_size = tmp_path / "wrong_size.pt"
    save_checkpoint(wrong_size, {**{k: v for k, v in payload.items() if k not in ("format", "version")},
                                 "params": torch.zeros(5)})
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(wrong_size)
    with pytest.raises(CheckpointError, match="expected 'gradient'"):
        load_checkpoint(trainer.checkpoint_path, kind="gradient")
    other_learner = make_trainer(tiny(tmp_path, "run", "training.iterations=3", "learner.options={hidden_size: 4}"),
                                 resume=True, progress=False)
    with pytest.raises(CheckpointError, match="learner options"):
        other_learner.run()
    assert cli_main(["evaluate", str(garbage)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_config_errors_and_overrides():
    with pytest.raises(ValueError, match="did you mean 'population_size'"):
        load_config(None, ["training.populaton_size=4"])
    with pytest.raises(ValueError, match="divisible by 2 \\* num_actors"):
        load_config(None, ["training.population_size=6", "training.num_actors=2"])
    with pytest.raises(ValueError, match="fitness"):
        config_from_dict({"training": {"fitness": "median"}})
    config = load_config("configs/vsml_mnist.yaml", ["training.population_size=128", "evaluation.envs=[VSML/MNIST-Online-v0]"])
    assert config.training.population_size == 128 and config.evaluation.envs == ["VSML/MNIST-Online-v0"]
    assert config.name == "vsml_mnist" and config.training.searcher == "openai_es"
    for path in ["configs/vsml_mixture.yaml", "configs/vsml_omniglot.yaml", "configs/meta_rnn_mnist.yaml",
                 "configs/hebbian_mnist.yaml", "configs/fw_memory_mnist.yaml", "configs/vsml_mnist_gradient.yaml"]:
        load_config(path)  # every shipped config is valid


def test_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    code = cli_main(["train", "configs/quick_sumsign.yaml", "--quiet", "--set", f"output_dir={tmp_path}",
                     "--set", "training.iterations=3", "--set", "evaluation.every=3",
                     "--set", "evaluation.episode_length=20"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[eval @ 3]" in out and '"iteration": 3' in out
    checkpoint = tmp_path / "quick_sumsign" / "checkpoint.pt"
    assert cli_main(["evaluate", str(checkpoint), "--episodes", "2", "--episode-length", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["iteration"] == 3 and report["results"]["VSML/SumSign-Online-v0"]["available"]
