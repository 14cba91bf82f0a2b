"""Hebbian fast-weight baseline (Miconi et al. 2018, as in the VSML reference's HebbianFW).

A single linear layer whose effective weights are W + alpha * F: W, alpha and the plasticity rate
are meta-learned, F is a fast weight changed by a local Hebbian rule after every feedback. It can
only learn what a correlation rule between inputs and its own (feedback-driven) outputs captures.
"""

from __future__ import annotations

import torch

from agents.learner import Learner, Observation, State
from agents.nets import Encoder, bound, init_weights, linear
from agents.params import ParamSpec

RULES = ("oja", "hebb")


class Hebbian(Learner):
    """logits = x' (W + alpha * F) + b with x' = [features(x), aux]; aux = 0 when predicting.

    Feedback at step t is about x_{t-1}, which the state keeps: the layer is re-run on
    x' = [x_{t-1}, error, label], y = softmax of that (unbounded) output, and F is updated by
    Oja's rule F_ij += eta y_j (x'_i - y_j F_ij) or by F_ij = (1 - eta) F_ij + eta x'_i y_j, with
    eta = sigmoid(eta_logit). The update runs at every step without a mask: at t = 0 the stored
    input and the feedback are zeros, so x' = 0 and, F being zero at the episode start, both rules
    leave F at exactly zero, as in the reference where the first update follows the first label.
    `use_conv` adds the reference's encoder (3 x conv 3x3 stride 2, 8 channels; relu, relu, tanh);
    its features are what the state keeps."""

    name = "hebbian"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, rule: str = "oja",
                 tanh_bound: float = 100.0, use_conv: bool = False) -> None:
        super().__init__(input_shape, num_classes)
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        self.encoder = Encoder(self.input_shape, (8, 8, 8) if use_conv else (),
                               (torch.relu, torch.relu, torch.tanh) if use_conv else ())
        self.features = self.encoder.out_features
        inputs = self.features + 2 * self.num_classes
        self.param_spec = ParamSpec.of(**self.encoder.shapes, out_w=(inputs, self.num_classes), out_b=(self.num_classes,),
                                       alpha=(inputs, self.num_classes), eta_logit=())
        self.rule = rule
        self.tanh_bound = tanh_bound
        self.config = {"rule": rule, "tanh_bound": tanh_bound, "use_conv": use_conv}

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        shapes = dict(self.param_spec.shapes)
        named = init_weights({k: v for k, v in shapes.items() if k not in ("alpha", "eta_logit")}, generator)
        return {**named, "alpha": torch.full(shapes["alpha"], 0.01), "eta_logit": torch.tensor(-4.5)}

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        population = params.shape[0]
        inputs = self.features + 2 * self.num_classes
        return {"fast": params.new_zeros(population, batch, inputs, self.num_classes),
                "prev_x": params.new_zeros(population, batch, self.features)}

    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        p = self.param_spec.unflatten(params)
        x = self.encoder(obs["x"], p)
        feedback = torch.cat([state["prev_x"], obs["error"], obs["label"]], dim=-1)
        y = torch.softmax(self._layer(p, state["fast"], feedback), dim=-1)
        fast = self._update(state["fast"], feedback, y, torch.sigmoid(p["eta_logit"]).view(-1, 1, 1, 1))
        predict = torch.cat([x, torch.zeros_like(obs["error"]), torch.zeros_like(obs["label"])], dim=-1)
        logits = bound(self._layer(p, fast, predict), self.tanh_bound)
        return logits, {"fast": fast, "prev_x": x}

    @staticmethod
    def _layer(p: dict[str, torch.Tensor], fast: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x (P, B, I) through W + alpha * F (F per stream)."""
        return linear(x, p["out_w"], p["out_b"]) + torch.einsum("pbi,pbio->pbo", x, p["alpha"].unsqueeze(1) * fast)

    def _update(self, fast: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        x, y = x.unsqueeze(-1), y.unsqueeze(-2)
        if self.rule == "oja":
            return fast + eta * y * (x - y * fast)
        return (1 - eta) * fast + eta * x * y
