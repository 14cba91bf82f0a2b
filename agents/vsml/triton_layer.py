"""One step of a dense VSML layer on the GPU in one Triton kernel.

A program owns a block of input units a of one (member, stream) and walks over the output units
o: for each o it loads the states of the block's sub-LSTMs (a, o), runs the micro ticks with
the states in registers and writes them back. Everything else a layer step needs is folded in:
the input part of the gates (forward messages of the block's units, computed once per program;
the backward message of o, its bias and coordinate terms, once per o), the backward read-out
(the mean over o of h is summed in registers while the program walks o) and the forward
read-out's partial sums over the block's units, reduced over blocks by a tiny torch sum. So the
1 GB of states at P=2048 travels through memory exactly once per step (read and written), and
the recurrent weights are loaded once per ten sub-LSTM rows instead of once per row.

Per tick, the four gates come from four (block x N) @ (N x N) products that share the loaded
h (exact fp32 by default), so every gate lands in the layout of the states and no gate is
shuffled between threads. The arithmetic is that of `sub_lstm.lstm_update` (internal gate order
(i, f, o, 2g)); results match the eager path to float32 rounding (the sigmoids use the
hardware's approximate 2^x and reciprocal, relative errors ~2^-22). Usable when Triton and a
CUDA device are present (or under TRITON_INTERPRET=1, for testing on the CPU) and the state size
is a power of two >= 16.
"""

from __future__ import annotations

import os

import torch

from agents.vsml.sub_lstm import SubLSTMParams, linear_read_out, message_rows

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - Triton ships with CUDA builds of torch
    triton = None

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
#: matrix-product precision: "ieee" (exact fp32 FMAs) or "tf32x3" (three TF32 tensor-core passes,
#: about fp32 accuracy)
PRECISION = os.environ.get("VSML_GYM_FUSED_PRECISION", "ieee")
#: (block of input units, warps) tried by the autotuner on the first call per problem size
CONFIGS = ((16, 1), (16, 2), (32, 1), (32, 2), (32, 4), (64, 2), (64, 4))


PRECISIONS = ("ieee", "tf32x3")


