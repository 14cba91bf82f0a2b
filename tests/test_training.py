"""Meta-training: ES gradient, antithetic data sharing, real improvement, resume, Ray, checkpoints."""

import json
import math

import pytest
import torch
from evotorch import Problem

from agents import register_learner
from agents.registry import _REGISTERED, make_learner
from agents.training import (QUICK_CONFIG, CheckpointError, RunExistsError, evaluate_params, load_checkpoint, load_config,
                             make_trainer)
from agents.training.checkpoint import save_checkpoint
from agents.training.config import config_from_dict
from agents.training.population import PopulationEvaluator, stream_ids
from agents.training.searchers import make_searcher
from helpers import DataEcho
from vsml_gym import rng
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
    config = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", "evaluation.every=0"])
    trainer = make_trainer(config, progress=False)
    before = trainer.evaluate()["VSML/SumSign-Online-v0"]["loss"]
    trainer.run()
    after = trainer.evaluate()["VSML/SumSign-Online-v0"]
    print(f"Sum Sign meta-test loss: {before:.3f} -> {after['loss']:.3f} (accuracy {after['accuracy']:.3f})")
    assert after["loss"] < before - 0.3 and after["accuracy"] > 0.85


@pytest.mark.parametrize("method", ["es", "gradient"])
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, method):
    extra = (["training.method=gradient", "training.truncation=4", "training.lr_schedule=cosine",
              "training.min_learning_rate=0.0001"] if method == "gradient" else [])
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


def test_cosine_schedule_decays_the_learning_rate_to_its_floor(tmp_path):
    config = tiny(tmp_path, "cosine", "training.method=gradient", "training.iterations=5",
                  "training.learning_rate=0.01", "training.lr_schedule=cosine", "training.min_learning_rate=0.001")
    trainer = make_trainer(config, progress=False)
    trainer.run()
    rates = [json.loads(line)["lr"] for line in trainer.log_path.read_text().splitlines()]
    expected = [0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(5)]
    assert rates == pytest.approx(expected, rel=1e-6)


def test_best_checkpoint_keeps_the_best_evaluation(tmp_path, monkeypatch):
    config = tiny(tmp_path, "best", "evaluation.every=1", "training.iterations=4")
    trainer = make_trainer(config, progress=False)
    scores = iter([0.3, 0.5, 0.4, 0.5 + 1e-9])  # the last ties the second: the earlier one stays
    monkeypatch.setattr(trainer, "evaluate", lambda: {"VSML/SumSign-Online-v0": {
        "available": True, "loss": 1.0, "accuracy": next(scores), "episodes": 1, "episode_length": 1}})
    centers = {}
    original = trainer.train_step

    def step():
        stats = original()
        centers[trainer.iteration + 1] = trainer.center().clone()
        return stats

    trainer.train_step = step
    trainer.run()
    best = load_checkpoint(trainer.best_path)
    assert best["iteration"] == 2 and best["selection"]["mean_accuracy"] == 0.5
    assert torch.equal(best["params"], centers[2])
    assert load_checkpoint(trainer.checkpoint_path)["best_score"] == 0.5


@pytest.mark.parametrize("method", ["es", "gradient"])
def test_a_run_starts_from_the_meta_parameters_of_init_from(tmp_path, method):
    first = make_trainer(tiny(tmp_path, "stage1", "training.iterations=2"), progress=False)
    first.run()
    second = make_trainer(tiny(tmp_path, "stage2", f"training.method={method}",
                               f"learner.init_from={first.checkpoint_path}"), progress=False)
    assert torch.equal(second.center().detach(), first.center().detach())
    other = tiny(tmp_path, "other", f"learner.init_from={first.checkpoint_path}", "learner.options={hidden_size: 4}")
    with pytest.raises(CheckpointError, match=r"init_from.*another learner.*'hidden_size': 8\} there, \{'hidden_size': 4\} here; num_params"):
        make_trainer(other, progress=False)
    second.run()
    first.checkpoint_path.rename(tmp_path / "moved.pt")  # resuming needs only the run's own checkpoint
    resumed = make_trainer(tiny(tmp_path, "stage2", f"training.method={method}", "training.iterations=6",
                                f"learner.init_from={first.checkpoint_path}"), resume=True, progress=False)
    resumed.run()
    assert resumed.iteration == 6


