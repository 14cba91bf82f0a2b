"""`vsml-gym envs`: list every registered environment, and check each one on real data."""

from __future__ import annotations

import argparse
import warnings

import gymnasium as gym
import torch
from gymnasium.utils.env_checker import check_env
from tqdm import tqdm

from vsml_gym.checks import check_device
from vsml_gym.commands.table import format_table
from vsml_gym.data import DatasetNotFoundError
from vsml_gym.envs.options import TaskOptions
from vsml_gym.plugins import add_import_option
from vsml_gym.registration import registered_env_ids

#: the split `gym.make` builds when none is given, so that "present" here means gym.make(id) works
DEFAULT_SPLIT = TaskOptions.__dataclass_fields__["split"].default


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    envs = subparsers.add_parser(
        "envs", help="list (and check) the registered environments",
        description=f"List every registered environment id with its shapes, built on one data split: by default "
                    f"{DEFAULT_SPLIT!r}, the split gym.make(id) uses, so that an id listed with its data present is "
                    f"one gym.make builds; a row whose data is missing names the split. With --check, also run "
                    f"Gymnasium's env checker on the single env and one episode of the native vector env.")
    envs.add_argument("--check", action="store_true", help="run the env checker and a vector-env episode per id")
    envs.add_argument("--split", default=DEFAULT_SPLIT, choices=["train", "test"],
                      help=f"data split to build each env on (default: {DEFAULT_SPLIT}, as gym.make)")
    envs.add_argument("--data-root", help="dataset folder (default: $VSML_GYM_DATA, else the user cache)")
    envs.add_argument("--num-envs", type=int, default=256, help="sub-envs of the vector episode (default: 256)")
    envs.add_argument("--episode-length", type=int, default=500, help="steps of the vector episode (default: 500)")
    envs.add_argument("--device", default="cpu", help="device of the vector env (default: cpu)")
    add_import_option(envs)
    envs.set_defaults(run=run_envs)


def run_envs(args: argparse.Namespace) -> int:
    for flag in ("num_envs", "episode_length"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    check_device(args.device, "--device")
    rows, failures = [], 0
    for env_id in tqdm(registered_env_ids(), desc="environments", disable=not args.check, leave=False):
        options = {"split": args.split, "data_root": args.data_root}
        try:
            env = gym.make(env_id, **options)
        except (DatasetNotFoundError, ValueError) as unusable:  # missing, or corrupt files
            reason = "data missing" if isinstance(unusable, DatasetNotFoundError) else "data unusable"
            rows.append((env_id, "-", "-", "-", f"{reason}: {str(unusable).splitlines()[0]}"))
            continue
        task = env.unwrapped.task
        row = [env_id, "x".join(map(str, task.input_shape)), task.num_classes, env.unwrapped.episode_length]
        if args.check:
            status = _check(env, env_id, options, args)
            failures += status != "ok"
            row.append(status)
        else:
            row.append("present")
        rows.append(row)
        env.close()
    header = ("id", "input", "classes", "episode", f"check ({args.split})" if args.check else f"data ({args.split})")
    print(format_table(header, rows))
    return 1 if failures else 0


def _check(env: gym.Env, env_id: str, options: dict, args: argparse.Namespace) -> str:
    """"ok", or what failed. Timing is left to benchmarks/env_throughput.py: one episode here, with
    its first-call costs, would print a rate that changes from run to run."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the checker's advice on unbounded Boxes does not apply to logits
            check_env(env.unwrapped, skip_render_check=True)
        episode = {} if env.unwrapped.task.fixed_episode_length else {"episode_length": args.episode_length}
        venv = gym.make_vec(env_id, num_envs=args.num_envs, device=args.device, nan_check="episode",
                            **options, **episode)
        venv.reset(seed=0)
        logits = torch.zeros(args.num_envs, venv.single_action_space.shape[0], device=args.device)
        truncated = False
        while not truncated:
            _, _, _, done, _ = venv.step(logits)
            truncated = bool(done[0])
        venv.close()
        return "ok"
    except Exception as error:  # report every env, then fail at the end
        return f"FAILED: {type(error).__name__}: {error}"
