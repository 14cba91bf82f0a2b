"""VSML layers: a grid of sub-LSTMs, one per weight, stepped in one batched tick.

Shapes (P population members, B streams, N state size, M message size):
- dense layer A -> O: states (P, B, A, O, N); incoming forward messages (P, B, A, M), incoming
  backward messages (P, B, O, M); outgoing forward (P, B, O, M) and backward (P, B, A, M).
- conv layer (Ci, H, W) -> (Co, Ho, Wo): one sub-LSTM per kernel entry, states (P, B, A, Co, N)
  with A = Ci * K * K; messages in channel-first layout (P, B, C, H, W, M).
"""

from __future__ import annotations

import math
import os
from typing import Callable

import torch
import torch.nn.functional as F

from agents.vsml.cpu_ticks import cpu_dense_layer, cpu_tick_supported
from agents.vsml.sub_lstm import (SubLSTMParams, lstm_update, member_matmul, message_rows, per_member, read_out,
                                  records_gradient)
from agents.vsml.triton_layer import fused_dense_layer, fused_layer_supported

#: set VSML_GYM_FUSED_KERNEL=0 to run the eager tick on the GPU too (e.g. to compare)
FUSED_KERNEL_ENABLED = os.environ.get("VSML_GYM_FUSED_KERNEL", "1") != "0"


def _coordinates(count: int, device: torch.device) -> torch.Tensor:
    """Positions 0..count-1 scaled to [0, 1] (a single unit sits at 0)."""
    return torch.linspace(0.0, 1.0, count, device=device) if count > 1 else torch.zeros(1, device=device)


class Layer:
    """Shared geometry of a VSML layer: A x O sub-LSTMs and their coordinates."""

    fan_in: int
    num_in: int  # A: sub-LSTM rows (input units, or kernel entries for conv)
    num_out: int  # O: sub-LSTM columns (output units / channels)
    in_shape: tuple[int, ...]  # shape of incoming forward messages without (P, B) and M
    out_shape: tuple[int, ...]  # shape of outgoing forward messages without (P, B) and M

    def _a_term(self, p: SubLSTMParams) -> torch.Tensor:
        """(P, A, 4N): the gate input of the a-coordinate (depends on the row a only)."""
        a = _coordinates(self.num_in, p.w_h.device)
        return a.view(1, -1, 1) * p.w_coord[:, 0].unsqueeze(1)

    def _coordinate_b_term(self, p: SubLSTMParams, coords: tuple[float, float]) -> torch.Tensor:
        """(P, O, 4N): the gate input of the b, layer and time coordinates."""
        layer, time = coords
        _, wb, wl, wt = p.w_coord.unbind(1)  # (P, 4N) each
        b = _coordinates(self.num_out, p.w_h.device).view(1, -1, 1)
        return b * wb.unsqueeze(1) + (layer * wl + time * wt).unsqueeze(1)

    def _b_term(self, p: SubLSTMParams, bwd: torch.Tensor, coords: tuple[float, float] | None) -> torch.Tensor:
        """Gate input of the backward message, bias and the b/layer/time coordinates: (P, ..., O, 4N)."""
        v = member_matmul(bwd, message_rows(p.w_bwd, bwd)) + per_member(p.bias, bwd.dim())
        if coords is not None:  # the O axis is the last but one
            term = self._coordinate_b_term(p, coords)
            v = v + term.view(term.shape[0], *([1] * (v.dim() - 3)), *term.shape[1:])
        return v


class DenseLayer(Layer):
    def __init__(self, in_size: int, out_size: int) -> None:
        self.fan_in = self.num_in = in_size
        self.num_out = out_size
        self.in_shape, self.out_shape = (in_size,), (out_size,)

    def run(self, p: SubLSTMParams, h: torch.Tensor, c: torch.Tensor, fwd: torch.Tensor, bwd: torch.Tensor,
            ticks: int = 1, coords: tuple[float, float] | None = None, clip: float | None = None,
            donated: bool = False) -> tuple[torch.Tensor, ...]:
        """`ticks` steps of all A x O sub-LSTMs on fixed incoming messages; returns
        (h, c, outgoing forward, outgoing backward) after the last tick. `donated`: the caller
        never reads h and c again (the CPU kernel may then write the new states over them)."""
        kernel = _layer_kernel(h, c, fwd, bwd, p.w_h)
        if kernel is not None:  # the whole layer step in one C++ call / Triton launch
            u_add, v_add = (None, None) if coords is None else (self._a_term(p), self._coordinate_b_term(p, coords))
            h, c, fwd_out, bwd_out = kernel(p, h, c, fwd, bwd, ticks, clip, u_add, v_add, donated)
            if fwd_out is not None:  # the kernels take the linear read-outs; layer-normed ones follow
                return h, c, fwd_out, bwd_out
        else:
            pop = h.shape[0]
            u = member_matmul(fwd, message_rows(p.w_fwd, fwd))  # (P, B, A, 4N)
            if coords is not None:
                u = u + self._a_term(p).unsqueeze(1)
            v = self._b_term(p, bwd, coords)  # (P, B, O, 4N)
            inputs = (u.unsqueeze(3) + v.unsqueeze(2)).view(pop, -1, u.shape[-1])  # the same for every tick
            for _ in range(ticks):
                gates = torch.baddbmm(inputs, h.view(pop, -1, h.shape[-1]), p.w_h).view(*h.shape[:-1], -1)
                h, c = _clipped(*lstm_update(gates, c), clip)
        ln = p.ln or {}
        return h, c, read_out(h, p.fwd_w, p.fwd_b, ln.get("fwd"), 2), read_out(h, p.bwd_w, p.bwd_b, ln.get("bwd"), 3)


