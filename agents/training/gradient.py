"""Meta-training by gradient descent: backpropagation through whole (or truncated) episodes."""

from __future__ import annotations

import math
from typing import Any

import torch

from agents.training.config import ExperimentConfig
from agents.training.population import PopulationEvaluator, fitness_from
from agents.rollout import members_for_runs
from agents.training.trainer import Trainer
from vsml_gym import rng


class GradientTrainer(Trainer):
    """Adam (`learning_rate`, constant or cosine-scheduled) on the mean episode loss of a batch of
    `population_size` episodes, gradient norm clipped (`grad_clip`). The episodes are streams of
    one member, or one member each for a learner that pools its streams (a batched LA)."""

    kind = "gradient"

    def __init__(self, config: ExperimentConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        t = config.training
        self.evaluator = PopulationEvaluator(config)
        learner = self.evaluator.learner_for(self.evaluator.task_shape(t.tasks[0]))
        if not learner.meta_learned or learner.num_params == 0:
            raise ValueError(f"learner {config.learner.name!r} has no meta-parameters to train")
        self.params = torch.nn.Parameter(self.initial_params(learner).to(t.device))
        self.learner = learner
        self.optimizer = torch.optim.Adam([self.params], lr=t.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda i: self._lr_factor(i))
        self._identity = {"name": config.learner.name, "options": config.learner.options,
                          "num_params": learner.num_params, "meta_learned": True}

    def _lr_factor(self, iteration: int) -> float:
        """The learning rate's factor at `iteration`: 1, or a cosine from 1 down to
        min_learning_rate / learning_rate at the last iteration (big steps leave the plateau,
        small ones settle)."""
        t = self.config.training
        if t.lr_schedule == "constant":
            return 1.0
        floor = t.min_learning_rate / t.learning_rate
        progress = min(iteration / max(t.iterations - 1, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    @property
    def learner_identity(self) -> dict[str, Any]:
        return self._identity

    def batch_loss(self, iteration: int) -> torch.Tensor:
        """The mean episode loss of iteration `iteration`'s batch, with its autograd graph."""
        t = self.config.training
        ids = [rng.fold_int(self.config.seed, "episode", iteration, b) for b in range(t.population_size)]
        groups: dict[tuple[int, bool], list[int]] = {}
        for stream, key in zip(ids, self.evaluator.assign(ids)):
            groups.setdefault(key, []).append(stream)
        total = torch.zeros((), device=self.params.device)
        for (task_index, projection), streams in groups.items():
            # the episodes stay independent learning runs, also for a learner that pools streams
            params = members_for_runs(self.learner, self.params, len(streams))
            members = streams[: params.shape[0]]  # state seeds: one per member
            _, result = self.evaluator.rollout_group(params, members, t.tasks[task_index], projection,
                                                     self.params.device, stream_seeds=streams,
                                                     detach_every=t.truncation)
            total = total + fitness_from(result, t.fitness, t.fitness_weights).mean() * len(streams)
        return total / t.population_size

    def update(self, loss: torch.Tensor) -> dict[str, float]:
        """Backpropagate `loss`, clip the gradient's norm and take one (scheduled) Adam step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.training.grad_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "lr": lr}

    def train_step(self) -> dict[str, float]:
        return self.update(self.batch_loss(self.iteration))

    def center(self) -> torch.Tensor:
        return self.params[0]

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params.detach().cpu().clone(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.params.copy_(state["params"].to(self.params.device))
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:  # checkpoints from before the schedules: a constant rate
            self.scheduler.load_state_dict(state["scheduler"])
