"""VSML: networks whose weights are tiny LSTMs sharing one set of meta-parameters."""

from agents.vsml.learner import VSML
from agents.vsml.theorem1 import equivalent_rnn_matrix

__all__ = ["VSML", "equivalent_rnn_matrix"]
