"""The meta-training loop shared by the ES and the gradient trainer: progress, periodic meta-test
evaluation, JSONL logs, atomic checkpoints and exact resumption."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from tqdm import tqdm

from agents.training.checkpoint import (check_compatible, load_checkpoint, restore_rng_state, rng_state,
                                        save_checkpoint)
from agents.training.config import ExperimentConfig
from agents.training.evaluation import evaluate_params


class Trainer(ABC):
    kind: str = ""

    def __init__(self, config: ExperimentConfig, resume: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print) -> None:
        self.config = config
        self.progress = progress
        self.echo = echo
        self.iteration = 0
        self.run_dir = config.run_dir
        self.checkpoint_path = self.run_dir / "checkpoint.pt"
        self.log_path = self.run_dir / "log.jsonl"
        self._resume = resume
        torch.manual_seed(config.seed)

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
            with self.log_path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items() if isinstance(v, float)})
            if self.iteration % self.config.checkpoint_every == 0 or self.iteration == total:
                self.save()
        bar.close()
        return record

    def evaluate(self) -> dict[str, dict[str, Any]]:
        e = self.config.evaluation
        return evaluate_params(self.config.learner.name, self.config.learner.options, self.center().detach(),
                               e.envs, e.episodes, e.episode_length, e.seed, self.config.training.device,
                               self.config.data_root, e.options)

    def save(self) -> Path:
        return save_checkpoint(self.checkpoint_path, {
            "kind": self.kind, "iteration": self.iteration, "config": self.config.to_dict(),
            "learner": self.learner_identity, "params": self.center().detach().cpu().clone(),
            "state": self.state_dict(), "rng": rng_state(),
        })

    def _restore(self) -> None:
        payload = load_checkpoint(self.checkpoint_path, kind=self.kind)
        check_compatible(payload, self.learner_identity, self.checkpoint_path)
        self.load_state_dict(payload["state"])
        restore_rng_state(payload["rng"])
        self.iteration = payload["iteration"]
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        kept = [line for line in lines if json.loads(line)["iteration"] <= self.iteration]
        self.log_path.write_text("".join(line + "\n" for line in kept))  # drop work done after the checkpoint
        self.echo(f"resumed {self.checkpoint_path} at iteration {self.iteration}")


def _describe_eval(iteration: int, results: dict[str, dict[str, Any]]) -> str:
    parts = [f"{env_id.split('/')[-1]}: " + (f"loss {r['loss']:.3f} acc {r['accuracy']:.3f}" if r["available"]
                                              else "unavailable") for env_id, r in results.items()]
    return f"[eval @ {iteration}] " + "; ".join(parts)
