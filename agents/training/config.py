"""Experiment configuration: YAML files with dotted command-line overrides.

    config = load_config("configs/vsml_mnist.yaml", ["training.population_size=128"])

Every section is a dataclass, so a typo in a key fails loudly with the valid keys, and the
resolved configuration is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from agents.annotations import describe, fits
from vsml_gym.checks import is_int


@dataclass
class LearnerConfig:
    name: str = "vsml"
    options: dict[str, Any] = field(default_factory=dict)
    #: meta-parameters that start the run: a zoo entry ('vsml@mnist') or a checkpoint path (else fresh from the seed)
    init_from: str | None = None


@dataclass
class TaskConfig:
    """One entry of the meta-training mixture."""

    env: str = "VSML/MNIST-Online-v0"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingConfig:
    method: str = "es"  # "es" (EvoTorch) or "gradient" (backprop through the episode)
    searcher: str = "openai_es"  # openai_es | pgpe | snes | sep_cmaes
    searcher_options: dict[str, Any] = field(default_factory=dict)
    iterations: int = 10000
    population_size: int = 2048  # ES members (1024 antithetic pairs) / gradient: episodes per batch
    episode_length: int = 500
    streams_per_member: int = 1
    fitness: str = "mean"  # mean | last | weighted
    fitness_weights: Any = "linear"  # for fitness=weighted: "linear" or one weight per step
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    projection_fraction: float = 0.0  # share of streams that see a new random projection each episode
    device: str = "cpu"
    num_actors: int = 0  # Ray actors evaluating the population (0: in this process)
    num_gpus_per_actor: float = 0.0
    num_cpus_per_actor: float = 1.0  # held by each actor while it lives: 1 spreads actors over 1-CPU slots
    #: the Ray cluster the actors run on ("host:port" of its head); None: $RAY_ADDRESS, else a Ray of this process
    ray_address: str | None = None
    learning_rate: float = 1e-3  # gradient method
    lr_schedule: str = "constant"  # gradient method: constant | cosine (to min_learning_rate at the last iteration)
    min_learning_rate: float = 0.0  # gradient method, with lr_schedule=cosine
    grad_clip: float = 25.0  # gradient method
    truncation: int = 0  # gradient method: truncated BPTT window (0: the whole episode)


@dataclass
class EvaluationConfig:
    every: int = 100
    envs: list[str] = field(default_factory=lambda: ["VSML/MNIST-Online-v0", "VSML/FashionMNIST-Online-v0"])
    episodes: int = 4
    episode_length: int | None = 2000  # None: each env's own
    seed: int = 22
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    output_dir: str = "runs"
    checkpoint_every: int = 500
    data_root: str | None = None
    #: modules imported before anything is built (plug-in learners and env ids; also on Ray actors)
    imports: list[str] = field(default_factory=list)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_MOVED = {"training.init_from": "learner.init_from"}  # keys of older vsml-gym versions
_NESTED = {"learner": LearnerConfig, "training": TrainingConfig, "evaluation": EvaluationConfig}


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in values if k not in known]
    if unknown:
        hints = [f"{k!r}" + (f" (moved to {_MOVED[f'{where}.{k}']})" if f"{where}.{k}" in _MOVED else
                             f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, known, 1)) else "")
                 for k in unknown]
        raise ValueError(f"unknown key(s) {', '.join(hints)} in {where or 'config'}; valid: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if cls is ExperimentConfig and key in _NESTED:
            value = _build(_NESTED[key], value, path)
        elif cls is TrainingConfig and key == "tasks":
            if not isinstance(value, list):
                raise ValueError(f"{path} must be a list of tasks (env ids or mappings), got {value!r}")
            value = [_build(TaskConfig, v if isinstance(v, dict) else {"env": v}, f"{path}[{i}]")
                     for i, v in enumerate(value)]
        elif not fits(value, hints[key]):
            raise ValueError(f"{path} must be {describe(hints[key])}, got {value!r} ({type(value).__name__})"
                             + _YAML_NUMBER_HINT * (isinstance(value, str) and _looks_numeric(value)))
        kwargs[key] = value
    return cls(**kwargs)


_YAML_NUMBER_HINT = " (YAML reads a number like 1e-3 as text: write 1.0e-3)"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    config = _build(ExperimentConfig, values, "")
    from vsml_gym.plugins import import_plugins

    import_plugins(config.imports)
    _validate(config)
    return config


def current_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A resolved config written by an older vsml-gym in today's keys (`training.init_from`
    became `learner.init_from`; `imports` is new)."""
    training = dict(values["training"])
    learner = {**values["learner"], "init_from": training.pop("init_from", values["learner"].get("init_from"))}
    return {"imports": [], **values, "learner": learner, "training": training}


#: settings a resumed run may change: how long it runs, where, how often it saves and what it evaluates
RESUMABLE_CHANGES = ("name", "output_dir", "data_root", "checkpoint_every", "learner.init_from", "training.iterations",
                     "training.device", "training.num_actors", "training.num_gpus_per_actor", "training.num_cpus_per_actor",
                     "training.ray_address", "evaluation")


