"""Fast-weight memory baseline (Schlag et al. 2021, as in the VSML reference's FWMemory).

An LSTM controller with a tensor-product memory written by a delta rule: more storage than the
LSTM state for few extra meta-parameters, but the learning algorithm is still a black box.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agents.learner import Learner, Observation, State, check_positive
from agents.nets import Encoder, bound, init_weights, linear, lstm
from agents.params import ParamSpec


def _outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Flattened outer product of (..., m) vectors: (..., m * m), entry i * m + j = a_i b_j."""
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(start_dim=-2)


class FWMemory(Learner):
    """Per example: one LSTM step on [features(x_t), error_{t-1}, onehot(y_{t-1})]; from its output
    h a write head gives keys k1, k2, value v (tanh, m each) and beta = sigmoid(.); with key
    k = k1 (x) k2 the memory M (m, m^2) becomes M + beta (v - M k) k^T, then M / max(1, |M|_F); a read
    head gives n, e (tanh) and r = layer_norm(M (n (x) e)); logits = bound(out(h + proj(r))).
    The layer norm has no scale/offset, as in the reference (the projection after it subsumes
    them). `use_conv` adds the reference's encoder (3 x conv 3x3 stride 2, 8 channels; relu, relu,
    tanh)."""

    name = "fw_memory"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden_size: int = 32,
                 memory_size: int = 16, tanh_bound: float = 100.0, use_conv: bool = False) -> None:
        super().__init__(input_shape, num_classes)
        check_positive(hidden_size=hidden_size, memory_size=memory_size)
        self.encoder = Encoder(self.input_shape, (8, 8, 8) if use_conv else (),
                               (torch.relu, torch.relu, torch.tanh) if use_conv else ())
        inputs = self.encoder.out_features + 2 * self.num_classes
        m, h = memory_size, hidden_size
        self.param_spec = ParamSpec.of(
            **self.encoder.shapes,
            lstm_w=(inputs + h, 4 * h), lstm_b=(4 * h,),
            write_w=(h, 3 * m + 1), write_b=(3 * m + 1,),
            read_w=(h, 2 * m), read_b=(2 * m,),
            read_proj_w=(m, h), read_proj_b=(h,),
            out_w=(h, self.num_classes), out_b=(self.num_classes,))
        self.hidden_size = hidden_size
        self.memory_size = memory_size
        self.tanh_bound = tanh_bound
        self.config = {"hidden_size": hidden_size, "memory_size": memory_size, "tanh_bound": tanh_bound,
                       "use_conv": use_conv}

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return init_weights(dict(self.param_spec.shapes), generator)

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        population, m = params.shape[0], self.memory_size
        zeros = params.new_zeros(population, batch, self.hidden_size)
        return {"h": zeros, "c": zeros.clone(), "memory": params.new_zeros(population, batch, m, m * m)}

    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        p = self.param_spec.unflatten(params)
        x = torch.cat([self.encoder(obs["x"], p), obs["error"], obs["label"]], dim=-1)
        h, c = lstm(x, state["h"], state["c"], p["lstm_w"], p["lstm_b"])

        write = linear(h, p["write_w"], p["write_b"])
        beta = torch.sigmoid(write[..., -1:]).unsqueeze(-1)
        k1, k2, value = torch.tanh(write[..., :-1]).chunk(3, dim=-1)
        key = _outer(k1, k2)
        memory = state["memory"]
        old_value = torch.matmul(memory, key.unsqueeze(-1)).squeeze(-1)
        memory = memory + beta * (value - old_value).unsqueeze(-1) * key.unsqueeze(-2)
        memory = memory / torch.linalg.vector_norm(memory, dim=(-2, -1), keepdim=True).clamp(min=1.0)

        n, e = torch.tanh(linear(h, p["read_w"], p["read_b"])).chunk(2, dim=-1)
        read = torch.matmul(memory, _outer(n, e).unsqueeze(-1)).squeeze(-1)
        read = F.layer_norm(read, (self.memory_size,), eps=1e-5)
        out = h + linear(read, p["read_proj_w"], p["read_proj_b"])
        logits = bound(linear(out, p["out_w"], p["out_b"]), self.tanh_bound)
        return logits, {"h": h, "c": c, "memory": memory}
