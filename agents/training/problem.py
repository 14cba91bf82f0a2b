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
        if t.num_actors:
            connect_ray(t.ray_address)
        super().__init__(
            "min",
            solution_length=self.evaluator.num_params,
            dtype=torch.float32,
            device=t.device if not t.num_actors else "cpu",
            num_actors=t.num_actors or None,
            num_gpus_per_actor=t.num_gpus_per_actor or None,
            actor_config={"num_cpus": t.num_cpus_per_actor},
            initial_bounds=(-0.1, 0.1),
        )

    def _parallelize(self) -> None:
        """Start the Ray actors without touching this process's random stream. EvoTorch draws the
        actors' seeds from it (unused here: evaluation is seeded by stream ids), which would shift
        every later population by one draw, and a resumed run (new actors) by one more."""
        state = torch.random.get_rng_state()
        try:
            super()._parallelize()
        finally:
            torch.random.set_rng_state(state)

    def _evaluate_batch(self, batch: SolutionBatch) -> None:
        device = self.aux_device if self.is_remote else self.evaluator.config.training.device
        values = batch.values.as_subclass(torch.Tensor)  # a read-only view in EvoTorch
        batch.set_evals(self.evaluator.fitness(values, self.antithetic, device))


def connect_ray(address: str | None) -> None:
    """Join the Ray cluster at `address` (None: $RAY_ADDRESS, else start a Ray of this process,
    as EvoTorch would); the actors then go wherever the cluster has room. A head that does not
    answer is said at once (Ray itself would retry for minutes), and so is a process already
    joined to another Ray (whose actors would silently run the work instead)."""
    import socket

    import ray

    explicit = bool(address) and address != "auto"
    if explicit:
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise ConnectionError(f"training.ray_address: no Ray head answers at {address!r} ({error.strerror or error}); "
                                  "start one with `ray start --head` (README: On a Ray cluster)") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    elif explicit and ray.get_runtime_context().gcs_address.rpartition(":")[2] != port:
        raise ValueError(f"training.ray_address is {address!r}, but this process is already joined to the Ray at "
                         f"{ray.get_runtime_context().gcs_address}: ray.shutdown() first, or train in a fresh process")
