"""Meta RNN baseline: one LSTM that sees inputs and feedback and must learn in its activations.

Black-box meta-learning (Hochreiter et al. 2001; Santoro et al. 2016): all the learning happens in
the LSTM state, so the number of meta-parameters grows with the square of the hidden size.
"""

from __future__ import annotations

import torch

from agents.learner import Learner, Observation, State, check_positive
from agents.nets import Encoder, bound, init_weights, linear, lstm
from agents.params import ParamSpec


class MetaRNN(Learner):
    """LSTM fed [features(x_t), error_{t-1}, onehot(y_{t-1})], `num_micro_ticks` steps per example,
    linear read-out to bounded logits. `use_conv` adds the reference's encoder
    (3 x conv 3x3 stride 2, 64 channels; relu, relu, tanh) as meta-parameters."""

    name = "meta_rnn"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden_size: int = 128,
                 num_micro_ticks: int = 2, tanh_bound: float = 100.0, use_conv: bool = False) -> None:
        super().__init__(input_shape, num_classes)
        check_positive(hidden_size=hidden_size, num_micro_ticks=num_micro_ticks)
        self.encoder = Encoder(self.input_shape, (64, 64, 64) if use_conv else (),
                               (torch.relu, torch.relu, torch.tanh) if use_conv else ())
        inputs = self.encoder.out_features + 2 * self.num_classes
        self.param_spec = ParamSpec.of(
            **self.encoder.shapes,
            lstm_w=(inputs + hidden_size, 4 * hidden_size), lstm_b=(4 * hidden_size,),
            out_w=(hidden_size, self.num_classes), out_b=(self.num_classes,))
        self.hidden_size = hidden_size
        self.num_micro_ticks = num_micro_ticks
        self.tanh_bound = tanh_bound
        self.config = {"hidden_size": hidden_size, "num_micro_ticks": num_micro_ticks, "tanh_bound": tanh_bound,
                       "use_conv": use_conv}

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return init_weights(dict(self.param_spec.shapes), generator)

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        zeros = params.new_zeros(params.shape[0], batch, self.hidden_size)
        return {"h": zeros, "c": zeros.clone()}

    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        p = self.param_spec.unflatten(params)
        x = torch.cat([self.encoder(obs["x"], p), obs["error"], obs["label"]], dim=-1)
        h, c = lstm(x, state["h"], state["c"], p["lstm_w"], p["lstm_b"], self.num_micro_ticks)
        return bound(linear(h, p["out_w"], p["out_b"]), self.tanh_bound), {"h": h, "c": c}
