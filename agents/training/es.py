"""Meta-training by evolution strategies: EvoTorch searchers over the population evaluator."""

from __future__ import annotations

from typing import Any

import torch
from evotorch import SolutionBatch
from ray.exceptions import NodeDiedError, RayActorError

from agents.training.config import ExperimentConfig
from agents.training.problem import MetaLearningProblem
from agents.training.searchers import is_antithetic, make_searcher
from agents.training.trainer import Trainer

# Searcher attributes that are wiring, not state: the problem, hooks, the lazily computed status
# and the current population (resampled at every step).
_NOT_STATE = {"_problem", "_before_step_hook", "_after_step_hook", "_log_hook", "_end_of_run_hook",
              "_LazyReporter__getters", "_LazyReporter__computed", "_step", "_population", "_first_step_datetime"}


class ESTrainer(Trainer):
    kind = "es"

    def __init__(self, config: ExperimentConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        t = config.training
        self.problem = MetaLearningProblem(config, is_antithetic(t.searcher, t.searcher_options))
        evaluator = self.problem.evaluator
        learner = evaluator.learner_for(evaluator.task_shape(t.tasks[0]))
        center = self.initial_params(learner)[0]  # EvoTorch updates it in place
        self.searcher = make_searcher(t.searcher, self.problem, t.population_size, center, t.searcher_options)
        self._identity = {"name": config.learner.name, "options": config.learner.options,
                          "num_params": learner.num_params, "meta_learned": learner.meta_learned}

    @property
    def learner_identity(self) -> dict[str, Any]:
        return self._identity

    def train_step(self) -> dict[str, float]:
        try:
            self.searcher.step()
        except (RayActorError, NodeDiedError) as error:  # an actor's process or node is gone
            raise self.stopped(f"a Ray actor was lost ({type(error).__name__})") from error
        evals = self.searcher.population.evals[:, 0]
        return {"fitness_mean": float(evals.mean()), "fitness_best": float(evals.min())}

    def center(self) -> torch.Tensor:
        status = self.searcher.status
        center = status["center"] if "center" in status else self.searcher.m
        return center.as_subclass(torch.Tensor)  # EvoTorch hands out read-only tensors

    def state_dict(self) -> dict[str, Any]:
        state = {key: value for key, value in vars(self.searcher).items() if key not in _NOT_STATE}
        population = vars(self.searcher).get("_population")
        if population is not None:  # PGPE updates from the last evaluated population at its next step
            state["population"] = (population.values.as_subclass(torch.Tensor).clone(),
                                   population.evals.as_subclass(torch.Tensor).clone())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        population = state.pop("population", None)
        vars(self.searcher).update(state)
        vars(self.searcher)["_LazyReporter__computed"] = {}
        if population is not None:
            values, evals = population
            batch = SolutionBatch(self.problem, popsize=values.shape[0], device=values.device, empty=True)
            batch.access_values()[:] = values
            batch.access_evals()[:] = evals
            vars(self.searcher)["_population"] = batch