def config_differences(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs, except `RESUMABLE_CHANGES`."""
    differences = []
    for key in dict.fromkeys([*recorded, *current]):
        path = f"{prefix}{key}"
        if path in RESUMABLE_CHANGES:
            continue
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and path in ("learner", "training"):
            differences += config_differences(old, new, path + ".")
        elif old != new:
            differences.append(f"{path}: {old!r} in the run, {new!r} now")
    return differences


def apply_override(values: dict[str, Any], override: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML: numbers, booleans, lists) to a nested dict."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key.subkey=value")
    path, raw = override.split("=", 1)
    keys = path.strip().split(".")
    target = values
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ValueError(f"override {override!r}: {key!r} is not a section")
    target[keys[-1]] = yaml.safe_load(raw)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty: {}), or a ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file {str(path)!r}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (YAML) file") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the top level must be a mapping of config keys (name: ..., training: ...), "
                         f"got a {type(values).__name__}")
    return values


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    values: dict[str, Any] = {}
    if path is not None:
        values = read_yaml_mapping(path)
        values.setdefault("name", Path(path).stem)
    for override in overrides:
        apply_override(values, override)
    return config_from_dict(values)


def _validate(config: ExperimentConfig) -> None:
    t, e = config.training, config.evaluation
    if not _positive_int(config.checkpoint_every):
        raise ValueError(f"checkpoint_every must be a positive int, got {config.checkpoint_every!r}")
    if not is_int(e.every) or e.every < 0:
        raise ValueError(f"evaluation.every must be an int >= 0 (0: never), got {e.every!r}")
    if not _positive_int(e.episodes) or not (e.episode_length is None or _positive_int(e.episode_length)):
        raise ValueError(f"evaluation.episodes and evaluation.episode_length must be positive ints, got "
                         f"{e.episodes!r} and {e.episode_length!r}")
    if t.method not in ("es", "gradient"):
        raise ValueError(f"training.method must be 'es' or 'gradient', got {t.method!r}")
    if t.fitness not in ("mean", "last", "weighted"):
        raise ValueError(f"training.fitness must be mean, last or weighted, got {t.fitness!r}")
    for name in ("iterations", "population_size", "episode_length", "streams_per_member"):
        if not _positive_int(getattr(t, name)):
            raise ValueError(f"training.{name} must be a positive int, got {getattr(t, name)!r}")
    if t.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"training.lr_schedule must be 'constant' or 'cosine', got {t.lr_schedule!r}")
    if t.method == "gradient" and not t.learning_rate > 0:
        raise ValueError(f"training.learning_rate must be positive, got {t.learning_rate!r}")
    if t.lr_schedule == "cosine":
        if t.method != "gradient":
            raise ValueError("training.lr_schedule applies to the gradient method; ES searchers take their "
                             "learning rate in training.searcher_options")
        if not 0 <= t.min_learning_rate <= t.learning_rate:
            raise ValueError(f"training.min_learning_rate must be in [0, learning_rate = {t.learning_rate}], "
                             f"got {t.min_learning_rate!r}")
    if not 0.0 <= t.projection_fraction <= 1.0:
        raise ValueError(f"training.projection_fraction must be in [0, 1], got {t.projection_fraction}")
    if not t.tasks or any(task.weight <= 0 for task in t.tasks):
        raise ValueError("training.tasks needs at least one task, each with a positive weight")
    if not is_int(t.num_actors) or t.num_actors < 0 or t.num_gpus_per_actor < 0 or t.num_cpus_per_actor < 0:
        raise ValueError(f"training.num_actors must be an int >= 0 and num_gpus/num_cpus_per_actor >= 0, got "
                         f"{t.num_actors!r}, {t.num_gpus_per_actor!r}, {t.num_cpus_per_actor!r}")
    if t.ray_address not in (None, "auto") and not _host_port(t.ray_address):
        raise ValueError(f"training.ray_address must be 'host:port' of a Ray head (or 'auto'), got {t.ray_address!r}")
    if t.ray_address is not None and not t.num_actors:
        raise ValueError("training.ray_address names a Ray cluster, but training.num_actors is 0 (the population "
                         "would be evaluated in this process): set training.num_actors")
    if t.method == "es" and t.num_actors and t.population_size % (2 * t.num_actors):
        raise ValueError(f"training.population_size ({t.population_size}) must be divisible by 2 * num_actors "
                         f"({2 * t.num_actors}) so that antithetic pairs stay on one actor")
    check_env_ids([(f"training.tasks[{i}].env", task.env) for i, task in enumerate(t.tasks)]
                + [(f"evaluation.envs[{i}]", env_id) for i, env_id in enumerate(e.envs)])


def _host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


def _positive_int(value: Any) -> bool:
    return is_int(value) and value > 0


def check_env_ids(named: Sequence[tuple[str, str]]) -> None:
    """Every env id must be registered: a typo fails here, before any work, not after training starts."""
    import gymnasium as gym

    import vsml_gym  # noqa: F401  (registers the VSML ids)

    for where, env_id in named:
        try:
            gym.spec(env_id)
        except gym.error.Error:
            close = difflib.get_close_matches(str(env_id), list(gym.registry), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown env id {env_id!r}{hint}; `vsml-gym envs` lists them") from None