def test_gradient_batches_of_a_pooling_learner_are_independent_episodes(tmp_path):
    """A batched LA pools its streams into one learner; a gradient batch of such a learner must
    still be population_size independent learning runs (one member each), not one run of batch B."""
    config = tiny(tmp_path, "pooled", "training.method=gradient", "training.population_size=3",
                  "learner.name=vsml", "learner.options={batch_average: true, state_size: 4, num_micro_ticks: 1}")
    trainer = make_trainer(config, progress=False)
    assert trainer.learner.pools_streams
    loss = float(trainer.batch_loss(0).detach())
    t = trainer.config.training
    learner_params = trainer.params.detach()
    singles = []
    for b in range(3):
        stream = rng.fold_int(config.seed, "episode", 0, b)
        with torch.no_grad():
            _, result = trainer.evaluator.rollout_group(learner_params, [stream], t.tasks[0], False, "cpu",
                                                        stream_seeds=[stream])
        singles.append(float(result.mean_loss()[0]))
    assert loss == pytest.approx(sum(singles) / 3, rel=1e-5)


@pytest.mark.parametrize("truncation", [0, 2])
def test_the_vsml_gradient_config_runs_with_and_without_truncation(tmp_path, data_root, truncation):
    """configs/vsml_mnist_gradient.yaml (layer norm, backprop through the episode) on a tiny scale:
    it used to crash in the sub-LSTM's in-place ops; truncated BPTT must work too."""
    config = load_config("configs/vsml_mnist_gradient.yaml", [
        f"output_dir={tmp_path}", f"data_root={data_root}", "training.device=cpu", "training.population_size=2",
        "training.episode_length=5", "training.iterations=2", f"training.truncation={truncation}",
        "evaluation.every=0", "training.tasks=[{env: VSML/MNIST-Online-v0, options: {resize: 7}}]"])
    trainer = make_trainer(config, progress=False)
    before = trainer.center().detach().clone()
    record = trainer.run()
    assert math.isfinite(record["loss"]) and record["grad_norm"] > 0
    assert not torch.equal(trainer.center().detach(), before)


def test_evaluation_of_a_pooling_learner_runs_independent_episodes(data_root):
    """evaluate_params gives a batched LA one member per episode: 3 episodes average 3 runs of
    one episode each (zero initial cells, so the state draws do not differ), not one run of batch 3."""
    options = {"batch_average": True, "state_size": 4, "num_micro_ticks": 1, "init_rand_proportion": 0.0}
    params = make_learner("vsml", (1, 7, 7), 2, **options).init_params(1, seed=0)[0]

    def evaluate(episodes, seed):
        return evaluate_params("vsml", options, params, ["VSML/SumSign-Online-v0"], episodes, 20, seed,
                               data_root=str(data_root), env_options={"resize": 7})["VSML/SumSign-Online-v0"]

    together = evaluate(3, 5)
    alone = [evaluate(1, 5 + i) for i in range(3)]
    assert together["loss"] == pytest.approx(sum(r["loss"] for r in alone) / 3, rel=1e-5)
    assert together["accuracy"] == pytest.approx(sum(r["accuracy"] for r in alone) / 3, rel=1e-5)


