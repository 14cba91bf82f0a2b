"""The bad-input table: one row per bad or unusual input a new user might give, with the error it must get.

Each row names one input and the exception (type and message regex, matched with `re.search`) that it
must raise, so that "how many mistakes get a clear error" is a number: `pytest tests/test_bad_inputs.py -q`
prints it (one test per row, the row id as the test id).

- `API_CASES`: (id, call, exception type, regex). `call` is a zero-argument callable, or one whose
  parameters are named `tmp_path` and/or `data_root` (the fixtures, given by name).
- `CLI_CASES`: (id, argv, regex[, setup]). `argv` goes to `vsml_gym.cli.main` in-process, with `{tmp}`
  replaced by a fresh temporary folder; `setup(tmp_path)`, when given, runs first (e.g. to write a
  broken file). The command must exit with code 2 and print exactly one line on stderr, matching the
  regex, without a traceback.

To add a row, append one tuple to the right section below (a new, unique id); put any setup that
takes more than a lambda in a helper function under the tables.
"""

from __future__ import annotations

import inspect
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import vsml_gym
from agents.registry import make_learner
from agents.rollout import rollout
from agents.training import QUICK_CONFIG
from agents.training.config import load_config
from agents.zoo import ZooError, ZooShapeError, load_entry
from vsml_gym.cli import main
from vsml_gym.data import DatasetNotFoundError, DownloadError, download_dataset, load_split

from test_data import (bad_magic, cifar_batches, fewer_labels, flip_first_label, truncate, write_cifar_binary,
                       write_mnist_test, CIFAR_BATCH)

MNIST = "VSML/MNIST-Online-v0"
SUMSIGN = "VSML/SumSign-Online-v0"
OMNIGLOT = "VSML/Omniglot-5Way1Shot-v0"
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused at once
QUICK = str(QUICK_CONFIG)


# Row builders, called while the tables are built; the helpers that rows call only when they run follow the tables.

def sgd(**options):
    return lambda: make_learner("sgd", (1, 28, 28), 10, **options)


def vsml(**options):
    return lambda: make_learner("vsml", (1, 28, 28), 10, **options)


def config(*overrides):
    return lambda: load_config(None, list(overrides))


def mnist(data_root, **kwargs):
    return gym.make(MNIST, split="test", data_root=str(data_root), **kwargs)


def reset_sumsign(seed):
    return lambda: gym.make_vec(SUMSIGN, num_envs=2).reset(seed=seed)


# ----------------------------------------------------------------------------------------------- API rows
NO_GPU_99 = r"is 'cuda:99', but (torch sees no CUDA GPU on this machine|this machine has \d+ CUDA GPU)"

