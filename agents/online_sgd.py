"""Hand-designed baselines: a small network trained online by SGD or Adam inside each episode.

Nothing is meta-learned (no meta-parameters); every stream owns its network and optimiser state,
drawn fresh at the episode start, so the learner fits the same (P, B) protocol as the learned ones.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from agents.learner import Learner, Observation, State, check_positive
from agents.nets import Encoder, bound, init_weights, linear


class GradientLearner(Learner):
    """Online gradient descent with batch size 1: predict x_t, then learn once its label is known.

    obs["error"] at step t is dCE/dlogits of the previous (bounded) prediction, so the step first
    re-runs the network on the stored x_{t-1} with the not yet updated weights, backpropagates the
    error, applies one optimiser update, and only then predicts x_t. A state flag records whether
    a previous input exists; at t = 0 weights and optimiser state (Adam's step count included) stay
    as they are.

    Network: optional encoder (3 x conv 3x3 stride 2 SAME, 8 channels, tanh), then `num_layers`
    linear layers with tanh between them (`hidden_size` units), logits bounded by `tanh_bound`.
    """

    meta_learned = False
    default_lr = 0.0

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, num_layers: int = 1,
                 hidden_size: int = 160, lr: float | None = None, tanh_bound: float = 100.0,
                 use_conv: bool = False) -> None:
        super().__init__(input_shape, num_classes)
        check_positive(num_layers=num_layers, hidden_size=hidden_size, lr=lr)
        self.encoder = Encoder(self.input_shape, (8, 8, 8) if use_conv else (), (torch.tanh,) * 3 if use_conv else ())
        sizes = [self.encoder.out_features] + [hidden_size] * (num_layers - 1) + [self.num_classes]
        self.num_layers = num_layers
        self.net_shapes = dict(self.encoder.shapes)
        for i in range(num_layers):
            self.net_shapes[f"fc{i}_w"] = (sizes[i], sizes[i + 1])
            self.net_shapes[f"fc{i}_b"] = (sizes[i + 1],)
        self.lr = self.default_lr if lr is None else lr
        self.tanh_bound = tanh_bound
        self.config = {"num_layers": num_layers, "hidden_size": hidden_size, "lr": self.lr,
                       "tanh_bound": tanh_bound, "use_conv": use_conv}

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {}

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        lead = (params.shape[0], batch)
        weights = init_weights(self.net_shapes, generator, lead, params.device)
        return {**weights, **self._optimizer_state(weights, lead),
                "prev_x": params.new_zeros(*lead, *self.input_shape),
                "has_prev": torch.zeros(lead, dtype=torch.bool, device=params.device)}

    def forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Bounded logits (P, B, C) of x (P, B, *input_shape) under per-stream `weights`."""
        h = self.encoder(x, weights)
        for i in range(self.num_layers):
            h = linear(h, weights[f"fc{i}_w"], weights[f"fc{i}_b"])
            if i < self.num_layers - 1:
                h = torch.tanh(h)
        return bound(h, self.tanh_bound)

    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        with torch.enable_grad():
            leaves = {k: state[k].detach().requires_grad_() for k in self.net_shapes}
            surrogate = (self.forward(leaves, state["prev_x"]) * obs["error"].detach()).sum()
            grads = dict(zip(leaves, torch.autograd.grad(surrogate, list(leaves.values()))))
        active = state["has_prev"]
        updated = {k: torch.where(active.view(*active.shape, *[1] * (v.dim() - 2)), v, state[k])
                   for k, v in self._update(state, grads).items()}
        new_state = {**state, **updated, "prev_x": obs["x"], "has_prev": torch.ones_like(active)}
        return self.forward(new_state, obs["x"]), new_state

    def _optimizer_state(self, weights: dict[str, torch.Tensor], lead: tuple[int, ...]) -> State:
        """Optimiser state tensors (P, B, ...) added to the learner state."""
        return {}

    @abstractmethod
    def _update(self, state: State, grads: dict[str, torch.Tensor]) -> State:
        """New weights and optimiser state after one step on `grads` (gated by the caller)."""


class SGDLearner(GradientLearner):
    """Plain SGD, w <- w - lr * g (lr 1e-2 from the reference's grid search)."""

    name = "sgd"
    default_lr = 1e-2

    def _update(self, state: State, grads: dict[str, torch.Tensor]) -> State:
        return {k: state[k] - self.lr * g for k, g in grads.items()}


class AdamLearner(GradientLearner):
    """Adam exactly as `torch.optim.Adam` (betas 0.9/0.999, eps 1e-8, bias correction; lr 1e-3
    from the reference's grid search); the step count only counts real updates."""

    name = "adam"
    default_lr = 1e-3
    betas = (0.9, 0.999)
    eps = 1e-8

    def _optimizer_state(self, weights: dict[str, torch.Tensor], lead: tuple[int, ...]) -> State:
        moments = {f"{moment}_{k}": torch.zeros_like(w) for k, w in weights.items() for moment in ("m", "v")}
        return {**moments, "step": torch.zeros(lead, device=next(iter(weights.values())).device)}

    def _update(self, state: State, grads: dict[str, torch.Tensor]) -> State:
        beta1, beta2 = self.betas
        step = state["step"] + 1
        step_size = self.lr / (1 - beta1 ** step)
        correction2_sqrt = (1 - beta2 ** step).sqrt()
        new = {"step": step}
        for k, g in grads.items():
            lead = (*step.shape, *[1] * (g.dim() - 2))
            m = torch.lerp(state[f"m_{k}"], g, 1 - beta1)
            v = state[f"v_{k}"] * beta2 + (1 - beta2) * g * g
            denom = v.sqrt() / correction2_sqrt.view(lead) + self.eps
            new.update({f"m_{k}": m, f"v_{k}": v, k: state[k] - step_size.view(lead) * m / denom})
        return new
