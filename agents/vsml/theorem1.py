"""Theorem 1 of the VSML appendix: a VSML layer is one big RNN with a structured weight matrix.

With sub-RNN states s_ab (a, b in 0..K-1, size N) updated as
    s_abj <- sigma(sum_i s_abi W_ij + sum_{c,i} s_cai C_ij),
(W: a sub-RNN's own recurrence; C: what it reads from the sub-RNNs feeding unit a), the same
update is s <- sigma(s W~) over the flat state s_(c,d,i) with
    W~[(c,d,i), (a,b,j)] = [d = a] C_ij + [d = b][c = a] W_ij.
"""

from __future__ import annotations

import torch


def equivalent_rnn_matrix(w: torch.Tensor, c: torch.Tensor, num_units: int) -> torch.Tensor:
    """W~ of shape (K*K*N, K*K*N) for K = num_units, rows and columns indexed (c, d, i) / (a, b, j)."""
    n = w.shape[0]
    k = num_units
    eye = torch.eye(k, dtype=w.dtype, device=w.device)
    ones = torch.ones(k, dtype=w.dtype, device=w.device)
    # indices: c, d, i, a, b, j
    recurrent = torch.einsum("ca,db,ij->cdiabj", eye, eye, w)  # [c = a][d = b] W_ij: own state
    incoming = torch.einsum("c,da,b,ij->cdiabj", ones, eye, ones, c)  # [d = a] C_ij, for every c and b
    return (recurrent + incoming).reshape(k * k * n, k * k * n)


def sub_rnn_update(states: torch.Tensor, w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The per-sub-RNN form: states (K, K, N) indexed (a, b, i)."""
    own = torch.einsum("abi,ij->abj", states, w)
    incoming = torch.einsum("cai,ij->aj", states, c)  # sum over c of s_ca, read by every b
    return torch.sigmoid(own + incoming[:, None, :])