API_CASES = [
    # --- learners: make_learner(name, input_shape, num_classes, **options)
    ("learner-num-classes-0", lambda: make_learner("sgd", (1, 28, 28), 0), ValueError, r"num_classes must be a positive int \(one logit per class\), got 0"),
    ("learner-num-classes-negative", lambda: make_learner("vsml", (1, 28, 28), -3), ValueError, r"num_classes must be a positive int .*got -3"),
    ("learner-num-classes-str", lambda: make_learner("sgd", (1, 28, 28), "10"), ValueError, r"num_classes must be a positive int .*got '10'"),
    ("learner-num-classes-float", lambda: make_learner("sgd", (1, 28, 28), 10.0), ValueError, r"num_classes must be a positive int .*got 10\.0"),
    ("learner-input-shape-empty", lambda: make_learner("sgd", (), 10), ValueError, r"input_shape must be a non-empty tuple of positive ints .*got \(\)"),
    ("learner-input-shape-zero", lambda: make_learner("vsml", (1, 0, 28), 10), ValueError, r"input_shape must be a non-empty tuple of positive ints .*got \(1, 0, 28\)"),
    ("learner-unknown-name", lambda: make_learner("adamm", (1, 28, 28), 10), ValueError, r"unknown learner 'adamm' \(did you mean 'adam'\?\)"),
    ("sgd-lr-negative", sgd(lr=-1), ValueError, r"lr must be positive, got -1"),
    ("sgd-lr-str", sgd(lr="abc"), TypeError, r"sgd: option lr must be float \| None, got 'abc'"),
    ("sgd-option-typo", sgd(lrr=0.1), TypeError, r"unknown option 'lrr' \(did you mean 'lr'\?\)"),
    ("adam-num-layers-str", lambda: make_learner("adam", (1, 28, 28), 10, num_layers="2"), TypeError, r"adam: option num_layers must be int, got '2'"),
    ("meta-rnn-hidden-size-float", lambda: make_learner("meta_rnn", (1, 28, 28), 10, hidden_size=1.5), TypeError, r"meta_rnn: option hidden_size must be int, got 1\.5"),
    ("vsml-state-size-0", vsml(state_size=0), ValueError, r"state_size must be positive, got 0"),
    ("vsml-message-size-negative", vsml(message_size=-1), ValueError, r"message_size must be >= 2 \(error and label channels\)"),
    ("vsml-micro-ticks-0", vsml(num_micro_ticks=0), ValueError, r"num_micro_ticks must be positive, got 0"),
    ("vsml-layers-str", vsml(layers="abc"), TypeError, r"vsml: option layers must be a list, got 'abc'"),
    ("vsml-init-rand-proportion-2", vsml(init_rand_proportion=2.0), ValueError, r"init_rand_proportion must be in \[0, 1\], got 2\.0"),
    ("hebbian-rule-unknown", lambda: make_learner("hebbian", (1, 28, 28), 10, rule="x"), ValueError, r"rule must be one of .*, got 'x'"),
    ("fw-memory-memory-size-0", lambda: make_learner("fw_memory", (1, 28, 28), 10, memory_size=0), ValueError, r"memory_size must be positive, got 0"),
    ("init-params-population-0", lambda: make_learner("sgd", (1, 28, 28), 10).init_params(population=0), ValueError, r"population must be a positive int \(members to draw\), got 0"),
    # --- zoo entries
    ("zoo-shape-option", lambda: make_learner("vsml@mnist", (1, 28, 28), 10, state_size=4), ValueError, r"change the shapes of its meta-parameters"),
    ("zoo-input-shape", lambda: make_learner("meta_rnn@mnist", (1, 14, 14), 10), ZooShapeError, r"meta_rnn@mnist was meta-trained for inputs \(1, 28, 28\) .*cannot run on inputs \(1, 14, 14\)"),
    ("zoo-unknown-entry", lambda: load_entry("vsml@nope"), ZooError, r"unknown zoo entry 'vsml@nope' \(did you mean 'vsml@mnist'\?\)"),
    # --- rollout(learner, params, env)
    ("rollout-params-1d", lambda: rollout_with(lambda p: p[0]), ValueError, r"params must have shape \(P, \d+\) for this meta_rnn \(one row per population member\), got \(\d+,\)"),
    ("rollout-params-float64", lambda: rollout_with(lambda p: p.double()), TypeError, r"params must be float32, got torch\.float64 \(use params\.float\(\)\)"),
    ("rollout-params-numpy", lambda: rollout_with(lambda p: p.numpy()), TypeError, r"params must be a torch tensor \(P, \d+\), got ndarray"),
    ("rollout-shape-mismatch", lambda: rollout_with(shape=(1, 14, 14)), ValueError, r"the learner was built for inputs \(1, 14, 14\) and 2 classes, the env emits inputs \(1, 28, 28\)"),
    ("rollout-env-id-string", lambda: rollout_with(env=SUMSIGN), TypeError, r"rollout needs an env of a VSML task .*got str"),
    ("rollout-population-not-dividing", lambda: rollout_with(population=3), ValueError, r"the env has 2 sub-envs, not a multiple of the population 3"),
    # --- experiment configs: load_config(None, [override])
    ("config-seed-str", config("seed=abc"), ValueError, r"seed must be int, got 'abc'"),
    ("config-moved-key", config("training.init_from=x"), ValueError, r"unknown key\(s\) 'init_from' \(moved to learner\.init_from\) in training"),
    ("config-number-as-text", config("training.learning_rate=1e-3"), ValueError, r"YAML reads a number like 1e-3 as text"),
    ("config-tasks-not-list", config("training.tasks=abc"), ValueError, r"training\.tasks must be a list of tasks .*got 'abc'"),
    ("config-learner-options-not-mapping", config("learner.options=3"), ValueError, r"learner\.options must be a mapping, got 3"),
    ("config-iterations-float", config("training.iterations=1.5"), ValueError, r"training\.iterations must be int, got 1\.5"),
    ("config-checkpoint-every-0", config("checkpoint_every=0"), ValueError, r"checkpoint_every must be a positive int, got 0"),
    ("config-checkpoint-every-negative", config("checkpoint_every=-1"), ValueError, r"checkpoint_every must be a positive int, got -1"),
    ("config-evaluation-every-negative", config("evaluation.every=-1"), ValueError, r"evaluation\.every must be an int >= 0 \(0: never\), got -1"),
    ("config-evaluation-env-typo", config("evaluation.envs=[VSML/MNST-Online-v0]"), ValueError, r"unknown env id .*did you mean 'VSML/MNIST-Online-v0'"),
    ("config-task-env-unknown", config("training.tasks=[VSML/Nope-v0]"), ValueError, r"training\.tasks\[0\]\.env: unknown env id 'VSML/Nope-v0'"),
    ("config-section-typo", config("trainig.iterations=3"), ValueError, r"unknown key\(s\) 'trainig' \(did you mean 'training'\?\) in config"),
    ("config-override-without-equals", config("seed"), ValueError, r"override 'seed' must look like key\.subkey=value"),
    ("config-method-unknown", config("training.method=foo"), ValueError, r"training\.method must be 'es' or 'gradient', got 'foo'"),
    ("config-fitness-unknown", config("training.fitness=median"), ValueError, r"training\.fitness must be mean, last or weighted, got 'median'"),
    ("config-projection-fraction-2", config("training.projection_fraction=2"), ValueError, r"training\.projection_fraction must be in \[0, 1\], got 2"),
    ("config-population-vs-actors", config("training.population_size=6", "training.num_actors=2"), ValueError, r"training\.population_size \(6\) must be divisible by 2 \* num_actors \(4\)"),
    ("config-lr-schedule-with-es", config("training.lr_schedule=cosine", "training.method=es"), ValueError, r"training\.lr_schedule applies to the gradient method"),
    ("config-import-missing", config("imports=[no_such_mod_xyz]"), ModuleNotFoundError, r"cannot import 'no_such_mod_xyz'"),
    ("config-ray-address-without-actors", config("training.ray_address=127.0.0.1:6379"), ValueError, r"training\.ray_address names a Ray cluster, but training\.num_actors is 0"),
    ("config-ray-address-malformed", config("training.ray_address=myhead", "training.num_actors=2"), ValueError, r"training\.ray_address must be 'host:port' of a Ray head \(or 'auto'\), got 'myhead'"),
    ("config-actors-negative", config("training.num_actors=-1"), ValueError, r"training\.num_actors must be an int >= 0"),
    # --- env options: gym.make(id, split="test", data_root=..., **options)
    ("env-classes-str", lambda data_root: mnist(data_root, classes="10"), TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got '10'"),
    ("env-classes-floats", lambda data_root: mnist(data_root, classes=[1.5, 2]), TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got \[1\.5, 2\]"),
    ("env-classes-int", lambda data_root: mnist(data_root, classes=5), TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got 5"),
    ("env-classes-one", lambda data_root: mnist(data_root, classes=[3]), ValueError, r"classes must be a list of at least 2 distinct ints in 0\.\.9 .*got \[3\]"),
    ("env-classes-repeated", lambda data_root: mnist(data_root, classes=[3, 3]), ValueError, r"classes must be a list of at least 2 distinct ints in 0\.\.9 .*got \[3, 3\]"),
    ("env-classes-out-of-range", lambda data_root: mnist(data_root, classes=[1, 10]), ValueError, r"classes \[10\] are out of range"),
    ("env-emnist-classes-out-of-range", lambda data_root: gym.make("VSML/EMNIST-Online-v0", split="test", data_root=str(data_root), classes=[0, 62]), ValueError, r"classes \[62\] are out of range: .* in 0\.\.61"),
    ("env-resize-str", lambda data_root: mnist(data_root, resize="14"), TypeError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got '14'"),
    ("env-resize-float", lambda data_root: mnist(data_root, resize=14.5), TypeError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got 14\.5"),
    ("env-resize-bool", lambda data_root: mnist(data_root, resize=True), TypeError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got True"),
    ("env-resize-0", lambda data_root: mnist(data_root, resize=0), ValueError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got 0"),
    ("env-pad-input-int", lambda data_root: mnist(data_root, pad_input=28), TypeError, r"pad_input must be a \(channels, height, width\) triple of positive ints, got 28"),
    ("env-pad-input-pair", lambda data_root: mnist(data_root, pad_input=(28, 28)), ValueError, r"pad_input must be a \(channels, height, width\) triple of positive ints, got \(28, 28\)"),
    ("env-data-root-int", lambda: gym.make(MNIST, split="test", data_root=123), TypeError, r"data_root must be a folder path \(a str or os\.PathLike\) or None, got 123"),
    ("env-sumsign-data-root-int", lambda: gym.make(SUMSIGN, data_root=123), TypeError, r"data_root must be a folder path \(a str or os\.PathLike\) or None, got 123"),
    ("env-omniglot-n-way-str", lambda data_root: gym.make(OMNIGLOT, split="test", data_root=str(data_root), n_way="5"), TypeError, r"n_way must be an int in 2\.\.659, got '5'"),
    ("env-omniglot-n-way-1", lambda data_root: gym.make(OMNIGLOT, split="test", data_root=str(data_root), n_way=1), ValueError, r"n_way must be an int in 2\.\.659, got 1"),
    ("env-omniglot-k-shot-20", lambda data_root: gym.make(OMNIGLOT, split="test", data_root=str(data_root), k_shot=20), ValueError, r"k_shot .*must be an int in 1\.\.19, got 20"),
    ("env-random-num-pairs-str", lambda: gym.make("VSML/Random-Online-v0", num_pairs="3"), TypeError, r"num_pairs must be an int >= 1, got '3'"),
    ("env-random-num-pairs-float", lambda: gym.make("VSML/Random-Online-v0", num_pairs=2.5), TypeError, r"num_pairs must be an int >= 1, got 2\.5"),
    ("env-random-num-pairs-0", lambda: gym.make("VSML/Random-Online-v0", num_pairs=0), ValueError, r"num_pairs must be an int >= 1, got 0"),
    ("env-reset-seed-str", reset_sumsign("abc"), TypeError, r"seed must be None, a non-negative int or a list of 2 non-negative ints \(one per stream\), got 'abc'"),
    ("env-reset-seed-float", reset_sumsign(1.5), TypeError, r"seed must be None, a non-negative int or a list of 2 non-negative ints \(one per stream\), got 1\.5"),
    ("env-reset-seed-negative", reset_sumsign(-1), ValueError, r"seed must be None, a non-negative int or a list of 2 non-negative ints \(one per stream\), got -1"),
    ("env-reset-seed-list-too-long", reset_sumsign([1, 2, 3]), ValueError, r"seed must be None, a non-negative int or a list of 2 non-negative ints \(one per stream\), got \[1, 2, 3\]"),
    ("env-numpy-wrapper-order", lambda: numpy_wrappers_dict_info_to_list(), TypeError, r"apply DictInfoToList outermost on TorchToNumpy\(env\) instead"),
    ("env-device-missing", lambda: gym.make_vec(SUMSIGN, num_envs=2, device="cuda:99"), ValueError, r"device " + NO_GPU_99),
    ("env-device-unknown", lambda: gym.make_vec(SUMSIGN, num_envs=2, device="gpu"), ValueError, r"device is 'gpu', not a torch device"),
    ("env-num-envs-0", lambda: gym.make_vec(SUMSIGN, num_envs=0), ValueError, r"num_envs must be a positive int, got 0"),
    ("env-split-unknown", lambda: gym.make(MNIST, split="val"), ValueError, r"split must be one of \('train', 'test'\), got 'val'"),
    ("env-episode-length-0", lambda: gym.make(SUMSIGN, episode_length=0), ValueError, r"episode_length must be a positive int, got 0"),
    ("env-episode-length-str", lambda: gym.make(SUMSIGN, episode_length="5"), ValueError, r"episode_length must be a positive int, got '5'"),
    ("env-data-missing", lambda tmp_path: gym.make(MNIST, split="test", data_root=str(tmp_path)), DatasetNotFoundError, r"(?s)MNIST \('mnist'\) split 'test' is not in the data root .*Looked for:.*vsml-gym data download mnist"),
    # --- custom tasks: vsml_gym.register_task(id, train=(images, labels), ...)
    ("task-test-shape-mismatch", lambda: register("T/BadTestShape-v0", train=(X, Y), test=(X[:, :5], Y)), ValueError, r"test images have shape \(1, 5, 6\) but train images \(1, 6, 6\)"),
    ("task-num-classes-too-small", lambda: register("T/BadNumClasses-v0", train=(X, Y), num_classes=3), ValueError, r"num_classes must be an int above the largest label"),
    ("task-train-not-pair", lambda: register("T/TrainNotPair-v0", train=X), TypeError, r"train must be an \(images, labels\) pair"),
    ("task-train-empty", lambda: register("T/TrainEmpty-v0", train=(X[:0], Y[:0])), ValueError, r"train holds no examples"),
    # --- dataset files: load_split / download_dataset
    ("data-idx-truncated", lambda tmp_path: damaged_mnist(tmp_path, "t10k-images-idx3-ubyte", truncate), ValueError, r"has 5404 bytes but its header \(7 x 28 x 28\) needs 5504"),
    ("data-idx-label-out-of-range", lambda tmp_path: damaged_mnist(tmp_path, "t10k-labels-idx1-ubyte", flip_first_label), ValueError, r"holds labels \d+\.\.11 but MNIST has classes 0\.\.9"),
    ("data-idx-bad-magic", lambda tmp_path: damaged_mnist(tmp_path, "t10k-images-idx3-ubyte", bad_magic), ValueError, r"does not start like an IDX file of 3-d unsigned bytes \(magic 00000803, found 00000903\)"),
    ("data-idx-fewer-labels", lambda tmp_path: damaged_mnist(tmp_path, "t10k-labels-idx1-ubyte", fewer_labels), ValueError, r"holds 7 images but .* 6 labels"),
    ("data-cifar-label-out-of-range", lambda tmp_path: cifar_with_label_byte(tmp_path, 200), ValueError, r"holds labels \d\.\.200 but CIFAR-10 has classes 0\.\.9"),
    ("data-download-unreachable", lambda tmp_path: download_dataset("kmnist", tmp_path, mirror=UNREACHABLE), DownloadError, r"downloading KMNIST from http://127\.0\.0\.1:9/ into .* failed"),
    ("env-download-unreachable", lambda tmp_path: env_download_unreachable(tmp_path), DownloadError, r"downloading Fashion-MNIST from http://127\.0\.0\.1:9/ .* failed"),
]

# ----------------------------------------------------------------------------------------------- CLI rows
TRAIN = ["train", "--quiet", QUICK, "--set", "output_dir={tmp}/runs"]  # the packaged config named, so no "no config given" line
BENCH = ["benchmark", "--quiet", "--env", SUMSIGN, "--out", "{tmp}/b"]

CLI_CASES = [
    # --- train: the config file
    ("train-yaml-malformed", ["train", "--quiet", "{tmp}/bad.yaml"], r"bad\.yaml: not valid YAML at line 3, column 1", lambda tmp: write(tmp / "bad.yaml", "training:\n  iterations: [1,\n")),
    ("train-yaml-top-level-list", ["train", "--quiet", "{tmp}/list.yaml"], r"the top level must be a mapping of config keys .*, got a list", lambda tmp: write(tmp / "list.yaml", "- seed: 1\n")),
    ("train-yaml-learner-not-mapping", ["train", "--quiet", "{tmp}/l.yaml"], r"learner: expected a mapping, got 3", lambda tmp: write(tmp / "l.yaml", "learner: 3\n")),
    ("train-config-missing", ["train", "--quiet", "{tmp}/missing.yaml"], r"no config file '.*missing\.yaml'"),
    ("train-config-folder", ["train", "--quiet", "{tmp}"], r"no config file .* \(it is a folder\)"),
    # --- train: --set overrides and flags
    ("train-set-seed-str", [*TRAIN, "--set", "seed=abc"], r"seed must be int, got 'abc'"),
    ("train-device-missing", [*TRAIN, "--set", "training.device=cuda:99"], r"training\.device " + NO_GPU_99),
    ("train-checkpoint-every-0", [*TRAIN, "--set", "checkpoint_every=0"], r"checkpoint_every must be a positive int, got 0"),
    ("train-iterations-0", [*TRAIN, "--set", "training.iterations=0"], r"training\.iterations must be a positive int, got 0"),
    ("train-tasks-empty", [*TRAIN, "--set", "training.tasks=[]"], r"training\.tasks needs at least one task"),
    ("train-evaluation-env-unknown", [*TRAIN, "--set", "evaluation.envs=[VSML/Nope-v0]"], r"evaluation\.envs\[0\]: unknown env id 'VSML/Nope-v0'"),
    ("train-learner-unknown", [*TRAIN, "--set", "learner.name=adamm"], r"unknown learner 'adamm' \(did you mean 'adam'\?\)"),
    ("train-learner-option-unknown", [*TRAIN, "--set", "learner.options.lrr=1"], r"meta_rnn: unknown option 'lrr'; its options: \["),
    ("train-import-missing", [*TRAIN, "--import", "no_such_mod_xyz"], r"cannot import 'no_such_mod_xyz': no such module"),
    ("train-unknown-flag", ["train", "--bogus"], r"unrecognized arguments: --bogus \(see vsml-gym --help\)"),
    ("train-run-exists", [*TRAIN, "--set", "training.iterations=1", "--set", "evaluation.every=0"], r"already holds a run .*--resume continues it, --overwrite replaces it", lambda tmp: train_once(tmp)),
    ("train-output-dir-is-file", [*TRAIN, "--set", "output_dir={tmp}/file", "--set", "training.iterations=1", "--set", "evaluation.every=0"], r"file/quick_sumsign: a part of this path is a file, not a folder", lambda tmp: write(tmp / "file", "")),
    # --- benchmark
    ("benchmark-seeds-0", [*BENCH, "--seeds", "0"], r"--seeds must be at least 1, got 0"),
    ("benchmark-seeds-str", [*BENCH, "--seeds", "x"], r"argument --seeds: invalid int value: 'x'"),
    ("benchmark-seed-negative", [*BENCH, "--seed", "-1"], r"--seed must be a non-negative int, got -1"),
    ("benchmark-episode-length-0", [*BENCH, "--episode-length", "0"], r"--episode-length must be at least 1, got 0"),
    ("benchmark-few-shot-episodes-0", [*BENCH, "--few-shot-episodes", "0"], r"--few-shot-episodes must be at least 1, got 0"),
    ("benchmark-learner-option-type", [*BENCH, "--learner", "adam:lr=abc"], r"adam: option lr must be float \| None, got 'abc'"),
    ("benchmark-learner-option-negative", [*BENCH, "--learner", "sgd:lr=-1"], r"lr must be positive, got -1"),
    ("benchmark-learner-unknown", [*BENCH, "--learner", "adamm"], r"unknown learner 'adamm' \(did you mean 'adam'\?\)"),
    ("benchmark-learner-zoo-unknown", [*BENCH, "--learner", "vsml@nope"], r"unknown zoo entry 'vsml@nope' \(did you mean 'vsml@mnist'\?\)"),
    ("train-ray-head-missing", [*TRAIN, "--set", "training.num_actors=2", "--set", "training.ray_address=127.0.0.1:1"], r"training\.ray_address: no Ray head answers at '127\.0\.0\.1:1' \(Connection refused\)"),
    ("benchmark-learner-option-typo", [*BENCH, "--learner", "sgd:lrr=1"], r"sgd: unknown option 'lrr' \(did you mean 'lr'\?\)"),
    ("benchmark-learner-option-no-equals", [*BENCH, "--learner", "sgd:lr"], r"option 'lr' in 'sgd:lr' must look like key=value"),
    ("benchmark-checkpoint-missing", [*BENCH, "--learner", "{tmp}/runs/none/checkpoint.pt"], r"no checkpoint at .*runs/none/checkpoint\.pt"),
    ("benchmark-env-typo", ["benchmark", "--quiet", "--env", "VSML/MNST-Online-v0", "--out", "{tmp}/b"], r"--env: unknown env id 'VSML/MNST-Online-v0' \(did you mean 'VSML/MNIST-Online-v0'\?\)"),
    ("benchmark-split-unknown", [*BENCH, "--split", "val"], r"argument --split: invalid choice: 'val'"),
    ("benchmark-metric-unknown", [*BENCH, "--metric", "nope"], r"argument --metric: invalid choice: 'nope'"),
    ("benchmark-device-gpu", [*BENCH, "--device", "gpu"], r"--device is 'gpu', not a torch device \(cpu, cuda, cuda:1, mps, \.\.\.\)"),
    ("benchmark-device-missing", [*BENCH, "--device", "cuda:99"], r"--device " + NO_GPU_99),
    ("benchmark-import-missing", [*BENCH, "--import", "no_such_mod_xyz"], r"cannot import 'no_such_mod_xyz': no such module"),
    ("benchmark-import-missing-file", [*BENCH, "--import", "{tmp}/missing.py"], r"cannot import '.*missing\.py': no such file"),
    ("benchmark-introspect-unknown", [*BENCH, "--learner", "sgd", "--introspect", "adam"], r"--introspect 'adam' is not one of the learners: \['sgd'\]"),
    ("benchmark-out-is-file", ["benchmark", "--quiet", "--env", SUMSIGN, "--out", "{tmp}/file"], r"--out '.*file' is a file: give a folder", lambda tmp: write(tmp / "file", "")),
    ("benchmark-out-under-file", ["benchmark", "--quiet", "--env", SUMSIGN, "--out", "{tmp}/file/b"], r"file/b: a part of this path is a file, not a folder", lambda tmp: write(tmp / "file", "")),
    # --- evaluate
    ("evaluate-episodes-0", ["evaluate", "vsml@mnist", "--episodes", "0"], r"--episodes must be at least 1, got 0"),
    ("evaluate-episode-length-0", ["evaluate", "vsml@mnist", "--episode-length", "0"], r"--episode-length must be at least 1, got 0"),
    ("evaluate-seed-negative", ["evaluate", "vsml@mnist", "--seed", "-1"], r"--seed must be a non-negative int, got -1"),
    ("evaluate-env-unknown", ["evaluate", "vsml@mnist", "--env", "VSML/Nope-v0"], r"--env: unknown env id 'VSML/Nope-v0'"),
    ("evaluate-env-empty", ["evaluate", "vsml@mnist", "--env", ""], r"--env: unknown env id ''"),
    ("evaluate-zoo-unknown", ["evaluate", "vsml@nope"], r"unknown zoo entry 'vsml@nope' \(did you mean 'vsml@mnist'\?\)"),
    ("evaluate-checkpoint-missing", ["evaluate", "{tmp}/none.pt"], r"no checkpoint at .*none\.pt"),
    ("evaluate-checkpoint-garbage", ["evaluate", "{tmp}/bad.pt"], r"bad\.pt is not a readable checkpoint \(corrupt or truncated\)", lambda tmp: write(tmp / "bad.pt", "garbage\n")),
    ("evaluate-not-a-checkpoint", ["evaluate", "{tmp}/other.pt"], r"other\.pt is not a vsml-gym checkpoint", lambda tmp: torch.save({"x": 1}, tmp / "other.pt")),
    ("evaluate-device-missing", ["evaluate", "vsml@mnist", "--device", "cuda:99"], r"--device " + NO_GPU_99),
    # --- leaderboard and plot-runs: result files and training logs
    ("leaderboard-results-missing", ["leaderboard", "--out", "{tmp}/lb", "{tmp}/missing.jsonl"], r"no results file '.*missing\.jsonl'"),
    ("leaderboard-results-folder", ["leaderboard", "{tmp}"], r"is a folder: give the results\.jsonl file in it"),
    ("leaderboard-results-not-json", ["leaderboard", "{tmp}/r.jsonl"], r"r\.jsonl:1 is not a JSON record", lambda tmp: write(tmp / "r.jsonl", "oops\n")),
    ("leaderboard-results-not-records", ["leaderboard", "{tmp}/r.jsonl"], r"r\.jsonl:1 is not a benchmark record", lambda tmp: write(tmp / "r.jsonl", '{"learner": "a", "env": "b"}\n')),
    ("plot-runs-missing", ["plot-runs", "{tmp}/nothing", "--out", "{tmp}/x.png"], r"no training log at .*nothing \(give a log\.jsonl or a run folder"),
    ("plot-runs-empty-log", ["plot-runs", "{tmp}/log.jsonl", "--out", "{tmp}/x.png"], r"log\.jsonl is empty: no iterations logged yet", lambda tmp: write(tmp / "log.jsonl", "")),
    ("plot-runs-garbage-log", ["plot-runs", "{tmp}/log.jsonl", "--out", "{tmp}/x.png"], r"log\.jsonl holds no complete JSON record", lambda tmp: write(tmp / "log.jsonl", "garbage\n")),
    ("plot-runs-log-of-lists", ["plot-runs", "{tmp}/log.jsonl", "--out", "{tmp}/x.png"], r"log\.jsonl:1: not a training-log record .*got a list", lambda tmp: write(tmp / "log.jsonl", "[1]\n[2]\n")),
    ("plot-runs-out-under-file", ["plot-runs", "{tmp}/log.jsonl", "--out", "{tmp}/file/x.png"], r"file is a file, where a folder is needed", lambda tmp: write_log_and_file(tmp)),
    # --- other commands
    ("command-unknown", ["nope"], r"argument COMMAND: invalid choice: 'nope'"),
    ("zoo-unknown", ["zoo", "vsml@nope"], r"unknown zoo entry 'vsml@nope'"),
    ("envs-split-unknown", ["envs", "--split", "foo"], r"argument --split: invalid choice: 'foo'"),
    ("envs-import-missing", ["envs", "--import", "no_such_mod_xyz"], r"cannot import 'no_such_mod_xyz': no such module"),
    ("envs-num-envs-0", ["envs", "--check", "--num-envs", "0"], r"--num-envs must be at least 1, got 0"),
    ("envs-episode-length-0", ["envs", "--check", "--episode-length", "0"], r"--episode-length must be at least 1, got 0"),
    ("envs-device-missing", ["envs", "--device", "cuda:99"], r"--device " + NO_GPU_99),
    ("data-download-unknown-name", ["data", "download", "nope"], r"argument name: invalid choice: 'nope'"),
    ("data-download-unreachable", ["data", "download", "kmnist", "--data-root", "{tmp}", "--mirror", UNREACHABLE], r"downloading KMNIST from http://127\.0\.0\.1:9/ into .* failed \(.*\); check the mirror URL$"),
]


# ----------------------------------------------------------------------------------------------- helpers

X = np.zeros((20, 6, 6), np.uint8)  # a tiny custom task: 20 blank 6x6 images, 4 classes
Y = np.arange(20) % 4


def register(env_id, **kwargs):
    try:
        vsml_gym.register_task(env_id, **kwargs)
    finally:
        gym.registry.pop(env_id, None)


def rollout_with(change_params=lambda p: p, shape=(1, 28, 28), env=None, population=2):
    learner = make_learner("meta_rnn", shape, 2, hidden_size=4)
    params = learner.init_params(population=population)
    env = gym.make_vec(SUMSIGN, num_envs=2, episode_length=4) if env is None else env
    return rollout(learner, change_params(params), env)


def numpy_wrappers_dict_info_to_list():
    from gymnasium.wrappers.vector import DictInfoToList

    return vsml_gym.with_numpy_wrappers(gym.make_vec(SUMSIGN, num_envs=2), DictInfoToList)


def damaged_mnist(tmp_path, file, damage):
    raw = write_mnist_test(tmp_path)
    damage(raw / file)
    return load_split("mnist", "test", tmp_path)


def cifar_with_label_byte(tmp_path, value):
    from vsml_gym.data import loaders

    write_cifar_binary(tmp_path / "cifar-10-batches-bin", cifar_batches(40))
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin"
    data = bytearray(path.read_bytes())
    data[0] = value  # the first record's label byte
    path.write_bytes(bytes(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders, "CIFAR_RECORDS_PER_BATCH", CIFAR_BATCH)
        return load_split("cifar10", "train", tmp_path)


def env_download_unreachable(tmp_path):
    from vsml_gym.data import loaders

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders, "download_dataset", lambda name, root: download_dataset(name, root, mirror=UNREACHABLE))
        return gym.make("VSML/FashionMNIST-Online-v0", split="test", data_root=str(tmp_path), download=True)


def write(path, text):
    path.write_text(text)


def write_log_and_file(tmp):
    write(tmp / "log.jsonl", '{"iteration": 1}\n')
    write(tmp / "file", "")


def train_once(tmp):
    code = main(["train", "--quiet", QUICK, "--set", f"output_dir={tmp}/runs", "--set", "training.iterations=1",
                 "--set", "evaluation.every=0"])
    assert code == 0, "the first run of the run-exists row should succeed"


# ----------------------------------------------------------------------------------------------- the tests

def _check_unique(rows):
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    return rows


@pytest.mark.parametrize("call, error, pattern", [row[1:] for row in _check_unique(API_CASES)],
                         ids=[row[0] for row in API_CASES])
def test_api_bad_input(call, error, pattern, tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # the download rows must reach 127.0.0.1 directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    fixtures = {"tmp_path": tmp_path, "data_root": data_root}
    arguments = {name: fixtures[name] for name in inspect.signature(call).parameters}
    with pytest.raises(error, match=pattern):
        call(**arguments)


@pytest.mark.parametrize("argv, pattern, setup", [(row[1], row[2], row[3] if len(row) > 3 else None)
                                                   for row in _check_unique(CLI_CASES)],
                         ids=[row[0] for row in CLI_CASES])
def test_cli_bad_input(argv, pattern, setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    if setup is not None:
        setup(tmp_path)
        capsys.readouterr()  # what the setup printed is not the row's output
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    assert len(lines) == 1 and lines[0].strip(), f"stderr should be one line, got: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    assert re.search(pattern, lines[0]), f"{pattern!r} not found in {lines[0]!r}"
