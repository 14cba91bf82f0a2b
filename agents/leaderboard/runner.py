"""The meta-test protocol: every (learner, env) pair runs all its seeds as one batched rollout."""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import vsml_gym
from agents.leaderboard.metrics import accuracy_curve, pack_correct, run_metrics
from agents.leaderboard.specs import parse_env, parse_key_values
from agents.registry import make_learner
from agents.rollout import members_for_runs, rollout
from agents.zoo import ZooShapeError
from vsml_gym.data import DatasetNotFoundError

DEFAULT_SUITE = (
    "VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0", "VSML/KMNIST-Online-v0", "VSML/EMNIST-Online-v0",
    "VSML/CIFAR10-Online-v0", "VSML/Random-Online-v0", "VSML/SumSign-Online-v0", "VSML/Omniglot-5Way1Shot-v0",
)
DEFAULT_LEARNERS = ("sgd", "sgd:num_layers=2", "adam", "adam:num_layers=2", "vsml", "meta_rnn", "hebbian",
                    "fw_memory", "vsml_cloned")
INTROSPECTION_STEPS = 100


@dataclass(frozen=True)
class LearnerSpec:
    """A learner to benchmark: a registry name with options (meta-parameters from `init_seed`,
    i.e. untrained, for meta-learned learners), a zoo entry ('vsml@mnist': its shipped
    meta-parameters) or a meta-training checkpoint."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    init_seed: int = 0
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> "LearnerSpec":
        """'adam', 'adam:num_layers=2,lr=0.003', or a checkpoint path ('runs/x/checkpoint.pt')."""
        if text.endswith(".pt"):
            from agents.training import load_checkpoint

            payload = load_checkpoint(text)
            learner = payload["learner"]
            label = f"{learner['name']} ({payload['config']['name']} @ {payload['iteration']})"
            return cls(learner["name"], dict(learner["options"]), checkpoint=text, label=label)
        name, _, raw = text.partition(":")
        options = parse_key_values(raw, text)
        return cls(name.strip(), options, label=text)

    def check(self) -> None:
        """The name and the options' names and types, before any work (sizes need an env)."""
        from agents.registry import check_options, get_learner_factory

        check_options(self.name, get_learner_factory(self.name), self.options)

    def params(self, learner) -> torch.Tensor:
        if self.checkpoint is None:
            return learner.init_params(1, seed=self.init_seed)
        from agents.training import load_checkpoint

        return load_checkpoint(self.checkpoint)["params"].view(1, -1)


def versions() -> dict[str, str]:
    return {"vsml_gym": vsml_gym.__version__, "torch": torch.__version__, "gymnasium": gym.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run_pair(spec: LearnerSpec, env_id: str, seeds: int, episode_length: int, seed: int, device: str,
             data_root: str | None, few_shot_episodes: int, split: str = "test") -> dict[str, Any]:
    """One leaderboard cell: `seeds` independent runs of `spec` on `env_id` (the test split; the
    train split for meta-validation, e.g. to choose checkpoints without looking at the test set).
    `env_id` may carry env options: 'VSML/MNIST-Online-v0:resize=14' (the invariance probes)."""
    record: dict[str, Any] = {"learner": spec.label or spec.name, "spec": asdict(spec), "env": env_id,
                              "split": split, "seed": seed, "device": device, "versions": versions()}
    env_id, env_options = parse_env(env_id)
    options: dict[str, Any] = {**env_options, "split": split, "data_root": data_root}
    try:
        probe = gym.make(env_id, **options)
    except DatasetNotFoundError as missing:
        return {**record, "available": False, "unavailable": "data missing", "reason": str(missing)}
    few_shot = probe.unwrapped.task.fixed_episode_length is not None
    runs = few_shot_episodes if few_shot else seeds
    if not few_shot:
        options["episode_length"] = episode_length
    env = gym.make_vec(env_id, num_envs=runs, device=device, nan_check="episode", **options)
    try:
        learner = make_learner(spec.name, env.single_observation_space["x"].shape, env.single_action_space.shape[0],
                               **spec.options)
    except ZooShapeError as mismatch:  # a zoo entry whose meta-parameters fix the input or output size
        env.close()
        return {**record, "available": False, "unavailable": "other input/output size", "reason": str(mismatch)}
    params = members_for_runs(learner, spec.params(learner), runs)
    start = time.perf_counter()
    with torch.no_grad():
        result = rollout(learner, params.to(device), env, seed=seed, state_seed=seed, keep_logits=True)
    seconds = time.perf_counter() - start
    env.close()
    runs_axis = (slice(None), slice(None), 0) if learner.pools_streams else (slice(None), 0)
    correct = result.correct[runs_axis].cpu().numpy()  # (T, S)
    loss = result.loss[runs_axis].cpu().numpy()
    scored = result.scored.cpu().numpy()
    shown = min(INTROSPECTION_STEPS, correct.shape[0])
    return {**record, "available": True, "num_params": learner.num_params, "runs": runs,
            "episode_length": int(correct.shape[0]), "few_shot": few_shot, "seconds": round(seconds, 3),
            "metrics": run_metrics(correct, loss, scored), "curve": accuracy_curve(correct),
            "correct": pack_correct(correct), "scored": scored.tolist(),
            "introspection": {"probs": torch.softmax(result.logits[:shown, 0, 0], -1).cpu().tolist(),
                              "labels": result.labels[:shown, 0, 0].cpu().tolist()}}


def run_benchmark(specs: Sequence[LearnerSpec], env_ids: Sequence[str], seeds: int = 32, episode_length: int = 2000,
                  seed: int = 0, device: str = "cpu", data_root: str | None = None, few_shot_episodes: int = 100,
                  progress: bool = True, on_record: Callable[[dict], None] | None = None, split: str = "test"
                  ) -> list[dict[str, Any]]:
    """Every learner on every env; records are also handed to `on_record` as they finish."""
    records = []
    pairs = [(spec, env_id) for spec in specs for env_id in env_ids]
    for spec, env_id in tqdm(pairs, desc="benchmark", disable=not progress, dynamic_ncols=True):
        record = run_pair(spec, env_id, seeds, episode_length, seed, device, data_root, few_shot_episodes, split)
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records
