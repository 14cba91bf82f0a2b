"""Run any learner over one episode of a native vector env, for a whole population at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from agents.learner import Learner, Observation, State


@dataclass
class RolloutResult:
    """Per-step records of one episode: loss and correct are (T, P, B), scored is (T,)."""

    loss: torch.Tensor
    correct: torch.Tensor
    scored: torch.Tensor
    labels: torch.Tensor | None = None  # (T, P, B) true classes, with keep_logits
    logits: torch.Tensor | None = None  # (T, P, B, C), with keep_logits

    def mean_loss(self) -> torch.Tensor:
        """(P,) mean cross-entropy over scored steps and streams: the ES fitness (lower is better)."""
        return self.loss[self.scored].mean(dim=(0, 2))

    def accuracy(self) -> torch.Tensor:
        """(P,) accuracy over scored steps and streams."""
        return self.correct[self.scored].float().mean(dim=(0, 2))

    def accuracy_curve(self) -> torch.Tensor:
        """(T, P) accuracy at every step, averaged over streams."""
        return self.correct.float().mean(dim=2)


def members_view(tensor: torch.Tensor, population: int) -> torch.Tensor:
    """Env batch (B * P, ...) -> learner batch (P, B, ...). Sub-env b * P + p belongs to member p,
    so consecutive sub-envs are consecutive members: `envs_per_stream=2` gives antithetic member
    pairs one shared data stream."""
    return tensor.view(-1, population, *tensor.shape[1:]).transpose(0, 1)


def env_view(tensor: torch.Tensor) -> torch.Tensor:
    """Learner batch (P, B, ...) -> env batch (B * P, ...)."""
    return tensor.transpose(0, 1).reshape(-1, *tensor.shape[2:])


def members_for_runs(learner: Learner, params: torch.Tensor, runs: int) -> torch.Tensor:
    """The members that run `runs` independent learning runs of one member's `params` (1, D):
    that member (its runs are its streams), or, for a learner that pools its streams into one
    learner (a batched LA), `runs` copies of it, each with one stream."""
    return params.expand(runs, -1).contiguous() if learner.pools_streams else params


def initial_states(learner: Learner, params: torch.Tensor, batch: int, state_seed: int | Sequence[int]) -> State:
    """Episode-start states. One int seeds one generator for the whole population; a sequence
    gives every member its own seed, so that its draws do not depend on its position in the
    population (members with equal seeds, e.g. antithetic partners, start from equal draws)."""
    if isinstance(state_seed, int):
        return learner.initial_state(params, batch, torch.Generator(device=params.device).manual_seed(state_seed))
    if len(state_seed) != params.shape[0]:
        raise ValueError(f"expected {params.shape[0]} state seeds (one per member), got {len(state_seed)}")
    members = [learner.initial_state(params[p : p + 1], batch, torch.Generator(device=params.device).manual_seed(s))
               for p, s in enumerate(state_seed)]  # once per episode, not per step
    return {key: (torch.cat([m[key] for m in members]) if isinstance(value, torch.Tensor) else value)
            for key, value in members[0].items()}


def rollout(learner: Learner, params: torch.Tensor, env, seed: int | Sequence[int] | None = None,
            state_seed: int | Sequence[int] = 0, detach_every: int = 0, keep_logits: bool = False) -> RolloutResult:
    """One episode of `env` (an `OnlineVectorEnv` with P * B sub-envs) for the P members of
    `params`. `seed` seeds the data streams (None: continue them; a list: one seed per sub-env
    stream), `state_seed` the learners' random initial states (see `initial_states`). Records stay on the device; nothing syncs until the caller reads them.
    Gradients flow through the episode unless the caller disables them (`torch.no_grad()`);
    `detach_every=k` cuts them every k steps (truncated backprop through time: no gradient
    across windows; every window's graph still lives until the caller's backward).
    `keep_logits` also records every prediction and label (for introspection plots)."""
    population = params.shape[0]
    if env.num_envs % population:
        raise ValueError(f"the env has {env.num_envs} sub-envs, not a multiple of the population {population}")
    batch = env.num_envs // population
    state = initial_states(learner, params, batch, state_seed)
    obs, _ = env.reset(seed=seed)
    records = _StepRecords(env.episode_length)
    for t in range(env.episode_length):
        if detach_every and t and t % detach_every == 0:
            state = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
            obs = {k: v.detach() for k, v in obs.items()}
        member_obs: Observation = {key: members_view(value, population) for key, value in obs.items()}
        logits, state = learner.step_donated(params, state, member_obs)  # the old state is never read again
        obs, _, _, truncated, info = env.step(env_view(logits))
        records.add(t, "loss", info["loss"])  # env layout; rearranged once per episode (`_per_member`)
        records.add(t, "correct", info["correct"])
        records.add(t, "scored", info["scored"])
        if keep_logits:
            records.add(t, "logits", logits.detach())
            records.add(t, "label", info["label"])
    kept = (_per_member(records["label"], population), records["logits"]) if keep_logits else (None, None)
    return RolloutResult(_per_member(records["loss"], population), _per_member(records["correct"], population),
                         records["scored"][:, 0].contiguous(), *kept)


class _StepRecords:
    """Per-step records, each written into one (T, ...) buffer allocated at the first step, or
    kept as a list while autograd records them (the losses then carry the episode's graph).
    Thousands of small per-step tensors kept alive between the step's large freed temporaries
    fragment the heap: a 12,000-step rollout of 2-layer online SGD grew to 23 GB that way."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.buffers: dict[str, torch.Tensor] = {}
        self.lists: dict[str, list[torch.Tensor]] = {}

    def add(self, t: int, name: str, value: torch.Tensor) -> None:
        if value.requires_grad or name in self.lists:
            self.lists.setdefault(name, []).append(value)
            return
        if name not in self.buffers:
            self.buffers[name] = value.new_empty((self.steps, *value.shape))
        self.buffers[name][t] = value

    def __getitem__(self, name: str) -> torch.Tensor:
        """(T, ...) records of `name`."""
        return torch.stack(self.lists[name]) if name in self.lists else self.buffers[name]


def _per_member(records: torch.Tensor, population: int) -> torch.Tensor:
    """(T, B * P) per-step env records -> one contiguous (T, P, B) tensor."""
    return members_view(records.transpose(0, 1), population).permute(2, 0, 1).contiguous()
