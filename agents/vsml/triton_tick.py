"""A fused Triton kernel for the micro ticks of a dense VSML layer on the GPU.

One program handles a block of sub-LSTMs of one population member: it loads their states and
input terms once, and for every micro tick computes all gates in one (block x N) @ (N x 4N)
matrix product (exact fp32 by default) on top of the per-input-unit and per-output-unit input
terms and applies the LSTM nonlinearity; it writes the states back after the last tick. Block
size and warps are autotuned per problem size. Neither the 4N gates nor the states
between micro ticks touch global memory, which is what makes large populations fast: the eager
version writes and re-reads the gates several times per tick.

The arithmetic is the same as `sub_lstm.lstm_update` (internal gate order (i, f, o, 2g)), so
results match the eager path to about float32 rounding (the sigmoids use the hardware's
approximate 2^x and reciprocal, relative errors ~2^-22). Usable when Triton and a CUDA device are
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
    def _sigmoid(x, FAST: tl.constexpr):
        """1 / (1 + exp(-x)); FAST: the hardware's approximate 2^x and reciprocal (relative errors
        about 2^-22), two special-function instructions instead of Triton's range-checked ones."""
        if FAST:
            e = tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=r,r", [x * -1.4426950408889634],
                                          dtype=tl.float32, is_pure=True, pack=1)
            return tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [1.0 + e],
                                             dtype=tl.float32, is_pure=True, pack=1)
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _dense_tick_kernel(h_ptr, c_ptr, u_ptr, v_ptr, w_ptr, h_out_ptr, c_out_ptr, S, clip, A: tl.constexpr,
                           O: tl.constexpr, N: tl.constexpr, TICKS: tl.constexpr, CLIP: tl.constexpr,
                           BLOCK: tl.constexpr, PRECISION: tl.constexpr, FAST: tl.constexpr):
        member = tl.program_id(1).to(tl.int64)  # offsets beyond 2^31 elements at large P x B
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # sub-LSTM index s = (b*A + a)*O + o
        mask = (rows < S)[:, None]
        cols, gate_cols = tl.arange(0, N), tl.arange(0, 4 * N)
        state_offsets = member * S * N + rows[:, None] * N + cols[None, :]
        h = tl.load(h_ptr + state_offsets, mask=mask, other=0.0)
        c = tl.load(c_ptr + state_offsets, mask=mask, other=0.0)
        unit_in = rows // O  # b*A + a (A, O compile-time constants: no integer division instructions)
        unit_out = (rows // (A * O)) * O + rows % O  # b*O + o
        # the input part of the gates: the same for every micro tick
        inputs = tl.load(u_ptr + member * (S // O) * 4 * N + unit_in[:, None] * 4 * N + gate_cols[None, :],
                         mask=mask, other=0.0)
        inputs += tl.load(v_ptr + member * (S // A) * 4 * N + unit_out[:, None] * 4 * N + gate_cols[None, :],
                          mask=mask, other=0.0)
        w = tl.load(w_ptr + member * N * 4 * N + cols[:, None] * 4 * N + gate_cols[None, :])  # (N, 4N)

        for _ in tl.static_range(TICKS):  # micro ticks: same inputs, states stay in registers
            # all four gates in one (BLOCK, N) x (N, 4N) product; one sigmoid covers them all
            gates = _sigmoid(tl.dot(h, w, inputs, input_precision=PRECISION), FAST)
            # columns q*N + j -> (BLOCK, N, 2, 2) indexed [j, q // 2, q % 2], then split twice
            gates = tl.reshape(tl.permute(tl.reshape(gates, (BLOCK, 4, N)), (0, 2, 1)), (BLOCK, N, 2, 2))
            i_o, f_g = tl.split(gates)
            i, o = tl.split(i_o)
            f, g = tl.split(f_g)
            c = f * c + i * (g * 2.0 - 1.0)  # tanh via sigmoid of 2g
            h = (_sigmoid(c * 2.0, FAST) * 2.0 - 1.0) * o
            if CLIP:
                h = tl.minimum(tl.maximum(h, -clip), clip)
                c = tl.minimum(tl.maximum(c, -clip), clip)
        tl.store(h_out_ptr + state_offsets, h, mask=mask)
        tl.store(c_out_ptr + state_offsets, c, mask=mask)

    #: block size and warps picked by timing on the first call per problem size (not in the interpreter)
    _tuned_kernel = triton.autotune(
        configs=[triton.Config({"BLOCK": block}, num_warps=warps)
                 for block, warps in ((32, 2), (32, 4), (64, 2), (64, 4), (128, 2), (128, 4))],
        key=["S", "A", "O", "N", "TICKS", "PRECISION"],
    )(_dense_tick_kernel)


def fused_dense_ticks(h: torch.Tensor, c: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w_h: torch.Tensor,
                      ticks: int = 1, clip: float | None = None, precision: str = PRECISION
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """`ticks` micro ticks in one launch. h, c (P, B, A, O, N); u (P, B, A, 4N) per-input-unit
    terms; v (P, B, O, 4N) per-output-unit terms (bias and shifts included); w_h (P, N, 4N);
    states clipped to [-clip, clip] after every tick if clip is given. Returns the new (h, c)."""
    pop, batch, num_a, num_o, n = h.shape
    h, c = h.contiguous(), c.contiguous()
    u, v, w_h = u.contiguous(), v.contiguous(), w_h.contiguous()
    h_out, c_out = torch.empty_like(h), torch.empty_like(c)
    rows = batch * num_a * num_o
    args = (h, c, u, v, w_h, h_out, c_out, rows, float(clip or 0.0))
    options = {"A": num_a, "O": num_o, "N": n, "TICKS": ticks, "CLIP": clip is not None, "PRECISION": precision,
               "FAST": not INTERPRET}  # the interpreter has no PTX
    if INTERPRET:
        _dense_tick_kernel[(triton.cdiv(rows, 32), pop)](*args, BLOCK=32, **options)
    else:
        _tuned_kernel[lambda meta: (triton.cdiv(rows, meta["BLOCK"]), pop)](*args, **options)
    return h_out, c_out
