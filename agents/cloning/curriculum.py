"""Stage 2 of clone training: the curriculum for deep networks (SPEC 6).

Stage 1 (`train.py`) fits one sub-LSTM on random (x, e, w, b). Inside a deep network the inputs
are different: a hidden layer reads the previous layer's forward messages and learns from the
next layer's backward messages, which the means over connections make small, and the clone's
own small errors compound from layer to layer. Here whole cloned networks learn online
classification tasks (a random linear teacher each, random inputs), and every sub-LSTM is fitted
to the targets of the inputs it actually receives (`forward_tick` / `error_tick` losses, per
layer): in phase 1 a hidden layer's errors are those of exact backprop through the weights the
clone stores (ground truth), in phase 2 they are the clone's own backward messages. The
networks live on across training steps (one example each per step, gradient through that
example only) and restart after `lifetime` examples, so their weights are seen at every stage of
learning. As in stage 1, the parameters with the best evaluation (here: phase-2 networks) are
kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from agents.cloning.targets import BIAS_DIM, WEIGHT_DIM, CloneTargets
from agents.cloning.train import (COPY_DIMS, LOSS_WEIGHTS, CloneParams, batch_average, error_tick, forward_tick,
                                  sample_x, weighted_score)


@dataclass
class DeepConfig:
    steps: int = 800
    lr: float = 3e-4
    sizes: tuple[int, ...] = (32, 16, 10)  # inputs, hidden layers..., classes
    networks: int = 16
    streams: int = 4  # batch of each network's learner (state averaging)
    lifetime: int = 60  # examples before a network restarts with fresh weights and a new teacher
    ground_truth: float = 0.5  # fraction of the steps (the first) with ground-truth hidden errors
    eval_every: int = 100
    seed: int = 0
    targets: CloneTargets = field(default_factory=CloneTargets)


class ClonedNetworks:
    """K cloned dense networks `sizes` with G streams each, stepped by a `CloneParams` model.
    Layer l's states are (K, A, O, G, N); its inputs x (K, A, G), its errors e (K, O, G)."""

    def __init__(self, sizes: tuple[int, ...], count: int, streams: int, n: int, lifetime: int,
                 generator: torch.Generator) -> None:
        if len(sizes) < 3:
            raise ValueError(f"the deep-network curriculum needs a hidden layer, got sizes {sizes}")
        self.sizes, self.count, self.streams, self.n, self.g = tuple(sizes), count, streams, n, generator
        self.lifetime = lifetime
        self.h, self.c, self.pending = [], [], []
        for a, o in zip(sizes[:-1], sizes[1:]):
            self.h.append(torch.zeros(count, a, o, streams, n))
            self.c.append(torch.zeros(count, a, o, streams, n))
            self.pending.append(torch.zeros(count * a * o, 1, 2))
        self.teacher = torch.zeros(count, sizes[0], sizes[-1])
        self.age = torch.zeros(count, dtype=torch.long)
        self.restart(torch.ones(count, dtype=torch.bool))

    def restart(self, which: torch.Tensor) -> None:
        """Fresh learners like `ClonedBackpropVSML.initial_state`'s (weight dim and its copies
        normal with std 1/sqrt(A) clipped at two stds, everything else 0), and a new teacher."""
        k = int(which.sum())
        if k == 0:
            return
        for layer, (a, o) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w0 = (torch.randn(k, a, o, 1, generator=self.g).clamp(-2, 2) / math.sqrt(a)).expand(k, a, o, self.streams)
            c = torch.zeros(k, a, o, self.streams, self.n)
            for d in (WEIGHT_DIM, *COPY_DIMS):
                c[..., d] = w0
            self.c[layer], self.h[layer] = self.c[layer].clone(), self.h[layer].clone()
            self.c[layer][which], self.h[layer][which] = c, 0.0
            self.pending[layer] = self.pending[layer].clone()
            self.pending[layer].view(self.count, -1, 2)[which] = 0.0
        self.teacher[which] = torch.randn(k, *self.teacher.shape[1:], generator=self.g)
        self.age[which] = 0

    def example(self, model: CloneParams, targets: CloneTargets, ground_truth: bool, x: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One online example for every network: forward pass, the error of its prediction,
        error pass (last layer first), averaging over the streams. Inputs x (K, A0, G) and labels
        (K, G) are drawn (labels from the teacher) unless given. Returns the mean squared errors
        per loss kind (averaged over layers; backward: relative to the exact message) with the
        networks' accuracy, and the logits (K, C, G); states advance (detached)."""
        k, g = self.count, self.streams
        if x is None:
            x = sample_x((k, self.sizes[0], g), self.g)
        if labels is None:
            labels = torch.einsum("kag,kac->kcg", x, self.teacher).argmax(1)
        losses = {name: [] for name in LOSS_WEIGHTS}
        inputs, states = [], []
        for layer in range(len(self.sizes) - 1):  # forward pass, e = 0
            a, o = self.sizes[layer], self.sizes[layer + 1]
            x_ab = x.unsqueeze(2).expand(k, a, o, g).reshape(-1, g)
            h, c, y, forward, update = forward_tick(model, targets, self.h[layer].view(-1, g, self.n),
                                                    self.c[layer].view(-1, g, self.n), self.pending[layer], x_ab)
            losses["forward"].append(forward.mean())
            losses["update"].append(update.mean())
            inputs.append(x_ab)
            states.append((h, c))
            x = y.view(k, a, o, g).mean(1).detach()  # the next layer's inputs (K, O, G)
        logits = x
        e = torch.softmax(logits, 1) - torch.nn.functional.one_hot(labels, self.sizes[-1]).permute(0, 2, 1)
        for layer in range(len(self.sizes) - 2, -1, -1):  # error pass, last layer first
            a, o = self.sizes[layer], self.sizes[layer + 1]
            e_ab = e.unsqueeze(1).expand(k, a, o, g).reshape(-1, g)
            h, c = states[layer]
            w = targets.weight(c).detach()
            h, c, message, backward, keep, pending = error_tick(model, targets, h, c, inputs[layer], e_ab)
            exact = targets.backward_message(inputs[layer], e_ab, w)
            if layer > 0:  # relative: errors shrink from layer to layer (the first layer's messages go nowhere)
                losses["backward"].append(backward.mean() / (exact ** 2).mean().clamp_min(1e-12))
            losses["keep"].append(keep.mean())
            handed_down = exact if ground_truth else message
            e = handed_down.view(k, a, o, g).mean(2).detach()  # errors of the previous layer's outputs
            self.h[layer] = batch_average(h).detach().view_as(self.h[layer])
            self.c[layer] = batch_average(c).detach().view_as(self.c[layer])
            self.pending[layer] = pending.detach()
        self.age += 1
        stored = torch.stack([c[..., WEIGHT_DIM].abs().amax((1, 2, 3)) for c in self.c])
        self.restart((self.age >= self.lifetime) | ~torch.isfinite(stored).all(0) | (stored > 1).any(0))
        result = {name: torch.stack(values).mean() for name, values in losses.items()}
        result["accuracy"] = (logits.argmax(1) == labels).float().mean()
        return result, logits


def message_masks(model: CloneParams) -> dict[str, torch.Tensor]:
    """1 for the parameters that shape the messages only: the read-outs and the output gates of
    the dims they read (`train.analytic_init`: the weight dim, its copies and the bias dim). The
    storage and update machinery (input, forget and cell gates, recurrent rows, the scratch dims)
    stays as stage 1 left it: one-example unrolls cannot see a slow drift of the stored weights,
    and fitting it here made the networks' later examples worse."""
    n = model.n
    message_dims = torch.tensor([WEIGHT_DIM, BIAS_DIM, *COPY_DIMS])
    gate = torch.zeros(4 * n)
    gate[3 * n + message_dims] = 1.0  # output gates (gate order i, g, f, o)
    masks = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for name in ("w_x", "w_e", "bias"):
        masks[name] = gate.clone()
    for name in ("read_fwd", "read_bwd", "read_fwd_b", "read_bwd_b"):
        masks[name] = torch.ones_like(getattr(model, name))
    return masks


@torch.no_grad()
def evaluate_deep(model: CloneParams, config: DeepConfig, examples: int = 100, seed: int = 1) -> dict[str, float]:
    """Phase-2 networks (the clone's own errors) on fresh tasks: root-mean-square errors (w
    units) per loss kind over all examples, and the accuracy over the last half."""
    networks = ClonedNetworks(config.sizes, config.networks, config.streams, model.n, examples + 1,
                              torch.Generator().manual_seed(seed))
    sums = {name: 0.0 for name in LOSS_WEIGHTS}
    correct = []
    for step in range(examples):
        out, _ = networks.example(model, config.targets, ground_truth=False)
        for name in sums:
            sums[name] += out[name].item() / examples
        if step >= examples // 2:
            correct.append(out["accuracy"].item())
    return {**{name: math.sqrt(v) for name, v in sums.items()}, "accuracy": sum(correct) / len(correct)}


def train_deep(model: CloneParams, config: DeepConfig,
               progress: Callable[[int, dict[str, float]], None] | None = None) -> tuple[CloneParams, dict]:
    """Stage 2 from a stage-1 model; returns the model with the best evaluated parameters and a summary."""
    torch.manual_seed(config.seed)
    networks = ClonedNetworks(config.sizes, config.networks, config.streams, model.n, config.lifetime,
                              torch.Generator().manual_seed(config.seed))
    masks = message_masks(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    started, history = time.time(), []
    start = evaluate_deep(model, config)
    best = (weighted_score(start), {k: v.detach().clone() for k, v in model.state_dict().items()}, start)
    switch = int(config.steps * config.ground_truth)
    for step in range(config.steps):
        out, _ = networks.example(model, config.targets, ground_truth=step < switch)
        loss = sum(LOSS_WEIGHTS[name] * out[name] for name in LOSS_WEIGHTS)
        opt.zero_grad()
        loss.backward()
        for name, parameter in model.named_parameters():  # only the message parameters move
            parameter.grad.mul_(masks[name])
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        record = {name: value.item() for name, value in out.items()}
        if step % 50 == 0 or step == config.steps - 1:
            history.append({"step": step, "phase": 1 if step < switch else 2, **record})
        if progress:
            progress(step, record)
        if (step + 1) % config.eval_every == 0 or step == config.steps - 1:
            evaluation = evaluate_deep(model, config)
            score = weighted_score(evaluation)
            if score < best[0]:
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()}, evaluation)
    model.load_state_dict(best[1])
    return model, {"deep_seconds": time.time() - started, "deep_history": history,
                   "deep_start": start, "deep_best": best[2]}
