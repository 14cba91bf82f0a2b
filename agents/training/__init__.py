"""Meta-training of learners: EvoTorch evolution strategies (optionally over Ray actors) and
backpropagation through episodes, driven by YAML experiment configs."""

from pathlib import Path

from agents.training.checkpoint import CheckpointError, load_checkpoint
from agents.training.config import ExperimentConfig, load_config
from agents.training.evaluation import evaluate_params
from agents.training.trainer import RunExistsError

#: what `vsml-gym train` runs without a config: a CPU-sized experiment, not the 2048-member GPU one
QUICK_CONFIG = Path(__file__).with_name("quick_sumsign.yaml")


def make_trainer(config: ExperimentConfig, **kwargs):
    """The trainer of `config.training.method` ("es" or "gradient")."""
    if config.training.method == "es":
        from agents.training.es import ESTrainer

        return ESTrainer(config, **kwargs)
    from agents.training.gradient import GradientTrainer

    return GradientTrainer(config, **kwargs)


__all__ = ["QUICK_CONFIG", "CheckpointError", "ExperimentConfig", "RunExistsError", "evaluate_params", "load_checkpoint", "load_config", "make_trainer"]
