"""A fused Triton kernel for the micro ticks of a dense VSML layer on the GPU.

One program handles a block of sub-LSTMs of one population member: it loads their states once,
and for every micro tick computes the recurrent gate part with four 16x16 matrix products (exact
fp32 by default), adds the per-input-unit and per-output-unit input terms and applies the LSTM
nonlinearity; it writes the states back after the last tick. Neither the 4N gates nor the states
between micro ticks touch global memory, which is what makes large populations fast: the eager
version writes and re-reads the gates several times per tick.

The arithmetic is the same as `sub_lstm.lstm_update` (internal gate order (i, f, o, 2g)), so
results match the eager path to float32 rounding. Usable when Triton and a CUDA device are
present (or under TRITON_INTERPRET=1, for testing on the CPU) and the state size is a power of
two >= 16.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - Triton ships with CUDA builds of torch
    triton = None

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: matrix-product precision: "ieee" (exact fp32 FMAs) or "tf32x3" (three TF32 tensor-core passes,
#: about fp32 accuracy)
PRECISION = os.environ.get("VSML_GYM_FUSED_PRECISION", "ieee")


def fused_tick_supported(h: torch.Tensor) -> bool:
    n = h.shape[-1]
    return triton is not None and (h.is_cuda or INTERPRET) and n >= 16 and n & (n - 1) == 0


if triton is not None:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _gate(h, w_base, u_rows, v_rows, cols, mask, k: tl.constexpr, N: tl.constexpr, PRECISION: tl.constexpr):
        """Activated gate chunk k: sigmoid(h @ W_k + u_k + v_k)."""
        acc = tl.dot(h, tl.load(w_base + k * N), input_precision=PRECISION)
        acc += tl.load(u_rows + k * N + cols[None, :], mask=mask, other=0.0)
        acc += tl.load(v_rows + k * N + cols[None, :], mask=mask, other=0.0)
        return _sigmoid(acc)

    @triton.jit
    def _dense_tick_kernel(h_ptr, c_ptr, u_ptr, v_ptr, w_ptr, h_out_ptr, c_out_ptr, S, A, O, clip,
                           N: tl.constexpr, TICKS: tl.constexpr, CLIP: tl.constexpr, BLOCK: tl.constexpr,
                           PRECISION: tl.constexpr):
        member = tl.program_id(1)
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # sub-LSTM index s = (b*A + a)*O + o
        inside = rows < S
        cols = tl.arange(0, N)
        state_offsets = member * S * N + rows[:, None] * N + cols[None, :]
        mask = inside[:, None]
        h = tl.load(h_ptr + state_offsets, mask=mask, other=0.0)
        c = tl.load(c_ptr + state_offsets, mask=mask, other=0.0)
        unit_in = rows // O  # b*A + a
        unit_out = (rows // (A * O)) * O + rows % O  # b*O + o
        u_rows = u_ptr + member * (S // O) * 4 * N + unit_in[:, None] * 4 * N
        v_rows = v_ptr + member * (S // A) * 4 * N + unit_out[:, None] * 4 * N
        w_base = w_ptr + member * N * 4 * N + tl.arange(0, N)[:, None] * 4 * N + cols[None, :]

        for _ in tl.static_range(TICKS):  # micro ticks: same inputs, states stay in registers
            i = _gate(h, w_base, u_rows, v_rows, cols, mask, 0, N, PRECISION)
            f = _gate(h, w_base, u_rows, v_rows, cols, mask, 1, N, PRECISION)
            o = _gate(h, w_base, u_rows, v_rows, cols, mask, 2, N, PRECISION)
            g = _gate(h, w_base, u_rows, v_rows, cols, mask, 3, N, PRECISION) * 2.0 - 1.0  # tanh via sigmoid of 2g
            c = f * c + i * g
            h = (_sigmoid(c * 2.0) * 2.0 - 1.0) * o
            if CLIP:
                h = tl.minimum(tl.maximum(h, -clip), clip)
                c = tl.minimum(tl.maximum(c, -clip), clip)
        tl.store(h_out_ptr + state_offsets, h, mask=mask)
        tl.store(c_out_ptr + state_offsets, c, mask=mask)


def fused_dense_ticks(h: torch.Tensor, c: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w_h: torch.Tensor,
                      ticks: int = 1, clip: float | None = None, block: int = 64, precision: str = PRECISION
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """`ticks` micro ticks in one launch. h, c (P, B, A, O, N); u (P, B, A, 4N) per-input-unit
    terms; v (P, B, O, 4N) per-output-unit terms (bias and shifts included); w_h (P, N, 4N);
    states clipped to [-clip, clip] after every tick if clip is given. Returns the new (h, c)."""
    pop, batch, num_a, num_o, n = h.shape
    h, c = h.contiguous(), c.contiguous()
    u, v, w_h = u.contiguous(), v.contiguous(), w_h.contiguous()
    h_out, c_out = torch.empty_like(h), torch.empty_like(c)
    rows = batch * num_a * num_o
    grid = (triton.cdiv(rows, block), pop)
    _dense_tick_kernel[grid](h, c, u, v, w_h, h_out, c_out, rows, num_a, num_o, float(clip or 0.0),
                             N=n, TICKS=ticks, CLIP=clip is not None, BLOCK=block, PRECISION=precision)
    return h_out, c_out
