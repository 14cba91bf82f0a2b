"""What a cloned sub-LSTM must compute: online backprop of a dense layer, one weight per sub-LSTM.

The sub-LSTM at connection (a, b) keeps its weight and bias in two cell-state dimensions,
stored divided by `scale` (4) so that |w| <= 4 fits the LSTM's range:

    w_ab = scale * c_ab[WEIGHT_DIM],   b_ab = scale * c_ab[BIAS_DIM]

Both dims lie in the first half of the state, the half that batched LA (`batch_average`)
averages over the batch, so averaging the per-example updates gives the batch-mean gradient step.
With x_a the incoming forward message (channel 0) and e_b the incoming backward message
(channel 0) of the sub-LSTM:

- forward message (channel 0)      y_ab  = tanh(x_a) * w_ab + b_ab
- backward message (channel 0)     d_ab  = e_b * w_ab * (1 - tanh(x_a)^2)    ("exact")
                                        or e_b * w_ab                        ("spec", SPEC 6)
- update  w_ab <- w_ab - lr * tanh(x_a) * e_b,   b_ab <- b_ab - bias_lr * e_b, applied (batch
  mean) by the forward tick after the error tick; the error tick itself leaves w and b as they
  are and sends its backward message from them (true backprop: old weights). See `train.py`
  for why the update cannot happen inside the error tick.

VSML averages messages over connections, so the layer is the dense layer
z_b = mean_a(tanh(x_a) w_ab) + mean_a(b_ab), and the error reaching input a is
mean_b(e_b w_ab) tanh'(x_a). With the "exact" backward message this is backprop of that network
(the tanh on a layer's input is the activation of the previous layer), except for two constant
factors that VSML's means put in: per layer, the effective weights are W_eff = w / A (A = fan-in),
so the update w <- w - lr tanh(x) e is SGD on W_eff with learning rate lr / A (biases: bias_lr), and
the error handed down is (A_next / O_next) times the true one (mean over the O_next outputs
instead of the 1 / A_next of W_eff). `BackpropReference` is true online backprop (autograd-
equivalent SGD, old weights in the backward pass) of that very network with exactly these
per-tensor learning rates: the fair "same architecture, same learning rate" baseline. With the
"spec" message the hidden error lacks tanh'(x_a): not the gradient of any loss, a sign-preserving
approximation only, hence "exact" is the default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from agents.learner import Learner, Observation, State
from agents.params import ParamSpec, truncated_normal

WEIGHT_DIM, BIAS_DIM = 0, 1
BACKWARD_MODES = ("exact", "spec")


@dataclass(frozen=True)
class CloneTargets:
    """The learning algorithm to clone: learning rate, storage scale and backward message."""

    lr: float = 1.0
    bias_lr: float = 1.0
    scale: float = 4.0
    backward: str = "exact"

    def __post_init__(self) -> None:
        if self.backward not in BACKWARD_MODES:
            raise ValueError(f"backward must be one of {BACKWARD_MODES}, got {self.backward!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    # -- views of the state ----------------------------------------------------------------------
    def weight(self, c: torch.Tensor) -> torch.Tensor:
        return self.scale * c[..., WEIGHT_DIM]

    def bias(self, c: torch.Tensor) -> torch.Tensor:
        return self.scale * c[..., BIAS_DIM]

    # -- the algorithm ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * w + b

    def backward_message(self, x: torch.Tensor, e: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        message = e * w
        if self.backward == "exact":
            message = message * (1 - torch.tanh(x) ** 2)
        return message

    def update(self, x: torch.Tensor, e: torch.Tensor, w: torch.Tensor, b: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return w - self.lr * torch.tanh(x) * e, b - self.bias_lr * e

    def error_scale(self, sizes: Sequence[int], layer: int) -> float:
        """Factor of the error the clone hands to `layer` over the true dL/dz of that layer."""
        return math.prod(sizes[k] / sizes[k + 1] for k in range(layer + 1, len(sizes) - 1))

    def sgd_learning_rates(self, sizes: Sequence[int]) -> list[tuple[float, float]]:
        """(lr of W_eff, lr of b) per layer of the dense net `sizes` (e.g. [784, 32, 10]) under
        which plain SGD on z = tanh(x) @ W_eff + b equals the cloned algorithm."""
        return [(self.lr * self.error_scale(sizes, l) / sizes[l], self.bias_lr * self.error_scale(sizes, l))
                for l in range(len(sizes) - 1)]


class BackpropReference(Learner):
    """True online backprop of the network the clone implements, with the same learning rates.

    Network: z_l = mean_a(tanh(x_a) w_ab) + b_b per dense layer (x of layer 0: the flattened
    input, of layer l > 0: z_{l-1}), logits bounded by `tanh_bound`. Step t first learns from
    (x_{t-1}, error_t) by backprop (old weights; the error to layer l - 1 is mean_b(e_b w_ab)
    tanh'(x_a), or without tanh' for backward="spec"), w <- w - lr tanh(x) e, b <- b - lr e, then
    predicts x_t. `batch_average`: the B streams of a member form one learner (the update is
    averaged over them), as VSML's batched LA. Initial weights: w = 4 * truncated normal with std
    1 / sqrt(A) (VSML's random cell init in the weight dim), b = 0. No meta-parameters.
    """

    name = "backprop_reference"
    meta_learned = False

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, hidden: Sequence[int] = (),
                 lr: float = 1.0, bias_lr: float | None = None, backward: str = "exact", batch_average: bool = True,
                 tanh_bound: float = 100.0, init_scale: float = 4.0, weight_clip: float | None = None) -> None:
        super().__init__(input_shape, num_classes)
        self.sizes = [math.prod(self.input_shape), *hidden, self.num_classes]
        self.targets = CloneTargets(lr=lr, bias_lr=lr if bias_lr is None else bias_lr, backward=backward)
        self.batch_average, self.tanh_bound, self.init_scale = batch_average, tanh_bound, init_scale
        self.weight_clip = weight_clip
        self.param_spec = ParamSpec.of()
        self.config = {"hidden": list(hidden), "lr": lr, "bias_lr": self.targets.bias_lr, "backward": backward, "batch_average": batch_average,
                       "tanh_bound": tanh_bound, "init_scale": init_scale, "weight_clip": weight_clip}

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {}

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        pop, device = params.shape[0], params.device
        draws = 1 if self.batch_average else batch
        state: State = {"t": 0}
        for l, (a, o) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = self.init_scale * truncated_normal((pop, draws, a, o), 1.0 / math.sqrt(a), generator, device)
            state[f"w{l}"] = w.expand(pop, batch, a, o).contiguous()
            state[f"b{l}"] = torch.zeros(pop, batch, o, device=device)
            state[f"x{l}"] = torch.zeros(pop, batch, a, device=device)
        return state

    def forward(self, state: State, x: torch.Tensor) -> torch.Tensor:
        """Logits (unbounded) of x (P, B, A0); records every layer's input in `state`."""
        for l in range(len(self.sizes) - 1):
            state[f"x{l}"] = x
            x = torch.einsum("pba,pbao->pbo", torch.tanh(x), state[f"w{l}"]) / self.sizes[l] + state[f"b{l}"]
        return x

    def learn(self, state: State, error: torch.Tensor) -> None:
        """One backprop step on the recorded inputs with the error of the output layer."""
        e = error
        for l in range(len(self.sizes) - 2, -1, -1):
            x, w = state[f"x{l}"], state[f"w{l}"]
            tx = torch.tanh(x)
            if l > 0:  # error handed down, with the old weights (true backprop)
                down = torch.einsum("pbao,pbo->pba", w, e) / self.sizes[l + 1]
                if self.targets.backward == "exact":
                    down = down * (1 - tx ** 2)
            dw = tx.unsqueeze(-1) * e.unsqueeze(-2)
            db = e
            if self.batch_average:
                dw = dw.mean(1, keepdim=True)
                db = db.mean(1, keepdim=True)
            w, b = w - self.targets.lr * dw, state[f"b{l}"] - self.targets.bias_lr * db
            if self.weight_clip is not None:
                w, b = w.clamp(-self.weight_clip, self.weight_clip), b.clamp(-self.weight_clip, self.weight_clip)
            state[f"w{l}"], state[f"b{l}"] = w, b
            if l > 0:
                e = down

    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        state = dict(state)
        if state["t"] > 0:
            self.learn(state, obs["error"])
        logits = self.forward(state, obs["x"].flatten(2))
        state["t"] = state["t"] + 1
        if self.tanh_bound:
            logits = torch.tanh(logits / self.tanh_bound) * self.tanh_bound
        return logits, state
