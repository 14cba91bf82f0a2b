"""Meta-training of learners: EvoTorch evolution strategies (optionally over Ray actors) and
backpropagation through episodes, driven by YAML experiment configs."""

from pathlib import Path

from agents.training.checkpoint import CheckpointError, load_checkpoint
from agents.training.config import ExperimentConfig, load_config
from agents.training.evaluation import evaluate_params
from agents.training.trainer import RunExistsError

#: what `vsml-gym train` runs without a config: a CPU-sized experiment, not the 2048-member GPU one
QUICK_CONFIG = Path(__file__).with_name("quick_sumsign.yaml")


def quiet_evotorch() -> None:
    """EvoTorch logs its set-up at INFO on stdout, and importing it calls the deprecated
    torch.jit.script: neither belongs in the output of `train` (whose last line is its JSON
    result) or of a benchmark."""
    import logging
    import os
    import warnings

    deprecated = "`torch.jit.script` is deprecated"
    warnings.filterwarnings("ignore", message=deprecated, category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{deprecated}:FutureWarning")  # for Ray's worker processes
    import evotorch  # noqa: F401  (its import sets up its logger)

    logging.getLogger("evotorch").setLevel(logging.WARNING)


def make_trainer(config: ExperimentConfig, **kwargs):
    """The trainer of `config.training.method` ("es" or "gradient")."""
    if config.training.method == "es":
        from agents.training.es import ESTrainer

        return ESTrainer(config, **kwargs)
    from agents.training.gradient import GradientTrainer

    return GradientTrainer(config, **kwargs)


__all__ = ["QUICK_CONFIG", "CheckpointError", "ExperimentConfig", "RunExistsError", "evaluate_params",
           "load_checkpoint", "load_config", "make_trainer", "quiet_evotorch"]