def test_vsml_meta_trains_by_gradient_on_mnist(tmp_path, data_root):
    """VSML itself learns to learn: from its initial meta-parameters (at chance) to a learner
    that learns 5-way 5x5 MNIST online, meta-tested on the test split (CPU recipe, scaled down)."""
    task = "{resize: 5, classes: [0, 1, 2, 3, 4]}"
    config = load_config("configs/vsml_mnist_cpu.yaml", [
        f"output_dir={tmp_path}", f"data_root={data_root}", "evaluation.every=0", "training.iterations=200",
        "training.population_size=8",
        "training.episode_length=30", "training.lr_schedule=constant", f"training.tasks=[{{env: VSML/MNIST-Online-v0, "
        f"options: {task}}}]", "evaluation.envs=[VSML/MNIST-Online-v0]", "evaluation.episodes=16",
        "evaluation.episode_length=30", f"evaluation.options={task}"])
    trainer = make_trainer(config, progress=False)
    before = trainer.evaluate()["VSML/MNIST-Online-v0"]
    trainer.run()
    after = trainer.evaluate()["VSML/MNIST-Online-v0"]
    print(f"VSML 5-way MNIST meta-test: loss {before['loss']:.3f} -> {after['loss']:.3f}, "
          f"accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}")
    assert before["loss"] > 1.59  # chance: ln 5 = 1.609
    assert after["loss"] < before["loss"] - 0.3 and after["accuracy"] > 0.45


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
    with pytest.raises(CheckpointError, match=r"other settings \(learner.options: \{'hidden_size': 8\} in the run, "
                                              r"\{'hidden_size': 4\} now\)"):
        other_learner.run()
    assert cli_main(["evaluate", str(garbage)]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_an_existing_run_is_never_overwritten_unasked(tmp_path, capsys):
    first = make_trainer(tiny(tmp_path, "run", "training.iterations=2"), progress=False)
    first.run()
    files = {path.name: path.read_bytes() for path in first.run_dir.iterdir()}
    with pytest.raises(RunExistsError, match=r"already holds a run \(checkpoint.pt, log.jsonl\): --resume .* --overwrite"):
        make_trainer(tiny(tmp_path, "run", "training.iterations=2", "seed=5"), progress=False)
    args = ["train", str(QUICK_CONFIG), "--quiet", "--set", f"output_dir={tmp_path}", "--set", "name=run",
            "--set", "learner.name=meta_rnn",
            "--set", "learner.options={hidden_size: 8}", "--set", "training.iterations=2"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already holds a run" in err and "Traceback" not in err
    assert {path.name: path.read_bytes() for path in first.run_dir.iterdir()} == files  # byte-identical
    with pytest.raises(ValueError, match="choose one"):
        make_trainer(tiny(tmp_path, "run"), resume=True, overwrite=True, progress=False)
    replaced = make_trainer(tiny(tmp_path, "run", "training.iterations=2", "seed=5"), overwrite=True, progress=False)
    replaced.run()
    assert not torch.equal(replaced.center(), first.center())
    assert load_checkpoint(replaced.checkpoint_path)["config"]["seed"] == 5


def test_resume_refuses_changed_settings_and_names_them(tmp_path):
    make_trainer(tiny(tmp_path, "run", "training.iterations=2"), progress=False).run()
    changed = make_trainer(tiny(tmp_path, "run", "training.iterations=3", "training.population_size=4", "seed=1"),
                           resume=True, progress=False)
    with pytest.raises(CheckpointError, match=r"other settings \(seed: 0 in the run, 1 now; training.population_size: "
                                              r"8 in the run, 4 now\)"):
        changed.run()
    longer = make_trainer(tiny(tmp_path, "run", "training.iterations=3", "checkpoint_every=3"), resume=True,
                          progress=False)
    longer.run()  # more iterations, saved at other steps: the same run, continued
    assert longer.iteration == 3


def test_the_whole_config_is_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"evaluation.envs\[1\]: unknown env id 'VSML/MNIST-Onlin-v0' "
                                         r"\(did you mean 'VSML/MNIST-Online-v0'\?\)"):
        tiny(tmp_path, "typo", "evaluation.envs=[VSML/SumSign-Online-v0, VSML/MNIST-Onlin-v0]")
    with pytest.raises(ValueError, match=r"training.tasks\[0\].env: unknown env id"):
        tiny(tmp_path, "typo", "training.tasks=[VSML/Nope-v0]")
    for override, message in (("checkpoint_every=0", "checkpoint_every must be a positive int"),
                              ("checkpoint_every=-1", "checkpoint_every must be a positive int"),
                              ("evaluation.every=-5", "evaluation.every must be an int >= 0"),
                              ("evaluation.episodes=0", "evaluation.episodes")):
        with pytest.raises(ValueError, match=message):
            tiny(tmp_path, "bad", override)
    on_gpu = tiny(tmp_path, "gpu", "training.device=cuda")  # reading a GPU config is fine anywhere
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="training.device is 'cuda', but torch sees no CUDA GPU"):
            make_trainer(on_gpu, progress=False)
    else:
        assert make_trainer(on_gpu, progress=False).config.training.device == "cuda"
    assert not any((tmp_path / name).exists() for name in ("typo", "bad", "gpu") if not torch.cuda.is_available())


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
    from pathlib import Path

    shipped = sorted(Path("configs").glob("*.yaml"))
    assert len(shipped) >= 15
    for path in shipped:
        load_config(path)  # every shipped config is valid


