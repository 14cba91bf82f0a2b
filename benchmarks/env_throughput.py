"""Env-steps per second of the native vector env against Gymnasium's SyncVectorEnv of single envs.

    python benchmarks/env_throughput.py --env VSML/MNIST-Online-v0 --num-envs 1 64 1024 2048

Both run side by side in one process on the same data; prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import gymnasium as gym
import numpy as np
import torch

import vsml_gym


def _time_steps(step, actions, min_steps: int, min_seconds: float, sync) -> tuple[int, float]:
    """Run `step` until both `min_steps` and `min_seconds` are reached; returns (steps, seconds)."""
    step(actions)  # warm-up
    sync()
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step(actions)
        steps += 1
    sync()
    return steps, time.perf_counter() - start


def measure(env_id: str, num_envs: int, device: str, options: dict, min_seconds: float) -> dict:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    native = gym.make_vec(env_id, num_envs=num_envs, device=device, nan_check="off", **options)
    native.reset(seed=0)
    logits = torch.randn(num_envs, native.single_action_space.shape[0], device=device)
    native_steps, native_seconds = _time_steps(native.step, logits, 20, min_seconds, sync)
    native.close()

    reference = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **options)
    reference.reset(seed=0)
    actions = logits.cpu().numpy()
    sync_steps, sync_seconds = _time_steps(reference.step, actions, 3, min_seconds, lambda: None)
    reference.close()

    native_rate = native_steps * num_envs / native_seconds
    sync_rate = sync_steps * num_envs / sync_seconds
    return {
        "num_envs": num_envs,
        "native_env_steps_per_s": round(native_rate, 1),
        "sync_vector_env_steps_per_s": round(sync_rate, 1),
        "speedup": round(native_rate / sync_rate, 2),
        "native_steps_timed": native_steps,
        "sync_steps_timed": sync_steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="VSML/MNIST-Online-v0", help="registered env id")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 2048])
    parser.add_argument("--device", default="cpu", help="device of the native vector env")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--data-root", default=None, help="dataset folder (default: $VSML_GYM_DATA or the user cache)")
    parser.add_argument("--episode-length", type=int, default=100000, help="long episodes keep resets out of the timing")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time each measurement at least this long")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    options = {"split": args.split, "data_root": args.data_root, "episode_length": args.episode_length}
    results = [measure(args.env, n, args.device, options, args.min_seconds) for n in args.num_envs]
    print(json.dumps({
        "benchmark": "env_throughput",
        "env": args.env,
        "device": args.device,
        "torch": torch.__version__,
        "gymnasium": gym.__version__,
        "vsml_gym": vsml_gym.__version__,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