class ConvLayer(Layer):
    """SAME-padded convolution: the kernel's sub-LSTMs run at every output position from the same
    state, then their new states are averaged over positions (a shared kernel). Forward messages
    are averaged over the kernel window; backward messages go back to the input positions they
    came from and are averaged over the K x K kernel offsets (zeros where no output position).
    The step is eager torch on either device (`run` accepts `donated` and writes fresh states)."""

    def __init__(self, in_shape: tuple[int, int, int], channels: int, kernel: int = 3, stride: int = 1) -> None:
        if kernel % 2 == 0 or kernel < 1 or stride < 1:
            raise ValueError(f"conv layers need an odd kernel and a positive stride, got kernel={kernel}, stride={stride}")
        ci, height, width = in_shape
        self.kernel, self.stride, self.padding = kernel, stride, kernel // 2
        self.in_shape = tuple(in_shape)
        self.out_hw = (math.ceil(height / stride), math.ceil(width / stride))
        self.out_shape = (channels, *self.out_hw)
        self.fan_in = self.num_in = ci * kernel * kernel
        self.num_out = channels

    def run(self, p: SubLSTMParams, h: torch.Tensor, c: torch.Tensor, fwd: torch.Tensor, bwd: torch.Tensor,
            ticks: int = 1, coords: tuple[float, float] | None = None, clip: float | None = None,
            donated: bool = False) -> tuple[torch.Tensor, ...]:
        pop, batch = h.shape[:2]
        ci, height, width = self.in_shape
        k, m, n4 = self.kernel, p.fwd_w.shape[-1], p.w_h.shape[-1]
        positions = self.out_hw[0] * self.out_hw[1]
        # forward side per input position, gathered per (output position, kernel entry)
        u_grid = member_matmul(fwd, message_rows(p.w_fwd, fwd))  # (P, B, Ci, H, W, 4N)
        u_grid = u_grid.permute(0, 1, 2, 5, 3, 4).reshape(pop * batch, ci * n4, height, width)
        u = F.unfold(u_grid, k, padding=self.padding, stride=self.stride)  # (PB, Ci*4N*K*K, L)
        u = u.view(pop, batch, ci, n4, k * k, positions).permute(0, 1, 5, 2, 4, 3).reshape(pop, batch, positions, -1, n4)
        if coords is not None:
            u = u + self._a_term(p).view(pop, 1, 1, self.num_in, n4)
        v = self._b_term(p, bwd.flatten(3, 4).permute(0, 1, 3, 2, 4), coords)  # (P, B, L, Co, 4N)
        inputs = u.unsqueeze(4) + v.unsqueeze(3)  # (P, B, L, A, Co, 4N), the same for every tick
        for _ in range(ticks):
            gates = inputs + member_matmul(h, p.w_h).unsqueeze(2)
            h_pos, c_pos = lstm_update(gates, c.unsqueeze(2))
            h, c = _clipped(h_pos.mean(2), c_pos.mean(2), clip)
        ln = p.ln or {}
        fwd_out = read_out(h_pos, p.fwd_w, p.fwd_b, ln.get("fwd"), 3)  # (P, B, L, Co, M)
        fwd_out = fwd_out.permute(0, 1, 3, 2, 4).reshape(pop, batch, *self.out_shape, m)
        bwd_pos = read_out(h_pos, p.bwd_w, p.bwd_b, ln.get("bwd"), 4)  # (P, B, L, A, M), A = (ci, ki, kj)
        bwd_pos = bwd_pos.view(pop, batch, positions, ci, k * k, m).permute(0, 1, 3, 5, 4, 2)
        bwd_out = F.fold(bwd_pos.reshape(pop * batch, ci * m * k * k, positions), (height, width), k,
                         padding=self.padding, stride=self.stride) / (k * k)
        bwd_out = bwd_out.view(pop, batch, ci, m, height, width).permute(0, 1, 2, 4, 5, 3)
        return h, c, fwd_out, bwd_out


def _layer_kernel(*tensors: torch.Tensor) -> Callable[..., tuple[torch.Tensor, ...]] | None:
    """The fused dense-layer step for these tensors: the Triton kernel on the GPU, the C++ one on
    the CPU, or None (eager torch). Neither kernel has a backward: None while a gradient is
    being recorded. VSML_GYM_FUSED_KERNEL=0 / VSML_GYM_CPU_KERNEL=0 switch them off (to compare)."""
    if records_gradient(*tensors):
        return None
    if FUSED_KERNEL_ENABLED and fused_layer_supported(*tensors):
        return fused_dense_layer
    if cpu_tick_supported(*tensors):
        return cpu_dense_layer
    return None


def _clipped(h: torch.Tensor, c: torch.Tensor, clip: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    if clip is None:
        return h, c
    return h.clamp(-clip, clip), c.clamp(-clip, clip)