def test_train_and_evaluate_from_the_command_line(tmp_path, capsys):
    code = cli_main(["train", "--quiet", "--set", f"output_dir={tmp_path}",
                     "--set", "training.iterations=3", "--set", "evaluation.every=3",
                     "--set", "evaluation.episode_length=20"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[eval @ 3]" in out and '"iteration": 3' in out
    checkpoint = tmp_path / "quick_sumsign" / "checkpoint.pt"
    assert cli_main(["evaluate", str(checkpoint), "--episodes", "2", "--episode-length", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["iteration"] == 3 and report["results"]["VSML/SumSign-Online-v0"]["available"]


# ---------------------------------------------------------------- progress plots
def _write_log(path, iterations, every=0, key="fitness_mean"):
    """A synthetic log.jsonl like the trainer's: eval records (one available env, one not) every `every`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(1, iterations + 1):
        record = {"iteration": i, "seconds": 2.0, key: 1.0 / i}
        if every and i % every == 0:
            record["eval"] = {"VSML/SumSign-Online-v0": {"available": True, "loss": 0.5, "accuracy": 0.5 + i / 100,
                                                         "episodes": 2, "episode_length": 10},
                              "VSML/MNIST-Online-v0": {"available": False, "reason": "no data"}}
        records.append(json.dumps(record))
    path.write_text("".join(line + "\n" for line in records))
    return path


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_plot_draws_runs_with_and_without_evaluations(tmp_path):
    from agents.training.progress_plot import plot_progress, progress_figure, read_log

    es = _write_log(tmp_path / "es_run" / "log.jsonl", 10, every=5)
    grad = _write_log(tmp_path / "grad_run" / "log.jsonl", 6, key="loss")
    figure = progress_figure([("es_run", read_log(es)), ("grad_run", read_log(grad))])
    train_ax, by_iteration, by_hours = figure.axes
    assert len(train_ax.get_lines()) == 4  # raw and smoothed, per run
    assert len(by_iteration.get_lines()) == len(by_hours.get_lines()) == 1  # es_run's one available env
    line = by_hours.get_lines()[0]
    assert list(line.get_xdata()) == pytest.approx([10 / 3600, 20 / 3600])  # cumulative seconds, in hours
    assert list(line.get_ydata()) == pytest.approx([0.55, 0.6])
    assert by_iteration.get_legend().get_texts()[0].get_text() == "es_run: SumSign-Online"
    figure.clf()

    out = plot_progress([es, grad.parent], tmp_path / "plots" / "compare.png")
    assert out.exists() and _is_png(out)

    no_eval = progress_figure([("grad_run", read_log(grad))])
    for ax in no_eval.axes[1:]:
        assert not ax.get_lines() and [t.get_text() for t in ax.texts] == ["no evaluations yet"]
    no_eval.clf()

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty: no iterations logged yet"):
        plot_progress([tmp_path / "empty"], tmp_path / "empty.png")
    with pytest.raises(ValueError, match="one label per run"):
        plot_progress([es, grad], tmp_path / "x.png", labels=["only one"])


def test_plot_runs_command(tmp_path, capsys):
    es = _write_log(tmp_path / "es_run" / "log.jsonl", 4, every=2)
    out = tmp_path / "compare.png"
    assert cli_main(["plot-runs", str(es), str(tmp_path / "es_run"), "--out", str(out),
                     "--label", "a", "--label", "b"]) == 0
    assert _is_png(out) and str(out) in capsys.readouterr().out
    assert cli_main(["plot-runs", str(tmp_path / "missing"), "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vsml-gym plot-runs: error: no training log at") and err.count("\n") == 1
    assert not (tmp_path / "m.png").exists()


def test_training_writes_a_progress_plot_and_survives_plotting_errors(tmp_path, monkeypatch):
    fast_eval = ["training.iterations=2", "evaluation.every=2", "evaluation.envs=[VSML/SumSign-Online-v0]",
                 "evaluation.episodes=2", "evaluation.episode_length=10", "evaluation.options={resize: 7}"]
    trainer = make_trainer(tiny(tmp_path, "plotted", *fast_eval), progress=False, echo=lambda _: None)
    trainer.run()
    assert trainer.plot_path == tmp_path / "plotted" / "progress.png" and _is_png(trainer.plot_path)

    import agents.training.progress_plot as progress_plot

    def broken(*args, **kwargs):
        raise RuntimeError("no ink")

    monkeypatch.setattr(progress_plot, "plot_progress", broken)
    messages = []
    failing = make_trainer(tiny(tmp_path, "unplotted", *fast_eval, "evaluation.every=1"), progress=False,
                           echo=messages.append)
    assert failing.run()["iteration"] == 2  # two failed plots, and training went on
    assert [m for m in messages if "no ink" in m] == [f"could not draw {failing.plot_path} (RuntimeError: no ink); "
                                                      "training continues, further plotting errors are not reported"]
    assert not failing.plot_path.exists()


def test_a_process_joined_to_one_ray_refuses_to_train_on_another(tmp_path):
    """ray_address names a cluster, but this process already runs actors on another Ray: said,
    not silently trained on the wrong one."""
    import socket

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=1, log_to_driver=False)
    with socket.socket() as head:  # something answers at the address, as a head would
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        with pytest.raises(ValueError, match=rf"training\.ray_address is '{address}', but this process is already "
                                             r"joined to the Ray at .*: ray\.shutdown\(\) first"):
            make_trainer(tiny(tmp_path, "elsewhere", "training.num_actors=2", f"training.ray_address={address}"),
                         progress=False)
