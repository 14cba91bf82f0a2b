"""The leaderboard protocol: metrics, reproducibility, plug-ins, missing data, plots, merging."""

import json

import numpy as np
import pytest
import torch

from agents import register_learner
from agents.leaderboard import LearnerSpec, read_records, run_benchmark, write_outputs
from agents.leaderboard.metrics import accuracy_curve, run_metrics, summarise, t_quantile, unpack_correct
from agents.leaderboard.report import leaderboard_markdown
from agents.registry import _REGISTERED
from helpers import DataEcho
from vsml_gym.cli import main as cli_main


def test_metrics_match_hand_computed_values():
    steps, seeds = 2000, 3
    correct = np.zeros((steps, seeds), dtype=bool)
    correct[:, 0] = True  # seed 0 always right
    correct[1000:, 1] = True  # seed 1 right from step 1000 on
    correct[::2, 2] = True  # seed 2 right every other step
    loss = np.tile(np.array([0.5, 1.0, 1.5]), (steps, 1))
    metrics = run_metrics(correct, loss, np.ones(steps, dtype=bool))
    # acc@100 uses steps 90..99: seed0 1, seed1 0, seed2 5/10
    assert metrics["acc@100"]["mean"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert metrics["acc@2000"]["mean"] == pytest.approx((1 + 1 + 0.5) / 3)  # steps 1800..1999
    assert metrics["online@100"]["mean"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert metrics["final"]["mean"] == metrics["acc@2000"]["mean"]
    assert metrics["loss"]["mean"] == pytest.approx(1.0)
    std = np.std([1.0, 0.0, 0.5], ddof=1)
    assert metrics["acc@500"]["std"] == pytest.approx(std)
    assert metrics["acc@500"]["ci95"] == pytest.approx(4.303 * std / np.sqrt(3))
    assert t_quantile(31) == 2.021 and t_quantile(1000) == 1.960
    s = summarise(np.array([2.0, 4.0]), bounds=(-np.inf, np.inf))
    assert s["mean"] == 3.0 and s["low"] == pytest.approx(3.0 - 12.706 * np.sqrt(2) / np.sqrt(2))


def test_intervals_stay_inside_the_values_range():
    """An accuracy's 95 % interval ends at 0 and 100 %, a loss's at 0; the half-width stays the t one."""
    near_perfect = summarise(np.array([1.0, 1.0, 0.9]))
    assert near_perfect["mean"] + near_perfect["ci95"] > 1.0 and near_perfect["high"] == 1.0
    assert near_perfect["low"] == pytest.approx(near_perfect["mean"] - near_perfect["ci95"])
    near_zero = summarise(np.array([0.0, 0.0, 0.1]))
    assert near_zero["low"] == 0.0 and near_zero["high"] < 1.0
    correct = np.zeros((200, 3), dtype=bool)
    correct[:, 0] = True
    loss = np.tile(np.array([0.01, 0.0, 2.0]), (200, 1))
    metrics = run_metrics(correct, loss, np.ones(200, dtype=bool))
    assert metrics["final"]["low"] == 0.0 and metrics["loss"]["low"] == 0.0 and metrics["loss"]["high"] > 1.0


def test_few_shot_metrics_use_only_the_query():
    correct = np.array([[1, 1], [0, 0], [1, 0]], dtype=bool)  # the query is the last step
    loss = np.array([[9.0, 9.0], [9.0, 9.0], [0.1, 0.3]])
    metrics = run_metrics(correct, loss, np.array([False, False, True]))
    assert metrics["final"]["mean"] == 0.5 and metrics["online@100"]["mean"] == 0.5
    assert metrics["loss"]["mean"] == pytest.approx(0.2)


def test_accuracy_curve_windows_and_band():
    correct = np.ones((100, 4), dtype=bool)
    correct[:50, :2] = False
    curve = accuracy_curve(correct, points=100, min_window=25)
    assert curve["step"] == [25, 50, 75, 100]
    assert curve["mean"] == [0.5, 0.5, 1.0, 1.0]
    assert curve["low"][0] < 0.5 < curve["high"][0]


def tiny_run(data_root, learners=("sgd", "adam:num_layers=2"), envs=("VSML/SumSign-Online-v0",), **kw):
    specs = [LearnerSpec.parse(text) for text in learners]
    return run_benchmark(specs, list(envs), seeds=3, episode_length=120, seed=5, data_root=str(data_root),
                         few_shot_episodes=6, progress=False, **kw)


def test_the_same_seed_reproduces_the_same_table(data_root):
    first = tiny_run(data_root, envs=("VSML/SumSign-Online-v0", "VSML/MNIST-Online-v0"))
    second = tiny_run(data_root, envs=("VSML/SumSign-Online-v0", "VSML/MNIST-Online-v0"))
    assert leaderboard_markdown(first, "acc@100") == leaderboard_markdown(second, "acc@100")
    assert first[0]["correct"] == second[0]["correct"]
    steps = first[0]["episode_length"]
    recovered = unpack_correct(first[0]["correct"], steps)
    assert recovered.shape == (steps, 3)
    assert run_metrics(recovered, np.zeros_like(recovered, dtype=float), np.ones(steps, bool))["final"] == \
        pytest.approx(first[0]["metrics"]["final"])


def test_the_train_split_is_a_separate_meta_validation_board(data_root):
    test, train = (tiny_run(data_root, learners=("sgd",), envs=("VSML/MNIST-Online-v0",), split=split)
                   for split in ("test", "train"))
    assert test[0]["split"] == "test" and train[0]["split"] == "train"
    assert test[0]["correct"] != train[0]["correct"]  # other examples
    assert "on the test split" in leaderboard_markdown(test, "acc@100")
    assert "on the train split" in leaderboard_markdown(train, "acc@100")


def test_plug_in_learner_appears_and_missing_data_is_marked(tmp_path, data_root):
    register_learner("echo_plugin", DataEcho, overwrite=True)
    try:
        records = run_benchmark([LearnerSpec.parse("echo_plugin"), LearnerSpec.parse("sgd")],
                                ["VSML/SumSign-Online-v0", "VSML/KMNIST-Online-v0"], seeds=2, episode_length=30,
                                data_root=str(tmp_path), progress=False)  # an empty data root: KMNIST is missing
    finally:
        _REGISTERED.pop("echo_plugin", None)
    table = leaderboard_markdown(records, "final")
    assert "| echo_plugin |" in table and "| sgd |" in table
    assert table.count("n/a (data missing)") == 2
    kmnist = [r for r in records if r["env"] == "VSML/KMNIST-Online-v0"]
    assert len(kmnist) == 2
    assert all(not r["available"] and "vsml-gym data download kmnist" in r["reason"] for r in kmnist)


def test_plots_and_tables_are_written(tmp_path, data_root):
    records = tiny_run(data_root, envs=("VSML/SumSign-Online-v0", "VSML/Omniglot-5Way1Shot-v0"))
    paths = write_outputs(records, tmp_path, metric="final", introspect=["sgd"])
    import matplotlib.image as mpimg

    for key in ("curves", "first_100", "online", "introspection"):
        image = mpimg.imread(paths[key])
        assert paths[key].stat().st_size > 5000 and image.std() > 0.01, key  # a real, non-blank picture
    assert "**" in paths["markdown"].read_text()  # the best entry is bold
    rows = paths["csv"].read_text().splitlines()
    assert rows[0].startswith("learner,env,available,metric") and len(rows) > 5


def test_leaderboard_command_merges_result_files(tmp_path, data_root, capsys):
    for name, learner in (("a", "sgd"), ("b", "adam")):
        (tmp_path / name).mkdir()
        records = tiny_run(data_root, learners=(learner,))
        (tmp_path / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli_main(["leaderboard", str(tmp_path / "a" / "results.jsonl"), str(tmp_path / "b" / "results.jsonl"),
                     "--metric", "online@100", "--out", str(tmp_path / "merged")]) == 0
    table = capsys.readouterr().out
    assert "| sgd |" in table and "| adam |" in table
    assert len(read_records([tmp_path / "merged" / "results.jsonl"])) == 2
    with pytest.warns(UserWarning, match="second result"):
        read_records([tmp_path / "a" / "results.jsonl", tmp_path / "a" / "results.jsonl"])


def test_generalisation_and_side_by_side_introspection_plots(tmp_path, data_root):
    records = tiny_run(data_root, envs=("VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0"))
    import matplotlib.image as mpimg

    one = write_outputs(records, tmp_path / "one", introspect=["sgd"])
    two = write_outputs(records, tmp_path / "two", introspect=["sgd", "adam:num_layers=2"])
    image = mpimg.imread(two["generalisation"])
    assert image.std() > 0.01
    assert mpimg.imread(two["introspection"]).shape[0] > 1.5 * mpimg.imread(one["introspection"]).shape[0]
    assert "generalisation" not in write_outputs(records[:1], tmp_path / "mnist_only")


def test_env_specs_carry_env_options_into_the_benchmark(data_root):
    from agents.leaderboard.specs import parse_env

    assert parse_env("VSML/MNIST-Online-v0:resize=14,classes=[0, 1, 2]") == (
        "VSML/MNIST-Online-v0", {"resize": 14, "classes": [0, 1, 2]})
    assert parse_env("my_package.envs:MyTask-v0") == ("my_package.envs:MyTask-v0", {})  # Gymnasium's module:Id
    with pytest.raises(ValueError, match="key=value"):
        parse_env("VSML/MNIST-Online-v0:resize=14,shuffle")
    from agents.registry import make_learner

    small, full = tiny_run(data_root, learners=("meta_rnn:hidden_size=4",),
                           envs=("VSML/SumSign-Online-v0:resize=7", "VSML/SumSign-Online-v0"))
    assert small["env"] == "VSML/SumSign-Online-v0:resize=7"
    assert small["num_params"] == make_learner("meta_rnn", (1, 7, 7), 2, hidden_size=4).num_params
    assert full["num_params"] == make_learner("meta_rnn", (1, 28, 28), 2, hidden_size=4).num_params
    assert "| SumSign-Online:resize=7 | SumSign-Online |" in leaderboard_markdown([small, full]).replace(
        "| learner ", "")


@pytest.mark.parametrize("args, message", [
    (["benchmark", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["benchmark", "--episode-length", "-3"], "--episode-length must be at least 1"),
    (["benchmark", "--env", "VSML/MNIST-Onlne-v0"], "--env: unknown env id 'VSML/MNIST-Onlne-v0' (did you mean"),
    (["evaluate", "vsml@mnist", "--episodes", "0"], "--episodes must be at least 1"),
    (["evaluate", "vsml@mnist", "--env", "VSML/Nope-v0"], "--env: unknown env id 'VSML/Nope-v0'"),
])
def test_cli_counts_and_env_ids_are_checked_before_any_work(args, message, tmp_path, capsys):
    assert cli_main([*args, *(["--out", str(tmp_path / "board")] if args[0] == "benchmark" else [])]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == "" and not (tmp_path / "board").exists()  # no table, no progress bar, no folder


def test_learner_specs_parse_options_and_checkpoints(tmp_path):
    spec = LearnerSpec.parse("adam:num_layers=2,lr=0.003")
    assert spec.name == "adam" and spec.options == {"num_layers": 2, "lr": 0.003}
    with pytest.raises(ValueError, match="key=value"):
        LearnerSpec.parse("adam:num_layers")
    from agents.training import load_config, make_trainer

    config = load_config(None, [f"output_dir={tmp_path}", "name=ck", "learner.name=meta_rnn",
                                "learner.options={hidden_size: 4}", "training.population_size=4",
                                "training.iterations=1", "training.episode_length=5", "evaluation.every=0",
                                "training.tasks=[VSML/SumSign-Online-v0]"])
    trainer = make_trainer(config, progress=False)
    trainer.run()
    spec = LearnerSpec.parse(str(trainer.checkpoint_path))
    assert spec.name == "meta_rnn" and spec.options == {"hidden_size": 4} and "ck @ 1" in spec.label
    learner_params = spec.params(None)  # a checkpoint needs no learner to give its meta-parameters
    assert torch.equal(learner_params[0], trainer.center().detach())


class PooledEcho(DataEcho):
    """DataEcho declared as a batched learner, recording the (P, B) layout of what it sees."""

    pools_streams = True
    layouts: list = []

    def step(self, params, state, obs):
        self.layouts.append(tuple(obs["x"].shape[:2]))
        return super().step(params, state, obs)


def test_a_batched_learner_gets_one_member_per_run():
    """A learner whose streams form one learner (VSML with batch_average, the cloned backprop)
    must not pool the leaderboard's independent runs: each run becomes a member with one stream,
    and the per-run records line up with those of a stream-per-run learner on the same data."""
    register_learner("pooled_echo", PooledEcho, overwrite=True)
    register_learner("echo_plugin", DataEcho, overwrite=True)
    try:
        pooled, plain = run_benchmark([LearnerSpec.parse("pooled_echo"), LearnerSpec.parse("echo_plugin")],
                                      ["VSML/SumSign-Online-v0"], seeds=3, episode_length=20, progress=False)
    finally:
        _REGISTERED.pop("pooled_echo", None)
        _REGISTERED.pop("echo_plugin", None)
    assert set(PooledEcho.layouts) == {(3, 1)}
    assert pooled["runs"] == plain["runs"] == 3
    assert pooled["correct"] == plain["correct"] and pooled["metrics"] == plain["metrics"]
    from agents.cloning.learner import ClonedBackpropVSML
    from agents.vsml import VSML
    assert ClonedBackpropVSML((4,), 2).pools_streams and VSML((4,), 2, batch_average=True).pools_streams
    assert not VSML((4,), 2).pools_streams