def fused_layer_supported(h: torch.Tensor, *tensors: torch.Tensor) -> bool:
    """float32 CUDA tensors (CPU ones in the interpreter), states h of a power-of-two size >= 16."""
    n = h.shape[-1]
    fits = all(t.dtype == torch.float32 and (t.is_cuda or INTERPRET) for t in (h, *tensors))
    return triton is not None and fits and n >= 16 and n & (n - 1) == 0


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
    def _unit_terms(msg_ptr, w_ptr, add_ptr, units, unit_mask, cols, K: tl.constexpr, G: tl.constexpr,
                    ADD: tl.constexpr, bias_ptr=None):
        """Gate input of messages: msg[unit, :K] @ w[:K, cols] (+ add[unit, cols]) (+ bias[cols]),
        shape (units, cols)."""
        acc = tl.load(msg_ptr + units * K, mask=unit_mask, other=0.0)[:, None] * tl.load(w_ptr + cols)[None, :]
        for k in tl.static_range(1, K):
            acc += tl.load(msg_ptr + units * K + k, mask=unit_mask, other=0.0)[:, None] * \
                tl.load(w_ptr + k * G + cols)[None, :]
        if ADD:
            acc += tl.load(add_ptr + units[:, None] * G + cols[None, :], mask=unit_mask[:, None], other=0.0)
        if bias_ptr is not None:
            acc += tl.load(bias_ptr + cols)[None, :]
        return acc

    @triton.jit
    def _dense_layer_kernel(h_ptr, c_ptr, fwd_ptr, bwd_ptr, w_fwd_ptr, w_bwd_ptr, bias_ptr, w_h_ptr, u_add_ptr,
                            v_add_ptr, bwd_w_ptr, bwd_b_ptr, h_out_ptr, c_out_ptr, fwd_sum_ptr, bwd_out_ptr,
                            PB, B, SUM_BLOCKS, clip, A: tl.constexpr, O: tl.constexpr, N: tl.constexpr, KF: tl.constexpr,
                            KB: tl.constexpr, M: tl.constexpr, M_PAD: tl.constexpr, TICKS: tl.constexpr,
                            CLIP: tl.constexpr, ADD: tl.constexpr, READ_OUT: tl.constexpr,
                            PRECISION: tl.constexpr, FAST: tl.constexpr, BLOCK: tl.constexpr):
        # PB (= P x B, the grid's second axis) only keys the autotuner; SUM_BLOCKS: fwd_sum's block axis
        block = tl.program_id(0)
        pb = tl.program_id(1).to(tl.int64)  # member * B + stream; int64: offsets beyond 2^31 at large P
        member = pb // B
        units = block * BLOCK + tl.arange(0, BLOCK)  # input units a
        unit_mask = units < A
        cols = tl.arange(0, N)
        # per-member meta-parameters, the four gates' columns (internal order i, f, o, 2g) apart
        w_fwd, w_bwd, bias = w_fwd_ptr + member * KF * 4 * N, w_bwd_ptr + member * KB * 4 * N, bias_ptr + member * 4 * N
        w_h = w_h_ptr + member * N * 4 * N + cols[:, None] * 4 * N + cols[None, :]
        w_i, w_f, w_o, w_g = tl.load(w_h), tl.load(w_h + N), tl.load(w_h + 2 * N), tl.load(w_h + 3 * N)
        # forward-message part of the gates: per input unit, the same for every o and tick
        fwd, u_add = fwd_ptr + pb * A * KF, u_add_ptr + member * A * 4 * N
        u_i = _unit_terms(fwd, w_fwd, u_add, units, unit_mask, cols, KF, 4 * N, ADD, bias)
        u_f = _unit_terms(fwd, w_fwd, u_add, units, unit_mask, cols + N, KF, 4 * N, ADD, bias)
        u_o = _unit_terms(fwd, w_fwd, u_add, units, unit_mask, cols + 2 * N, KF, 4 * N, ADD, bias)
        u_g = _unit_terms(fwd, w_fwd, u_add, units, unit_mask, cols + 3 * N, KF, 4 * N, ADD, bias)
        bwd, v_add = bwd_ptr + pb * O * KB, v_add_ptr + member * O * 4 * N
        rows = ((pb * A + units[:, None]) * O) * N + cols[None, :]  # states of (a, o=0)
        mask = unit_mask[:, None]
        h_sum = tl.zeros((BLOCK, N), tl.float32)
        for o in range(O):
            out = tl.full((1,), o, tl.int32)  # the output unit as a one-row block
            true = out >= 0
            in_i = u_i + _unit_terms(bwd, w_bwd, v_add, out, true, cols, KB, 4 * N, ADD)
            in_f = u_f + _unit_terms(bwd, w_bwd, v_add, out, true, cols + N, KB, 4 * N, ADD)
            in_o = u_o + _unit_terms(bwd, w_bwd, v_add, out, true, cols + 2 * N, KB, 4 * N, ADD)
            in_g = u_g + _unit_terms(bwd, w_bwd, v_add, out, true, cols + 3 * N, KB, 4 * N, ADD)
            h = tl.load(h_ptr + rows + o * N, mask=mask, other=0.0)
            c = tl.load(c_ptr + rows + o * N, mask=mask, other=0.0)
            for _ in tl.static_range(TICKS):  # micro ticks: same inputs, states stay in registers
                i = _sigmoid(tl.dot(h, w_i, in_i, input_precision=PRECISION), FAST)
                f = _sigmoid(tl.dot(h, w_f, in_f, input_precision=PRECISION), FAST)
                o_gate = _sigmoid(tl.dot(h, w_o, in_o, input_precision=PRECISION), FAST)
                g = _sigmoid(tl.dot(h, w_g, in_g, input_precision=PRECISION), FAST)
                c = f * c + i * (g * 2.0 - 1.0)  # tanh via sigmoid of 2g
                h = (_sigmoid(c * 2.0, FAST) * 2.0 - 1.0) * o_gate
                if CLIP:
                    h = tl.minimum(tl.maximum(h, -clip), clip)
                    c = tl.minimum(tl.maximum(c, -clip), clip)
            tl.store(h_out_ptr + rows + o * N, h, mask=mask)
            tl.store(c_out_ptr + rows + o * N, c, mask=mask)
            if READ_OUT:
                h = tl.where(mask, h, 0.0)  # padding rows ran too
                h_sum += h
                tl.store(fwd_sum_ptr + ((pb * SUM_BLOCKS + block) * O + o) * N + cols, tl.sum(h, axis=0))
        if READ_OUT:  # backward message of each unit a: the read-out of its mean state over o
            outs = tl.arange(0, M_PAD)
            bwd_w = tl.load(bwd_w_ptr + member * N * M + cols[:, None] * M + outs[None, :], mask=(outs < M)[None, :],
                            other=0.0)
            message = tl.sum(h_sum[:, :, None] * bwd_w[None, :, :], axis=1) / O
            message += tl.load(bwd_b_ptr + member * M + outs, mask=outs < M, other=0.0)[None, :]
            tl.store(bwd_out_ptr + (pb * A + units[:, None]) * M + outs[None, :], message,
                     mask=mask & (outs < M)[None, :])

    #: block size and warps picked by timing on the first call per problem size (not in the interpreter)
    _tuned_kernel = triton.autotune(
        configs=[triton.Config({"BLOCK": block}, num_warps=warps) for block, warps in CONFIGS],
        key=["PB", "A", "O", "N", "TICKS", "PRECISION"],
    )(_dense_layer_kernel)


