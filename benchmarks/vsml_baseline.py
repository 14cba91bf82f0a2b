"""The straightforward batched VSML dense layer, kept as the baseline of `perf_vsml.py`.

Written plainly from the specification: every sub-LSTM (a, b) gets its full input
[forward message of a, backward message of b, h_ab], one linear map gives its gates, and each
sub-LSTM computes both read-outs before the messages are averaged. No factoring, no fusing.
"""

from __future__ import annotations

import torch


def baseline_dense_tick(named: dict[str, torch.Tensor], h: torch.Tensor, c: torch.Tensor, fwd: torch.Tensor,
                        bwd: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """h, c (P, B, A, O, N); fwd (P, B, A, M); bwd (P, B, O, M); named: (P, ...) meta-parameters."""
    pop, batch, num_a, num_o, n = h.shape
    inputs = torch.cat([
        fwd.unsqueeze(3).expand(-1, -1, -1, num_o, -1),
        bwd.unsqueeze(2).expand(-1, -1, num_a, -1, -1),
        h,
    ], dim=-1)
    gates = torch.einsum("pbaoi,pig->pbaog", inputs, named["lstm_w"]) + named["lstm_b"].view(pop, 1, 1, 1, -1)
    i, g, f, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f + 5.0) * c + torch.sigmoid(i - 5.0) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    fwd_msgs = torch.einsum("pbaon,pnm->pbaom", h, named["fwd_w"]) + named["fwd_b"].view(pop, 1, 1, 1, -1)
    bwd_msgs = torch.einsum("pbaon,pnm->pbaom", h, named["bwd_w"]) + named["bwd_b"].view(pop, 1, 1, 1, -1)
    return h, c, fwd_msgs.mean(2), bwd_msgs.mean(3)


def baseline_step(named: dict[str, torch.Tensor], state: dict[str, torch.Tensor], x: torch.Tensor,
                  error: torch.Tensor, num_micro_ticks: int = 2, output_idx: int = 1) -> torch.Tensor:
    """One example through a single dense VSML layer (the MNIST workload); updates `state` in place."""
    message_size = named["fwd_w"].shape[-1]
    fwd = torch.zeros(*x.shape, message_size, device=x.device)
    fwd[..., 0] = x
    bwd = torch.zeros(*error.shape, message_size, device=x.device)
    bwd[..., 0] = error
    h, c = state["h0"], state["c0"]
    for _ in range(num_micro_ticks):
        h, c, fwd_out, _ = baseline_dense_tick(named, h, c, fwd, bwd)
    state["h0"], state["c0"] = h, c
    return torch.tanh(fwd_out[..., output_idx] / 100.0) * 100.0
