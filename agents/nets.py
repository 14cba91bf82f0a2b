"""Batched building blocks shared by the baseline learners.

Every tensor has leading axes (P, B) = (population members, streams). Weights come in two kinds:
per member, (P, ...), shared by that member's streams (meta-parameters), or per stream,
(P, B, ...) (the networks that SGD/Adam train inside an episode). The helpers accept both, so one
forward pass serves meta-learned and hand-designed learners alike.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from agents.params import truncated_normal

Activation = Callable[[torch.Tensor], torch.Tensor]


def bound(logits: torch.Tensor, limit: float) -> torch.Tensor:
    """limit * tanh(logits / limit): keeps logits in (-limit, limit) like the reference's
    `tanh_bound`, nearly the identity for small logits; limit 0 disables it."""
    return limit * torch.tanh(logits / limit) if limit else logits


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (P, B, I) @ w + b with per-member (w (P, I, O), b (P, O)) or per-stream
    (w (P, B, I, O), b (P, B, O)) weights."""
    if w.dim() == 3:
        return torch.baddbmm(b.unsqueeze(1), x, w)
    return torch.einsum("pbi,pbio->pbo", x, w) + b


def lstm(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
         ticks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """`ticks` LSTM steps on the same input x (P, B, I) from state h, c (P, B, H).

    w (P, I + H, 4H) acts on [x, h], b (P, 4H); gates in the order (i, g, f, o) and the forget gate
    is sigmoid(f + 1), as in Haiku's LSTM that the reference used. The input projection is computed
    once and shared by the ticks."""
    inputs = x.shape[-1]
    x_proj = linear(x, w[:, :inputs], b)
    w_h = w[:, inputs:]
    for _ in range(ticks):
        i, g, f, o = (x_proj + torch.bmm(h, w_h)).chunk(4, dim=-1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow/Haiku 'SAME' padding: output size ceil(size / stride), the extra pixel at the end."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_same(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: int) -> torch.Tensor:
    """Convolution of x (P, B, C, H, W) with per-member (w (P, O, C, k, k), b (P, O)) or per-stream
    (w (P, B, O, C, k, k), b (P, B, O)) kernels and SAME padding, as one grouped convolution."""
    lead = w.shape[:-4]
    groups = math.prod(lead)
    out_channels, in_channels, kernel = w.shape[-4], w.shape[-3], w.shape[-1]
    height, width = x.shape[-2:]
    grouped = x.reshape(groups, -1, in_channels, height, width).transpose(0, 1).reshape(-1, groups * in_channels, height, width)
    top, bottom = _same_padding(height, kernel, stride)
    left, right = _same_padding(width, kernel, stride)
    grouped = F.pad(grouped, (left, right, top, bottom))
    out = F.conv2d(grouped, w.reshape(groups * out_channels, in_channels, kernel, kernel), b.reshape(-1),
                   stride=stride, groups=groups)
    out = out.view(out.shape[0], groups, out_channels, *out.shape[-2:]).transpose(0, 1)
    return out.reshape(*x.shape[:-3], out_channels, *out.shape[-2:])


class Encoder:
    """Input features of a learner: len(channels) x [conv 3x3, stride 2, SAME padding, activation]
    (the reference's optional conv stack), then flatten. With no channels it only flattens."""

    def __init__(self, input_shape: tuple[int, ...], channels: Sequence[int] = (),
                 activations: Sequence[Activation] = ()) -> None:
        if len(channels) != len(activations):
            raise ValueError("need one activation per conv layer")
        if channels and len(input_shape) != 3:
            raise ValueError(f"a conv encoder needs (C, H, W) inputs, got shape {input_shape}")
        self.activations = tuple(activations)
        self.shapes: dict[str, tuple[int, ...]] = {}
        features = math.prod(input_shape)
        if channels:
            in_channels, height, width = input_shape
            for i, out_channels in enumerate(channels):
                self.shapes[f"conv{i}_w"] = (out_channels, in_channels, 3, 3)
                self.shapes[f"conv{i}_b"] = (out_channels,)
                in_channels, height, width = out_channels, math.ceil(height / 2), math.ceil(width / 2)
            features = in_channels * height * width
        self.out_features = features

    def __call__(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """x (P, B, *input_shape) -> (P, B, out_features)."""
        for i, activation in enumerate(self.activations):
            x = activation(conv2d_same(x, weights[f"conv{i}_w"], weights[f"conv{i}_b"], stride=2))
        return x.flatten(start_dim=2)


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output unit: I of a linear weight (I, O), C * k * k of a conv kernel (O, C, k, k)."""
    return math.prod(shape[1:]) if len(shape) == 4 else shape[0]


def init_weights(shapes: Mapping[str, tuple[int, ...]], generator: torch.Generator, lead: tuple[int, ...] = (),
                 device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The reference initialisation: weights ('*_w') truncated normal with std 1/sqrt(fan_in),
    everything else (biases) zero; `lead` prepends independent copies, e.g. (P, B)."""
    return {name: truncated_normal((*lead, *shape), fan_in(shape) ** -0.5, generator, device) if name.endswith("_w")
            else torch.zeros(*lead, *shape, device=device)
            for name, shape in shapes.items()}
