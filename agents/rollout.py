"""Run any learner over one episode of a native vector env, for a whole population at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import torch
from gymnasium.vector import SyncVectorEnv, VectorEnv

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


def rollout(learner: Learner, params: torch.Tensor, env: VectorEnv | gym.Env, seed: int | Sequence[int] | None = None,
            state_seed: int | Sequence[int] = 0, detach_every: int = 0, keep_logits: bool = False) -> RolloutResult:
    """One episode of `env` for the P members of `params` (P, D). `env` is the native vector
    env of a VSML task with P * B sub-envs (`gym.make_vec`, optionally in Gymnasium's vector
    wrappers), or any Gymnasium vector env of one (`vectorization_mode="sync"/"async"`, numpy
    in and out: converted here, no gradient through the env), or a single env (B = 1).
    `seed` seeds the data streams (None: continue them; a list: one seed per sub-env
    stream), `state_seed` the learners' random initial states (see `initial_states`). Records stay on the device; nothing syncs until the caller reads them.
    Gradients flow through the episode unless the caller disables them (`torch.no_grad()`);
    `detach_every=k` cuts them every k steps (truncated backprop through time: no gradient
    across windows; every window's graph still lives until the caller's backward).
    `keep_logits` also records every prediction and label (for introspection plots)."""
    env = env if isinstance(env, VectorEnv) else _as_vector_env(env)
    check_params(learner, params)
    episode_length = _episode_length(env)
    check_compatible(learner, env)
    population = params.shape[0]
    if env.num_envs % population:
        raise ValueError(f"the env has {env.num_envs} sub-envs, not a multiple of the population {population}")
    batch = env.num_envs // population
    state = initial_states(learner, params, batch, state_seed)
    obs, _ = env.reset(seed=seed)
    speaks_numpy = not isinstance(obs["x"], torch.Tensor)  # Gymnasium's sync/async vector envs

    def tensor(value: Any) -> torch.Tensor:
        if not speaks_numpy:
            return value
        value = torch.as_tensor(value, device=params.device)
        return value.float() if value.is_floating_point() else value  # numpy's float64 -> the native float32

    records = _StepRecords(episode_length)
    for t in range(episode_length):
        obs = {key: tensor(value) for key, value in obs.items()}
        if detach_every and t and t % detach_every == 0:
            state = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
            obs = {k: v.detach() for k, v in obs.items()}
        member_obs: Observation = {key: members_view(value, population) for key, value in obs.items()}
        logits, state = learner.step_donated(params, state, member_obs)  # the old state is never read again
        actions = env_view(logits)
        obs, _, _, truncated, info = env.step(actions.detach().cpu().numpy() if speaks_numpy else actions)
        for key in ("loss", "correct", "scored", *(("label",) if keep_logits else ())):
            records.add(t, key, tensor(info[key]))  # env layout; rearranged once per episode (`_per_member`)
        if keep_logits:
            records.add(t, "logits", logits.detach())
    kept = (_per_member(records["label"], population), records["logits"]) if keep_logits else (None, None)
    return RolloutResult(_per_member(records["loss"], population), _per_member(records["correct"], population),
                         records["scored"][:, 0].contiguous(), *kept)


def check_params(learner: Learner, params: Any) -> None:
    """Meta-parameters must be one float32 row of `learner.num_params` per member: said here,
    not as a shape error deep inside a step."""
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params must be a torch tensor (P, {learner.num_params}), got {type(params).__name__} "
                        "(learner.init_params(P) makes one)")
    if params.dim() != 2 or params.shape[1] != learner.num_params or params.shape[0] < 1:
        raise ValueError(f"params must have shape (P, {learner.num_params}) for this {learner.name or 'learner'} "
                         f"(one row per population member), got {tuple(params.shape)}")
    if params.dtype != torch.float32:
        raise TypeError(f"params must be float32, got {params.dtype} (use params.float())")


def check_compatible(learner: Learner, env: VectorEnv) -> None:
    """The learner must be built for the env's input shape and number of classes."""
    inputs = tuple(env.single_observation_space["x"].shape)
    classes = int(env.single_action_space.shape[-1])
    if inputs != learner.input_shape or classes != learner.num_classes:
        raise ValueError(f"the learner was built for inputs {learner.input_shape} and {learner.num_classes} "
                         f"classes, the env emits inputs {inputs} and {classes} classes; build it with "
                         "make_learner(name, env.single_observation_space['x'].shape, "
                         "env.single_action_space.shape[-1])")


def _as_vector_env(env: Any) -> VectorEnv:
    if not isinstance(env, gym.Env):
        raise TypeError(f"rollout needs an env of a VSML task (gym.make_vec('VSML/...') or gym.make), got "
                        f"{type(env).__name__}")
    return SyncVectorEnv([lambda: env])


def _episode_length(env: VectorEnv) -> int:
    """Steps per episode of a VSML task's vector env, native or Gymnasium's (the same for all sub-envs)."""
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "episode_length"):
        return int(unwrapped.episode_length)
    try:
        lengths = set(unwrapped.get_attr("episode_length"))
    except AttributeError:
        lengths = set()
    if len(lengths) != 1:
        raise TypeError(f"rollout needs a vector env of a VSML task (gym.make_vec('VSML/...')): "
                        f"{type(unwrapped).__name__} has {'no' if not lengths else 'mixed'} episode_length")
    return int(lengths.pop())


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
