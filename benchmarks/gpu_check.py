"""Device checks for a CUDA machine: the same numbers on the GPU as on the CPU, and no host syncs.

    python benchmarks/gpu_check.py > benchmarks/results/gpu_check/h100/gpu_check.json   # h100/, h200/: the GPU's folder

1. Native vector envs on CUDA produce the CPU's streams (inputs, feedback, rewards).
2. Environment steps (nan_check="episode") and learner steps run without a host-device sync
   (torch.cuda.set_sync_debug_mode("error") turns any sync into an error).
3. Every learner gives the CPU's logits on CUDA; VSML also with the fused Triton layer switched off.
Prints JSON with the largest differences; exits non-zero if a check fails.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vsml_gym  # noqa: E402,F401
from agents import make_learner  # noqa: E402
from agents.vsml import layers as vsml_layers  # noqa: E402

ENVS = [
    ("VSML/MNIST-Online-v0", {"split": "test"}),
    ("VSML/MNIST-RandProj-Online-v0", {"split": "test", "projection": "episode", "label_permutation": "episode"}),
    ("VSML/SumSign-Online-v0", {}),
    ("VSML/Random-Online-v0", {}),
]
LEARNERS = [
    ("vsml", {}),
    ("vsml", {"layers": [{"type": "dense", "size": 16}, {"type": "dense"}], "backward_pass": True, "feed_label": True}),
    ("vsml", {"layers": [{"type": "conv", "channels": 4, "kernel": 3, "stride": 2}, {"type": "dense"}],
              "backward_pass": True, "layer_norm": True}),
    ("meta_rnn", {}), ("hebbian", {}), ("fw_memory", {}), ("sgd", {}), ("adam", {"num_layers": 2}),
]
TOLERANCE = 1e-4


@contextmanager
def forbid_host_sync(active: bool):
    """Any host-device synchronisation inside raises (CUDA only)."""
    if active:
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        if active:
            torch.cuda.set_sync_debug_mode(0)


def env_streams(env_id: str, options: dict, device: str, actions: torch.Tensor) -> list[torch.Tensor]:
    env = gym.make_vec(env_id, num_envs=actions.shape[1], device=device, episode_length=50, nan_check="episode",
                       **options)
    obs, _ = env.reset(seed=3)
    records = []
    for step_actions in actions:
        records += [obs["x"].cpu(), obs["error"].cpu(), obs["label"].cpu()]
        step_actions = step_actions.to(device)
        with forbid_host_sync(device == "cuda"):
            obs, reward, _, _, _ = env.step(step_actions)
        records.append(reward.cpu())
    return records


def _observations(steps: int = 5) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"x": torch.randn(3, 2, 1, 28, 28, generator=generator),
             "error": torch.randn(3, 2, 10, generator=generator) * 0.3,
             "label": torch.nn.functional.one_hot(torch.randint(0, 10, (3, 2), generator=generator), 10).float()}
            for _ in range(steps)]


def learner_logits(learner, device: str) -> torch.Tensor:
    """Logits (T, P, B, C) of 5 steps from the same CPU-drawn parameters and initial state; on CUDA,
    every step after the first must run without a host sync."""
    params = learner.init_params(3, seed=0)
    state = learner.initial_state(params, 2, torch.Generator().manual_seed(2))
    params = params.to(device)
    state = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    outputs = []
    with torch.no_grad():
        for t, obs in enumerate(_observations()):
            obs = {k: v.to(device) for k, v in obs.items()}
            with forbid_host_sync(device == "cuda" and t > 0):
                logits, state = learner.step(params, state, obs)
            outputs.append(logits.cpu())
    return torch.stack(outputs)


def main() -> int:
    assert torch.cuda.is_available(), "this script checks a CUDA device"
    report: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "envs": {}, "learners": {}}
    ok = True
    for env_id, options in ENVS:
        classes = gym.make(env_id, **options).action_space.shape[0]
        actions = torch.randn(20, 8, classes, generator=torch.Generator().manual_seed(0))
        cpu, cuda = env_streams(env_id, options, "cpu", actions), env_streams(env_id, options, "cuda", actions)
        error = max(float((a - b).abs().max()) for a, b in zip(cpu, cuda))
        report["envs"][f"{env_id} {options}"] = {"max_abs_diff_cpu_vs_cuda": error, "host_syncs_in_step": 0}
        ok &= error < TOLERANCE
    for name, options in LEARNERS:
        learner = make_learner(name, (1, 28, 28), 10, **options)
        cpu = learner_logits(learner, "cpu")
        entry = {}
        for label, fused in (("cuda", True), ("cuda_eager", False)):
            if name != "vsml" and not fused:
                continue
            vsml_layers.FUSED_KERNEL_ENABLED = fused
            entry[f"max_abs_diff_cpu_vs_{label}"] = float((learner_logits(learner, "cuda") - cpu).abs().max())
            ok &= entry[f"max_abs_diff_cpu_vs_{label}"] < TOLERANCE
        vsml_layers.FUSED_KERNEL_ENABLED = True
        report["learners"][f"{name} {options}"] = entry
    report["passed"] = bool(ok)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
