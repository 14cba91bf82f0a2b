"""The model zoo: shipped entries load by name, learn, reproduce from their cards; bad ones are refused."""

import json
import shutil

import gymnasium as gym
import pytest
import torch
import yaml

from agents.leaderboard import LearnerSpec, run_benchmark
from agents.registry import learner_names, make_learner
from agents.rollout import members_for_runs, rollout
from agents.training import CheckpointError, load_config, make_trainer
from agents.training.config import config_from_dict
from agents.zoo import ENTRIES, ZooError, ZooShapeError, load_entry, write_weights, zoo_names
from vsml_gym.cli import main as cli_main

REQUIRED = ("vsml@mnist", "vsml@mix", "meta_rnn@mnist", "hebbian@mnist", "fw_memory@mnist")


def test_the_zoo_lists_the_required_entries_with_their_cards(capsys):
    assert set(REQUIRED) <= set(zoo_names())
    assert set(REQUIRED) <= set(learner_names())
    assert cli_main(["zoo", "--json"]) == 0
    cards = {card["name"]: card for card in json.loads(capsys.readouterr().out)}
    for name in REQUIRED:
        card = cards[name]
        training = card["meta_training"]
        assert card["learner"] == name.split("@")[0] and card["num_params"] > 0
        assert training["code_commit"] and training["hardware"] and training["steps"] > 0
        for stage in training["stages"]:
            assert stage["command"].startswith("vsml-gym train configs/") and stage["tasks"]
            assert stage["training_hours_to_chosen"] > 0 and stage["first_iterations"]
        for env in ("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0", "VSML/KMNIST-Online-v0"):
            mean, ci95 = card["meta_test"]["results"][env]["online@100"]
            assert 0 < mean <= 100 and 0 < ci95 < 20
    assert cli_main(["zoo", "vsml@mnist"]) == 0
    assert "code_commit" in capsys.readouterr().out


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_loads_by_name_and_runs_its_shipped_meta_parameters(name, data_root):
    """Shipped meta-parameters, not fresh ones, run a rollout: over 100 test-split MNIST examples
    every entry (all were meta-trained on MNIST) is far above chance (10 %), which untrained
    meta-parameters are not."""
    env = gym.make_vec("VSML/MNIST-Online-v0", num_envs=4, split="test", episode_length=100, data_root=str(data_root))
    shape, classes = env.single_observation_space["x"].shape, env.single_action_space.shape[0]
    learner = make_learner(name, shape, classes)
    entry = load_entry(name)
    assert torch.equal(learner.init_params(2)[1], entry.params) and learner.describe()["meta_params"] == name
    with torch.no_grad():
        trained = rollout(learner, members_for_runs(learner, learner.init_params(1), 4), env, seed=3, state_seed=3)
        fresh_learner = make_learner(entry.learner, shape, classes, **entry.options)
        fresh = rollout(fresh_learner, members_for_runs(fresh_learner, fresh_learner.init_params(1), 4), env,
                        seed=3, state_seed=3)
    env.close()
    assert trained.loss.isfinite().all()
    accuracy = float(trained.accuracy().mean())
    assert accuracy > 0.3, f"{name}: {accuracy:.2f} online accuracy over 100 MNIST examples"
    assert accuracy > float(fresh.accuracy().mean()) + 0.15


@pytest.mark.parametrize("name", REQUIRED)
def test_an_entrys_first_meta_training_iterations_reproduce_from_its_card(name, tmp_path, data_root):
    stage = load_entry(name).card["meta_training"]["stages"][0]
    config = config_from_dict({**stage["config"], "output_dir": str(tmp_path), "data_root": str(data_root)})
    trainer = make_trainer(config, progress=False)
    for logged in stage["first_iterations"]:
        stats = trainer.train_step()
        trainer.iteration += 1
        assert trainer.iteration == logged["iteration"]
        assert stats["loss"] == pytest.approx(logged["loss"], rel=1e-4, abs=1e-5)
        assert stats["grad_norm"] == pytest.approx(logged["grad_norm"], rel=1e-3, abs=1e-6)


def _copy(name, directory):
    for suffix in (".pt", ".yaml"):
        shutil.copy(ENTRIES / f"{name}{suffix}", directory / f"{name}{suffix}")
    return directory / f"{name}.pt", directory / f"{name}.yaml"


