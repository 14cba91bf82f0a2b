"""Learners (learned learning algorithms and hand-designed baselines) behind one small protocol."""

from agents.learner import Learner, Observation, State
from agents.params import ParamSpec
from agents.registry import learner_names, make_learner, register_learner
from agents.rollout import RolloutResult, rollout

__all__ = ["Learner", "Observation", "ParamSpec", "RolloutResult", "State", "learner_names", "make_learner",
           "register_learner", "rollout"]
