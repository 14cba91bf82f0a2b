"""The EvoTorch Problem of meta-training: a population of meta-parameters in, losses out."""

from __future__ import annotations

import torch
from evotorch import Problem, SolutionBatch

from agents.training.config import ExperimentConfig
from agents.training.population import PopulationEvaluator


class MetaLearningProblem(Problem):
    """Minimise the learner's loss over its online episodes. The whole population (or, with Ray,
    each actor's share of it) is evaluated in one batched rollout per task of the mixture."""

    def __init__(self, config: ExperimentConfig, antithetic: bool) -> None:
        t = config.training
        self.evaluator = PopulationEvaluator(config)
        self.antithetic = antithetic
        super().__init__(
            "min",
            solution_length=self.evaluator.num_params,
            dtype=torch.float32,
            device=t.device if not t.num_actors else "cpu",
            num_actors=t.num_actors or None,
            num_gpus_per_actor=t.num_gpus_per_actor or None,
            initial_bounds=(-0.1, 0.1),
        )

    def _evaluate_batch(self, batch: SolutionBatch) -> None:
        device = self.aux_device if self.is_remote else self.evaluator.config.training.device
        values = batch.values.as_subclass(torch.Tensor)  # a read-only view in EvoTorch
        batch.set_evals(self.evaluator.fitness(values, self.antithetic, device))
