"""The VSML sub-LSTM: one tiny LSTM per weight, all sharing one set of meta-parameters.

The sub-LSTM at connection (a, b) reads [forward message of input a, backward message of
output b, (coordinates), h_ab] through ONE linear map to the 4N gates, split (i, g, f, o) in the
meta-parameters. The input part of that map depends only on a or only on b, so it is computed
once per unit and broadcast (and once per layer pass: it is the same for every micro tick); only
the recurrent part h_ab @ W_h is computed per connection. Internally the gate columns are
reordered to (i, f, o, g) with the +-5 gate shifts folded into the bias and the g columns
doubled, so one sigmoid covers all four gates (tanh(x) = 2 sigmoid(2x) - 1, and torch's sigmoid
is several times faster than its tanh on CPU). Read-outs are linear, so the mean of the read-outs over connections is the read-out
of the mean state (unless layer norm intervenes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_COORDINATES = 4  # position a, position b, layer index, time step
FORGET_BIAS, INPUT_BIAS = 5.0, -5.0  # gates start remembering and not writing: states act as weights


@dataclass(frozen=True)
class SubLSTMShape:
    state_size: int = 16  # N
    message_size: int = 8  # M
    coordinates: bool = False
    layer_norm: bool = False

    @property
    def input_size(self) -> int:
        return 2 * self.message_size + (NUM_COORDINATES if self.coordinates else 0)

    def param_shapes(self, prefix: str = "") -> dict[str, tuple[int, ...]]:
        n, m = self.state_size, self.message_size
        shapes = {
            f"{prefix}lstm_w": (self.input_size + n, 4 * n),
            f"{prefix}lstm_b": (4 * n,),
            f"{prefix}fwd_w": (n, m),
            f"{prefix}fwd_b": (m,),
            f"{prefix}bwd_w": (n, m),
            f"{prefix}bwd_b": (m,),
        }
        if self.layer_norm:
            shapes.update({f"{prefix}fwd_ln_scale": (m,), f"{prefix}fwd_ln_offset": (m,),
                           f"{prefix}bwd_ln_scale": (m,), f"{prefix}bwd_ln_offset": (m,)})
        return shapes


@functools.lru_cache(maxsize=None)
def _gate_layout(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column order (i, g, f, o) -> (i, f, o, g), the column scale (2 for g) and the gate shifts.
    Cached per device: building them every step would copy host memory to the GPU every step."""
    order = torch.cat([torch.arange(0, n), torch.arange(2 * n, 4 * n), torch.arange(n, 2 * n)])
    scale = torch.cat([torch.ones(3 * n), torch.full((n,), 2.0)])
    shift = torch.cat([torch.full((n,), INPUT_BIAS), torch.full((n,), FORGET_BIAS), torch.zeros(2 * n)])
    return order.to(device), scale.to(device), shift.to(device)


class SubLSTMParams:
    """Named views of one sub-LSTM's meta-parameters for a population, split for factored use."""

    def __init__(self, shape: SubLSTMShape, named: dict[str, torch.Tensor], prefix: str = "") -> None:
        m = shape.message_size
        order, scale, shift = _gate_layout(shape.state_size, named[f"{prefix}lstm_w"].device)
        w = named[f"{prefix}lstm_w"][..., order] * scale  # (P, In + N, 4N)
        self.shape = shape
        self.w_fwd = w[:, :m]  # (P, M, 4N): rows read by the forward message
        self.w_bwd = w[:, m : 2 * m]  # (P, M, 4N): rows read by the backward message
        self.w_coord = w[:, 2 * m : shape.input_size]  # (P, 4, 4N) or empty
        self.w_h = w[:, shape.input_size :]  # (P, N, 4N)
        self.bias = (named[f"{prefix}lstm_b"][..., order] + shift) * scale  # (P, 4N)
        self.fwd_w, self.fwd_b = named[f"{prefix}fwd_w"], named[f"{prefix}fwd_b"]
        self.bwd_w, self.bwd_b = named[f"{prefix}bwd_w"], named[f"{prefix}bwd_b"]
        self.ln = None
        if shape.layer_norm:
            self.ln = {d: (named[f"{prefix}{d}_ln_scale"], named[f"{prefix}{d}_ln_offset"]) for d in ("fwd", "bwd")}


def records_gradient(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on `tensors` (then no in-place ops, no fused kernels)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """New (h, c) from pre-activation gates (..., 4N) in the internal order (i, f, o, 2g), shifts
    included. Without autograd `gates` is consumed (activated in place); while a gradient is
    recorded every op is out of place (autograd saves the activations)."""
    n = gates.shape[-1] // 4
    if records_gradient(gates, c):
        i, f, o, g = gates.sigmoid().split(n, dim=-1)
        c = torch.addcmul(f * c, i, g * 2.0 - 1.0)
        return (torch.sigmoid(c * 2.0) * 2.0 - 1.0) * o, c
    i, f, o, g = gates.sigmoid_().split(n, dim=-1)
    c = torch.addcmul(f * c, i, g.mul_(2.0).sub_(1.0))  # tanh(g) = 2 sigmoid(2g) - 1
    return torch.sigmoid(c * 2.0).mul_(2.0).sub_(1.0).mul_(o), c


def member_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (P, ..., K) @ w (P, K, J) -> (P, ..., J): every population member its own matrix."""
    shape = x.shape
    return torch.bmm(x.reshape(shape[0], -1, shape[-1]), w).view(*shape[:-1], w.shape[-1])


def message_rows(w: torch.Tensor, messages: torch.Tensor) -> torch.Tensor:
    """The rows of an input map (P, M, 4N) that `messages` (P, ..., K) read. Messages may carry
    only their first K <= M channels (the input units' [x], the error feedback): the others are
    zero, so their rows add nothing and are not multiplied."""
    return w[:, : messages.shape[-1]]


def per_member(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """(P, K) -> (P, 1, ..., 1, K) with `ndim` dims, to broadcast a member's vector."""
    return v.view(v.shape[0], *([1] * (ndim - 2)), v.shape[-1])


def linear_read_out(mean_h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The message of a mean state (P, ..., N) -> (P, ..., M): the read-out without layer norm."""
    out = member_matmul(mean_h, w)
    return out + per_member(b, out.dim())


def read_out(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, ln: tuple[torch.Tensor, torch.Tensor] | None,
             reduce_dim: int) -> torch.Tensor:
    """Message = mean over `reduce_dim` of the read-outs (linear, optionally layer-normed) of h.
    Without layer norm the mean is taken first: mean and linear map commute."""
    if ln is None:
        return linear_read_out(h.mean(reduce_dim), w, b)
    messages = member_matmul(h, w) + per_member(b, h.dim())
    scale, offset = ln
    messages = F.layer_norm(messages, messages.shape[-1:]) * per_member(scale, h.dim()) + per_member(offset, h.dim())
    return messages.mean(reduce_dim)
