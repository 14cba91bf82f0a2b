"""Meta-training by gradient descent: backpropagation through whole (or truncated) episodes."""

from __future__ import annotations

from typing import Any

import torch

from agents.training.config import ExperimentConfig
from agents.training.population import PopulationEvaluator, fitness_from
from agents.training.trainer import Trainer
from vsml_gym import rng


class GradientTrainer(Trainer):
    """Adam (lr 1e-3) on the mean episode loss of a batch of `population_size` episodes of one
    member, gradient norm clipped (25), with layer norm on messages advisable for VSML."""

    kind = "gradient"

    def __init__(self, config: ExperimentConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        t = config.training
        self.evaluator = PopulationEvaluator(config)
        learner = self.evaluator.learner_for(self.evaluator.task_shape(t.tasks[0]))
        if not learner.meta_learned or learner.num_params == 0:
            raise ValueError(f"learner {config.learner.name!r} has no meta-parameters to train")
        self.params = torch.nn.Parameter(learner.init_params(1, seed=config.seed).to(t.device))
        self.optimizer = torch.optim.Adam([self.params], lr=t.learning_rate)
        self._identity = {"name": config.learner.name, "options": config.learner.options,
                          "num_params": learner.num_params, "meta_learned": True}

    @property
    def learner_identity(self) -> dict[str, Any]:
        return self._identity

    def train_step(self) -> dict[str, float]:
        t = self.config.training
        ids = [rng.fold_int(self.config.seed, "episode", self.iteration, b) for b in range(t.population_size)]
        groups: dict[tuple[int, bool], list[int]] = {}
        for stream, key in zip(ids, self.evaluator.assign(ids)):
            groups.setdefault(key, []).append(stream)
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.params.device)
        for (task_index, projection), streams in groups.items():
            _, result = self.evaluator.rollout_group(self.params, streams[:1], t.tasks[task_index], projection,
                                                     self.params.device, stream_seeds=streams,
                                                     detach_every=t.truncation)
            total = total + fitness_from(result, t.fitness, t.fitness_weights)[0] * len(streams)
        loss = total / t.population_size
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, t.grad_clip)
        self.optimizer.step()
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm)}

    def center(self) -> torch.Tensor:
        return self.params[0]

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.params.detach().cpu().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.params.copy_(state["params"].to(self.params.device))
        self.optimizer.load_state_dict(state["optimizer"])
