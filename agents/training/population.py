"""Fitness of a whole population of meta-parameters, computed in batched rollouts.

Every member learns one episode per stream on a task drawn from the meta-training mixture.
Data streams and learners' initial states are seeded from a *stream id* that depends only on
the solution itself: for antithetic pairs (theta + e, theta - e) it is a hash of |2e|, the same
for both partners. So partners always see identical data, and fitness does not depend on where
a solution sits in the population, how the population is split over Ray actors, or on resuming.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import torch

import vsml_gym  # noqa: F401  (registers the environments)
from agents.learner import Learner
from agents.registry import make_learner
from agents.rollout import RolloutResult, rollout
from agents.training.config import ExperimentConfig, TaskConfig
from vsml_gym import rng
from vsml_gym.plugins import import_plugins


def stream_ids(values: torch.Tensor, antithetic: bool) -> list[int]:
    """One 32-bit id per solution: a hash of its values, or of |x_2k - x_2k+1| for pairs."""
    if antithetic:
        if values.shape[0] % 2:
            raise ValueError("antithetic populations must have an even size")
        keys = (values[0::2] - values[1::2]).abs().repeat_interleave(2, dim=0)
    else:
        keys = values
    words = keys.detach().float().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    folded = torch.zeros(words.shape[0], dtype=torch.int64, device=words.device)
    for column in range(min(words.shape[1], 32)):  # the first coordinates already make ids unique
        folded = rng.mix32(folded ^ rng.mix32(words[:, column] + column))
    return [int(v) for v in folded.tolist()]


def _uniform(stream_id: int, purpose: str) -> float:
    return rng.fold_int(stream_id, purpose) / 2**32


def fitness_from(result: RolloutResult, kind: str, weights: Any = "linear") -> torch.Tensor:
    """(P,) loss to minimise: mean over the episode (rewards learning early), the last scored
    step only, or a per-step weighting ("linear": weight t + 1, or an explicit list)."""
    loss = result.loss[result.scored].mean(dim=2)  # (T_scored, P)
    if kind == "mean":
        return loss.mean(dim=0)
    if kind == "last":
        return loss[-1]
    steps = loss.shape[0]
    if weights == "linear":
        w = torch.arange(1, steps + 1, dtype=loss.dtype, device=loss.device)
    else:
        w = torch.as_tensor(weights, dtype=loss.dtype, device=loss.device)
        if w.shape != (steps,):
            raise ValueError(f"fitness_weights needs one weight per scored step ({steps}), got {tuple(w.shape)}")
    return (w[:, None] * loss).sum(dim=0) / w.sum()


class PopulationEvaluator:
    """Builds the envs and learners of an experiment and turns meta-parameters into fitness."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self._learners: dict[tuple, Learner] = {}
        shapes = {self.task_shape(task) for task in config.training.tasks}
        sizes = {self.learner_for(shape).num_params for shape in shapes}
        if len(sizes) != 1:
            raise ValueError(f"the learner {config.learner.name!r} has a different number of meta-parameters on the "
                             f"tasks of the mixture ({sorted(sizes)}): pad inputs/outputs to one size")
        self.num_params = sizes.pop()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """On a Ray actor: import the config's plug-ins before any learner or env is built by name."""
        import_plugins(state["config"].imports)
        self.__dict__.update(state)

    def env_options(self, task: TaskConfig, projection: bool = False) -> dict[str, Any]:
        t = self.config.training
        options = {"split": "train", "episode_length": t.episode_length, "data_root": self.config.data_root,
                   **task.options}
        if projection:
            options["projection"] = "episode"
        return options

    def task_shape(self, task: TaskConfig) -> tuple[tuple[int, ...], int]:
        env = gym.make(task.env, **self.env_options(task))
        return tuple(env.observation_space["x"].shape), int(env.action_space.shape[0])

    def learner_for(self, shape: tuple[tuple[int, ...], int]) -> Learner:
        if shape not in self._learners:
            self._learners[shape] = make_learner(self.config.learner.name, shape[0], shape[1],
                                                 **self.config.learner.options)
        return self._learners[shape]

    def assign(self, ids: Sequence[int]) -> list[tuple[int, bool]]:
        """(task index, with projection) of every stream id: weighted by the mixture."""
        tasks = self.config.training.tasks
        total = sum(task.weight for task in tasks)
        assignment = []
        for stream in ids:
            u, cumulative, index = _uniform(stream, "task") * total, 0.0, len(tasks) - 1
            for i, task in enumerate(tasks):
                cumulative += task.weight
                if u < cumulative:
                    index = i
                    break
            assignment.append((index, _uniform(stream, "projection") < self.config.training.projection_fraction))
        return assignment

    def rollout_group(self, params: torch.Tensor, member_ids: Sequence[int], task: TaskConfig, projection: bool,
                      device: torch.device, stream_seeds: Sequence[int] | None = None, detach_every: int = 0
                      ) -> tuple[Learner, RolloutResult]:
        """Episodes of members `params` (P, D) on one task. By default each member runs
        `streams_per_member` streams seeded from its id; `stream_seeds` gives the seed of every
        sub-env instead (layout b * P + p, see `agents.rollout`)."""
        population = params.shape[0]
        if stream_seeds is None:
            streams = self.config.training.streams_per_member
            stream_seeds = [rng.fold_int(member_ids[p], "stream", b) for b in range(streams) for p in range(population)]
        env = gym.make_vec(task.env, num_envs=len(stream_seeds), device=device, nan_check="episode",
                           **self.env_options(task, projection))
        learner = self.learner_for((tuple(env.single_observation_space["x"].shape), env.single_action_space.shape[0]))
        result = rollout(learner, params.to(device), env, seed=list(stream_seeds), state_seed=list(member_ids),
                         detach_every=detach_every)
        env.close()
        return learner, result

    def fitness(self, values: torch.Tensor, antithetic: bool, device: torch.device | str) -> torch.Tensor:
        """(n,) fitness (loss, lower is better) of the n solutions in `values` (n, D)."""
        device = torch.device(device)
        ids = stream_ids(values, antithetic)
        groups: dict[tuple[int, bool], list[int]] = {}
        for member, key in enumerate(self.assign(ids)):
            groups.setdefault(key, []).append(member)
        fitness = torch.empty(values.shape[0], device=values.device)
        t = self.config.training
        for (task_index, projection), members in groups.items():
            index = torch.tensor(members, device=values.device)
            with torch.no_grad():
                _, result = self.rollout_group(values[index], [ids[m] for m in members], t.tasks[task_index],
                                               projection, device)
                fitness[index] = fitness_from(result, t.fitness, t.fitness_weights).to(values.device)
        return fitness