def fused_dense_layer(p: SubLSTMParams, h: torch.Tensor, c: torch.Tensor, fwd: torch.Tensor, bwd: torch.Tensor,
                      ticks: int = 1, clip: float | None = None, u_add: torch.Tensor | None = None,
                      v_add: torch.Tensor | None = None, donated: bool = False, precision: str = PRECISION,
                      config: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
    """One step of a dense layer (`DenseLayer.run`), the arguments and results of
    `cpu_ticks.cpu_dense_layer`: h, c (P, B, A, O, N); messages fwd (P, B, A, KF), bwd (P, B, O, KB)
    carrying their first K channels; u_add (P, A, 4N) and v_add (P, O, 4N) coordinate terms.
    Returns (h, c, forward (P, B, O, M), backward (P, B, A, M)), the messages None with layer
    norm. `config` = (block, warps) bypasses the autotuner (benchmarks). No autograd. `donated`
    is accepted and ignored: the GPU step always writes fresh states (the autotuner reruns the
    kernel on its inputs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"fused-kernel precision must be one of {PRECISIONS} (VSML_GYM_FUSED_PRECISION), "
                         f"got {precision!r}")
    pop, batch, num_a, num_o, n = h.shape
    m = p.fwd_w.shape[-1]
    h, c, fwd, bwd = h.contiguous(), c.contiguous(), fwd.contiguous(), bwd.contiguous()
    w_fwd, w_bwd = message_rows(p.w_fwd, fwd).contiguous(), message_rows(p.w_bwd, bwd).contiguous()
    h_out, c_out = torch.empty_like(h), torch.empty_like(c)
    read_out = p.ln is None
    add = u_add is not None
    # forward read-out partial sums: one row per block of units, room for the smallest block tried
    sum_blocks = triton.cdiv(num_a, config[0] if config else min(block for block, _ in CONFIGS))
    fwd_sum = h.new_empty(pop, batch, sum_blocks, num_o, n) if read_out else h_out  # h_out: an unused pointer
    bwd_out = h.new_empty(pop, batch, num_a, m) if read_out else h_out
    args = (h, c, fwd, bwd, w_fwd, w_bwd, p.bias.contiguous(), p.w_h.contiguous(),
            u_add.contiguous() if add else h, v_add.contiguous() if add else h, p.bwd_w.contiguous(),
            p.bwd_b.contiguous(), h_out, c_out, fwd_sum, bwd_out, pop * batch, batch, sum_blocks, float(clip or 0.0))
    options = {"A": num_a, "O": num_o, "N": n, "KF": fwd.shape[-1], "KB": bwd.shape[-1], "M": m,
               "M_PAD": triton.next_power_of_2(m), "TICKS": ticks, "CLIP": clip is not None, "ADD": add,
               "READ_OUT": read_out, "PRECISION": precision, "FAST": not INTERPRET}  # the interpreter has no PTX
    if config or INTERPRET:
        block, warps = config or CONFIGS[0]
        _dense_layer_kernel[(triton.cdiv(num_a, block), pop * batch)](*args, BLOCK=block, num_warps=warps, **options)
    else:
        _tuned_kernel[lambda meta: (triton.cdiv(num_a, meta["BLOCK"]), pop * batch)](*args, **options)
        block = _tuned_kernel.best_config.kwargs["BLOCK"]
    if not read_out:
        return h_out, c_out, None, None
    sums = fwd_sum[:, :, : triton.cdiv(num_a, block)].sum(2)  # (P, B, O, N): h summed over all units a
    return h_out, c_out, linear_read_out(sums / num_a, p.fwd_w, p.fwd_b), bwd_out
