"""The meta-training loop shared by the ES and the gradient trainer: progress, periodic meta-test
evaluation, JSONL logs, a progress plot, atomic checkpoints and exact resumption."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from tqdm import tqdm

from agents.learner import Learner
from agents.zoo import is_zoo_name, load_entry
from agents.training.checkpoint import (CheckpointError, check_compatible, load_checkpoint, restore_rng_state,
                                        rng_state, save_checkpoint)
from agents.training.config import ExperimentConfig, config_differences, current_keys
from agents.training.evaluation import evaluate_params
from vsml_gym.checks import check_device


class RunExistsError(ValueError):
    """The run folder already holds a run, and neither resuming nor overwriting was asked for."""


class TrainingStopped(RuntimeError):
    """Meta-training stopped before its last iteration for a reason outside the config (a lost Ray
    actor or node); the checkpoint still holds the last saved iteration, and --resume continues it."""


class Trainer(ABC):
    kind: str = ""

    def __init__(self, config: ExperimentConfig, resume: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print, overwrite: bool = False) -> None:
        """`resume` continues the run's checkpoint; a run folder that already holds a run is
        otherwise refused (nothing is lost unasked) unless `overwrite` says to replace it."""
        if resume and overwrite:
            raise ValueError("resume continues a run and overwrite replaces it: choose one")
        check_device(config.training.device, "training.device")
        self.config = config
        self.progress = progress
        self.echo = echo
        self.iteration = 0
        self.saved_iteration: int | None = None  # what checkpoint.pt holds
        self.run_dir = config.run_dir
        self.checkpoint_path = self.run_dir / "checkpoint.pt"
        self.log_path = self.run_dir / "log.jsonl"
        self.best_path = self.run_dir / "best.pt"  # the best evaluation so far (see _keep_if_best)
        self.best_score: float | None = None
        self.plot_path = self.run_dir / "progress.png"
        self._resume = resume
        self._plotted_at: int | None = None  # the iteration progress.png shows
        self._plot_failed = False
        existing = [p.name for p in (self.checkpoint_path, self.log_path) if p.exists() and p.stat().st_size]
        if existing and not resume and not overwrite:
            raise RunExistsError(f"{self.run_dir} already holds a run ({', '.join(existing)}): --resume continues "
                                 "it, --overwrite replaces it, or give this one another name (--set name=...)")
        torch.manual_seed(config.seed)

    def initial_params(self, learner: Learner) -> torch.Tensor:
        """The meta-parameters training starts from, (1, D): fresh ones from the seed, or those of
        `learner.init_from` (a zoo entry or a checkpoint: a curriculum stage, small inputs first,
        then larger; gradient descent, then ES), which must be of the same learner and options."""
        source = self.config.learner.init_from
        if not source or (self._resume and self.checkpoint_path.exists()):  # resuming restores them anyway
            return learner.init_params(1, seed=self.config.seed)
        if is_zoo_name(source):
            entry = load_entry(source)
            recorded = {"name": entry.learner, "options": entry.options, "num_params": entry.params.numel()}
            params = entry.params
        else:
            payload = load_checkpoint(source)
            recorded, params = payload["learner"], payload["params"]
        here = {"name": self.config.learner.name, "options": self.config.learner.options, "num_params": learner.num_params}
        differences = [f"{key} {recorded[key]!r} there, {here[key]!r} here" for key in here if recorded[key] != here[key]]
        if differences:
            raise CheckpointError(f"learner.init_from: {source} holds another learner than this run trains "
                                  f"({'; '.join(differences)})")
        return params.view(1, -1).clone()

    # -- what a trainer implements ----------------------------------------------------------------
    @abstractmethod
    def train_step(self) -> dict[str, float]:
        """One meta-training iteration; returns numbers for the log."""

    @abstractmethod
    def center(self) -> torch.Tensor:
        """The current meta-parameters, (D,)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Optimiser / searcher state needed to resume exactly."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @property
    @abstractmethod
    def learner_identity(self) -> dict[str, Any]: ...

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until `training.iterations`; returns the last log record."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._resume and self.checkpoint_path.exists():
            self._restore()
        else:
            self.log_path.write_text("")
            self.best_path.unlink(missing_ok=True)  # a fresh run's best.pt is its own
            self.checkpoint_path.unlink(missing_ok=True)  # overwriting: a kill now must not resume the old run
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        total = self.config.training.iterations
        record: dict[str, Any] = {}
        bar = tqdm(total=total, initial=self.iteration, desc=self.config.name, disable=not self.progress,
                   dynamic_ncols=True)
        while self.iteration < total:
            start = time.perf_counter()
            stats = self.train_step()
            self.iteration += 1
            record = {"iteration": self.iteration, "seconds": round(time.perf_counter() - start, 4), **stats}
            every = self.config.evaluation.every
            if every and (self.iteration % every == 0 or self.iteration == total):
                record["eval"] = self.evaluate()
                self.echo(_describe_eval(self.iteration, record["eval"]))
                self._keep_if_best(record["eval"])
            with self.log_path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items() if isinstance(v, float)})
            if self.iteration % self.config.checkpoint_every == 0 or self.iteration == total:
                self.save()
            if "eval" in record:
                self.write_progress_plot()  # after the checkpoint: a kill while drawing loses nothing
        bar.close()
        if self.iteration and self._plotted_at != self.iteration:
            self.write_progress_plot()
        return record

    def write_progress_plot(self) -> None:
        """(Re)draw run_dir/progress.png from the log. A plot is a convenience: if drawing fails,
        say so once and let training go on."""
        try:
            from agents.training.progress_plot import plot_progress

            plot_progress([self.log_path], self.plot_path)
            self._plotted_at = self.iteration
        except Exception as error:  # noqa: BLE001  (any failure: missing matplotlib, disk full, a bug)
            if not self._plot_failed:
                self._plot_failed = True
                self.echo(f"could not draw {self.plot_path} ({type(error).__name__}: {error}); "
                          "training continues, further plotting errors are not reported")

    def _keep_if_best(self, results: dict[str, dict[str, Any]]) -> None:
        """Copy the meta-parameters to best.pt when the mean accuracy over the evaluation envs
        beats every earlier evaluation: checkpoints are chosen on these (meta-validation) envs.
        Scores are rounded to 6 digits, so that equal accuracies are a tie, which the earlier
        evaluation keeps (float32 rounding of equal counts must not decide)."""
        available = sorted(env for env, r in results.items() if r["available"])
        if not available:
            return
        score = round(sum(results[env]["accuracy"] for env in available) / len(available), 6)
        if self.best_score is None or score > self.best_score:
            self.best_score = score
            save_checkpoint(self.best_path, {**self._payload(), "selection": {"mean_accuracy": score,
                                                                              "envs": available}})

    def evaluate(self) -> dict[str, dict[str, Any]]:
        e = self.config.evaluation
        return evaluate_params(self.config.learner.name, self.config.learner.options, self.center().detach(),
                               e.envs, e.episodes, e.episode_length, e.seed, self.config.training.device,
                               self.config.data_root, e.options)

    def _payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "iteration": self.iteration, "config": self.config.to_dict(),
                "learner": self.learner_identity, "params": self.center().detach().cpu().clone(),
                "state": self.state_dict(), "rng": rng_state(), "best_score": self.best_score}

    def save(self) -> Path:
        path = save_checkpoint(self.checkpoint_path, self._payload())
        self.saved_iteration = self.iteration
        return path

    def stopped(self, why: str) -> TrainingStopped:
        """The error that ends a run which cannot go on, saying where it can go on from."""
        saved = (f"{self.checkpoint_path} holds iteration {self.saved_iteration}: run the same command with "
                 "--resume to continue from there" if self.saved_iteration is not None else
                 "no checkpoint was written yet: run the same command with --overwrite to start again")
        return TrainingStopped(f"{why} during iteration {self.iteration + 1}; {saved}")

    def _restore(self) -> None:
        payload = load_checkpoint(self.checkpoint_path, kind=self.kind)
        differences = config_differences(current_keys(payload["config"]), self.config.to_dict())
        if differences:
            raise CheckpointError(f"--resume: {self.checkpoint_path} was made with other settings ("
                                  + "; ".join(differences) + "): restore them, or --overwrite to start again")
        check_compatible(payload, self.learner_identity, self.checkpoint_path)
        self.load_state_dict(payload["state"])
        restore_rng_state(payload["rng"])
        self.iteration = self.saved_iteration = payload["iteration"]
        self.best_score = payload.get("best_score")
        if self.best_path.exists() and load_checkpoint(self.best_path)["iteration"] > self.iteration:
            self.best_path.unlink()  # chosen on the path after the checkpoint, which is now retrained
            self.best_score = None
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        kept = [line for line in lines if json.loads(line)["iteration"] <= self.iteration]
        self.log_path.write_text("".join(line + "\n" for line in kept))  # drop work done after the checkpoint
        self.echo(f"resumed {self.checkpoint_path} at iteration {self.iteration}")


def _describe_eval(iteration: int, results: dict[str, dict[str, Any]]) -> str:
    parts = [f"{env_id.split('/')[-1]}: " + (f"loss {r['loss']:.3f} acc {r['accuracy']:.3f}" if r["available"]
                                              else "unavailable") for env_id, r in results.items()]
    return f"[eval @ {iteration}] " + "; ".join(parts)