def test_a_corrupted_or_unknown_entry_is_refused(tmp_path):
    weights, card = _copy("vsml@mnist", tmp_path)
    assert torch.equal(load_entry("vsml@mnist", tmp_path).params, load_entry("vsml@mnist").params)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="corrupted"):
        load_entry("vsml@mnist", tmp_path)
    weights.write_bytes(b"")
    with pytest.raises(ZooError, match="corrupted"):
        load_entry("vsml@mnist", tmp_path)
    weights.unlink()
    with pytest.raises(ZooError, match="missing"):
        load_entry("vsml@mnist", tmp_path)
    card.write_text("name: [unclosed")
    with pytest.raises(ZooError, match="not valid YAML"):
        load_entry("vsml@mnist", tmp_path)
    with pytest.raises(ZooError, match="did you mean 'vsml@mnist'"):
        load_entry("vsml@mnsit")


def _mismatched(tmp_path, name, learner, card_options):
    """An entry whose weights were written for `learner` but whose card and file record
    `card_options`: what the code finds when an option's meaning or a parameter layout changed."""
    params = learner.init_params(1)[0]
    weights = tmp_path / f"{name}.pt"
    digest = write_weights(weights, name, learner, params, card_options)
    card = yaml.safe_load((ENTRIES / "vsml@mnist.yaml").read_text())
    card.update(name=name, learner=learner.name, options=card_options, num_params=learner.num_params,
                weights=weights.name, sha256=digest)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(card))
    return load_entry(name, tmp_path)


def test_an_entry_that_no_longer_matches_the_code_is_refused(tmp_path):
    wide = make_learner("meta_rnn", (1, 28, 28), 10, hidden_size=8)
    entry = _mismatched(tmp_path, "meta_rnn@changed", wide, {"hidden_size": 6})
    with pytest.raises(ZooError, match="no longer matches the code.*shapes differ"):
        entry.build((1, 28, 28), 10)
    entry = _mismatched(tmp_path, "meta_rnn@renamed", wide, {"hidden_units": 8})
    with pytest.raises(ZooError, match="no longer matches the code.*refuses its options"):
        entry.build((1, 28, 28), 10)


def test_a_size_bound_entry_says_which_sizes_it_needs(data_root):
    with pytest.raises(ZooShapeError, match=r"meta-trained for inputs \(1, 28, 28\) with 10 classes"):
        make_learner("meta_rnn@mnist", (3, 32, 32), 10)
    make_learner("vsml@mnist", (3, 32, 32), 10)  # VSML's meta-parameters fit every size
    records = run_benchmark([LearnerSpec.parse("meta_rnn@mnist")], ["VSML/SumSign-Online-v0"], seeds=2,
                            episode_length=10, data_root=str(data_root), progress=False)
    assert not records[0]["available"] and records[0]["unavailable"] == "other input/output size"


def test_zoo_names_work_in_the_cli_and_as_a_starting_point(tmp_path, capsys, data_root):
    code = cli_main(["evaluate", "vsml@mnist", "--env", "VSML/MNIST-Online-v0", "--episodes", "2",
                     "--episode-length", "30", "--data-root", str(data_root), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["learner"] == "vsml@mnist" and report["results"]["VSML/MNIST-Online-v0"]["accuracy"] > 0.2
    assert cli_main(["benchmark", "--learner", "vsml@nope", "--out", str(tmp_path)]) == 2
    assert "unknown zoo entry 'vsml@nope'" in capsys.readouterr().err
    entry = load_entry("vsml@mnist")
    options = ",".join(f"{k}: {json.dumps(v)}" for k, v in entry.options.items())
    base = [f"output_dir={tmp_path}", "name=further", "learner.init_from=vsml@mnist", "training.method=gradient",
            "training.iterations=1", "training.population_size=2", "training.episode_length=5", "evaluation.every=0",
            "training.tasks=[VSML/SumSign-Online-v0]"]
    trainer = make_trainer(load_config(None, [*base, f"learner.options={{{options}}}"]), progress=False)
    assert torch.equal(trainer.center().detach(), entry.params)
    with pytest.raises(CheckpointError, match="init_from: vsml@mnist holds another learner.*options"):
        make_trainer(load_config(None, base), progress=False)


def test_a_zoo_entry_benchmarks_from_any_folder(tmp_path, data_root):
    """The entry travels in the package: no config, run folder or checkout file is read."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "vsml_gym.cli", "benchmark", "--learner", "vsml@mnist", "--env",
               "VSML/SumSign-Online-v0", "--seeds", "2", "--episode-length", "20", "--quiet", "--data-root",
               str(data_root), "--out", str(tmp_path / "board")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| vsml@mnist |" in done.stdout
