"""Clone training: fit the sub-LSTM's meta-parameters by gradient descent to `CloneTargets`.

Timing. A tick's cell update is i * tanh(g) with gate pre-activations linear in e; if it must
vanish at e = 0, it is sigma(A(x) + q e) tanh(t e), whose sign cannot depend on x: no single
tick can apply w <- w - lr tanh(x) e. So the error tick (VSML's backward tick, which sees the
previous input x and its error e) writes the pending update tanh(x) e and e into scratch h dims
(3, 4, 5; zero when e = 0) and produces the backward message from the current (old) weights;
batched LA averages these first-half dims over the batch; the next forward tick reads them from
h and applies the batch-mean update to the weight and bias dims, then sends the forward message
of the updated weights. That is exactly online backprop with the batch-mean gradient (targets:
`step_losses`).

Training: a hand-built solution (`analytic_init`) is the start; gradient descent on random
(x, e, w, b) unrolled over one example of this schedule -- forward tick (x, 0) -> error tick
(x, e) -> average over the G streams of a learner -> forward tick (x', 0) -- fits forward
messages, weight/bias updates, no change in error ticks, and backward messages. Start states come
from a buffer of states the clone itself produced (fresh initial states mixed in; learners whose
weight or bias left the storage range [-1, 1] are replaced by fresh ones). The parameters with
the best error on fresh data (evaluated every `eval_every` steps, and at the start) are kept.

The backward message is trained on the whole error range; stage 2 (`curriculum.py`) then fits
the messages inside deep networks, hidden errors first from ground-truth backprop, then the
clone's own.

Only channel 0 of the incoming messages is read (the other rows of the input map are zero) and
only channel 0 of the outgoing messages is written (other read-out columns zero): messages are
[value, 0, ..., 0], so the next layer reads channel 0 and logits come from `output_idx=0`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from agents.cloning.targets import BIAS_DIM, WEIGHT_DIM, CloneTargets
from agents.vsml.sub_lstm import FORGET_BIAS, INPUT_BIAS

STATE_SIZE, MESSAGE_SIZE = 16, 8
COPY_DIMS = (2, 7)  # copies of the weight dim (forward / backward read-outs need the same cell twice)
SCRATCH_DIMS = (3, 4, 5)  # the pending update recorded in an error tick: tanh(x) e (two dims) and e
CLONE_OPTIONS = {"state_size": STATE_SIZE, "message_size": MESSAGE_SIZE, "num_micro_ticks": 1, "output_idx": 0,
                 "backward_pass": True, "batch_average": True, "state_clip": 4.0, "feed_label": False}


class CloneParams(torch.nn.Module):
    """The trainable part of one sub-LSTM: input map rows for channel 0 of the forward and
    backward messages, the recurrent rows, the gate bias and the channel-0 read-outs."""

    def __init__(self, n: int = STATE_SIZE, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w_x = torch.nn.Parameter(torch.randn(4 * n, generator=g) * 0.5)
        self.w_e = torch.nn.Parameter(torch.randn(4 * n, generator=g) * 0.5)
        self.w_h = torch.nn.Parameter(torch.randn(n, 4 * n, generator=g) / math.sqrt(n))
        self.bias = torch.nn.Parameter(torch.zeros(4 * n))
        self.read_fwd = torch.nn.Parameter(torch.randn(n, generator=g) / math.sqrt(n))
        self.read_bwd = torch.nn.Parameter(torch.randn(n, generator=g) / math.sqrt(n))
        self.read_fwd_b = torch.nn.Parameter(torch.zeros(()))
        self.read_bwd_b = torch.nn.Parameter(torch.zeros(()))
        self.n = n

    def tick(self, x: torch.Tensor, e: torch.Tensor, h: torch.Tensor, c: torch.Tensor, clip: float | None = 4.0
             ) -> tuple[torch.Tensor, ...]:
        """One sub-LSTM step, exactly as VSML's (gates (i, g, f, o), shifts -5 / +5).
        x, e: (...,); h, c: (..., N). Returns h, c, forward and backward message (channel 0)."""
        n = self.n
        gates = x.unsqueeze(-1) * self.w_x + e.unsqueeze(-1) * self.w_e + h @ self.w_h + self.bias
        i, g, f, o = gates.split(n, dim=-1)
        c = torch.sigmoid(f + FORGET_BIAS) * c + torch.sigmoid(i + INPUT_BIAS) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        if clip is not None:
            h, c = h.clamp(-clip, clip), c.clamp(-clip, clip)
        return h, c, h @ self.read_fwd + self.read_fwd_b, h @ self.read_bwd + self.read_bwd_b

    def vsml_named_params(self) -> dict[str, torch.Tensor]:
        """The meta-parameters of a VSML learner with `CLONE_OPTIONS` (one member, no P axis)."""
        n, m = self.n, MESSAGE_SIZE
        lstm_w = torch.zeros(2 * m + n, 4 * n)
        lstm_w[0], lstm_w[m], lstm_w[2 * m:] = self.w_x.detach(), self.w_e.detach(), self.w_h.detach()
        fwd_w, bwd_w = torch.zeros(n, m), torch.zeros(n, m)
        fwd_w[:, 0], bwd_w[:, 0] = self.read_fwd.detach(), self.read_bwd.detach()
        fwd_b, bwd_b = torch.zeros(m), torch.zeros(m)
        fwd_b[0], bwd_b[0] = self.read_fwd_b.detach(), self.read_bwd_b.detach()
        return {"lstm_w": lstm_w, "lstm_b": self.bias.detach().clone(), "fwd_w": fwd_w, "fwd_b": fwd_b,
                "bwd_w": bwd_w, "bwd_b": bwd_b}

    @classmethod
    def from_vsml_named_params(cls, named: dict[str, torch.Tensor]) -> "CloneParams":
        n, m = named["lstm_w"].shape[1] // 4, MESSAGE_SIZE
        clone = cls(n)
        with torch.no_grad():
            clone.w_x.copy_(named["lstm_w"][0]), clone.w_e.copy_(named["lstm_w"][m])
            clone.w_h.copy_(named["lstm_w"][2 * m:]), clone.bias.copy_(named["lstm_b"])
            clone.read_fwd.copy_(named["fwd_w"][:, 0]), clone.read_bwd.copy_(named["bwd_w"][:, 0])
            clone.read_fwd_b.copy_(named["fwd_b"][0]), clone.read_bwd_b.copy_(named["bwd_b"][0])
        return clone


# ------------------------------------------------------------------------------------ sampling
def sample_x(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Inputs: half uniform on [-4, 4] (hidden activations), half like standardised pixels
    (mostly the background value -0.42, else uniform up to 2.8)."""
    uniform = torch.rand(shape, generator=g) * 8 - 4
    pixel = torch.where(torch.rand(shape, generator=g) < 0.6, torch.full(shape, -0.4242),
                        torch.rand(shape, generator=g) * 3.24 - 0.4242)
    return torch.where(torch.rand(shape, generator=g) < 0.5, uniform, pixel)


def sample_e(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Errors in [-1, 1], with log-uniform magnitudes down to 1e-2 (hidden-layer errors) and some zeros."""
    e = torch.rand(shape, generator=g) * 2 - 1
    e = e * torch.where(torch.rand(shape, generator=g) < 0.4, 10 ** (-2 * torch.rand(shape, generator=g)),
                        torch.ones(shape))
    return torch.where(torch.rand(shape, generator=g) < 0.05, torch.zeros(shape), e)


def fresh_states(count: int, streams: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(count, streams, N) h and c as the cloned learner starts an episode (`clone_initial_cells`):
    h = 0, the weight dim (and its copies) random with std 1/sqrt(A), A log-uniform in [8, 1024],
    or (half of the time) uniform in the storage range [-1, 1]; the bias dim likewise (smaller);
    everything else 0."""
    std = (2 ** (3 + 7 * torch.rand(count, 1, 1, generator=g))) ** -0.5
    wb = torch.randn(count, 1, 2, generator=g).clamp(-2, 2) * std
    wide = torch.rand(count, 1, 2, generator=g) < 0.5
    wb = torch.where(wide, torch.rand(count, 1, 2, generator=g) * 2 - 1, wb)
    wb[..., 1] *= torch.where(torch.rand(count, 1, generator=g) < 0.5, 0.3, 1.0)
    c = torch.zeros(count, 1, n)
    c[..., [WEIGHT_DIM, *COPY_DIMS]] = wb[..., :1]
    c[..., BIAS_DIM] = wb[..., 1]
    return torch.zeros(count, streams, n), c.expand(count, streams, n).clone()


def analytic_init(model: "CloneParams", targets: CloneTargets, gamma: float = 0.2, alpha: float = 1.0,
                  big: float = 10.0) -> None:
    """A hand-built solution to start gradient descent from (see the module docstring):

    - dims 0 (w/4), 2 and 7 (copies): keep (f open), write g = -lam * (h3 - h4) (the pending
      update recorded by the previous tick), read out with o = +2x + alpha e, -2x + alpha e, +big:
      forward 4 (h0 - h2) = tanh(x) 4 tanh(c0); backward (8 / alpha)(h0 + h2 - h7)
      = e 4 tanh(c0) sech^2(x) (odd in e up to third order);
    - dim 1 (b/4): keep, g = -lam_b h5, o = +big, forward + 4 h1;
    - dims 3, 4, 5 (scratch, forget everything each tick): c = tanh(gamma e), o = 2x, -2x, +big:
      h3 - h4 = tanh(x) tanh(tanh(gamma e)), h5 = tanh(tanh(gamma e)) -- zero in e = 0 ticks;
    - all other dims stay 0. Dims 0-7 are the batch-averaged half, so the pending update that
      the forward tick applies is the batch mean."""
    n = model.n
    I, G, F, O = 0, n, 2 * n, 3 * n
    lam = targets.lr / targets.scale / gamma
    lam_b = targets.bias_lr / targets.scale / gamma
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.bias[I:I + n] = -big  # closed input gates (plus the -5 shift)
        model.bias[F:F + n] = big  # open forget gates (plus the +5 shift): states stay
        for d in (WEIGHT_DIM, BIAS_DIM, *COPY_DIMS, *SCRATCH_DIMS):
            model.bias[I + d] = 5 + big  # open input gates
        for d in (WEIGHT_DIM, *COPY_DIMS):
            model.w_h[SCRATCH_DIMS[0], G + d] = -lam
            model.w_h[SCRATCH_DIMS[1], G + d] = lam
        model.w_h[SCRATCH_DIMS[2], G + BIAS_DIM] = -lam_b
        model.w_x[O + WEIGHT_DIM], model.w_e[O + WEIGHT_DIM] = 2.0, alpha
        model.w_x[O + COPY_DIMS[0]], model.w_e[O + COPY_DIMS[0]] = -2.0, alpha
        model.bias[O + COPY_DIMS[1]] = big
        model.bias[O + BIAS_DIM] = big
        for d, sign in zip(SCRATCH_DIMS, (2.0, -2.0, 0.0)):
            model.bias[F + d] = -5 - big  # closed forget gates: scratch is rewritten every tick
            model.w_e[G + d] = gamma
            model.w_x[O + d] = sign
        model.bias[O + SCRATCH_DIMS[2]] = big
        s = targets.scale
        model.read_fwd[WEIGHT_DIM], model.read_fwd[COPY_DIMS[0]], model.read_fwd[BIAS_DIM] = s, -s, s
        for d, sign in ((WEIGHT_DIM, 1), (COPY_DIMS[0], 1), (COPY_DIMS[1], -1)):
            model.read_bwd[d] = sign * 2 * s / alpha


def batch_average(s: torch.Tensor) -> torch.Tensor:
    half = s.shape[-1] // 2
    return torch.cat([s[..., :half].mean(1, keepdim=True).expand_as(s[..., :half]), s[..., half:]], -1)


# ------------------------------------------------------------------------------------ training
@dataclass
class TrainConfig:
    steps: int = 500
    lr: float = 1e-4
    batch: int = 512  # learners per step
    streams: int = 4  # streams per learner (batched LA)
    buffer: int = 8192  # learners in the state buffer
    fresh: float = 0.2  # fraction of fresh start states per step
    eval_every: int = 250  # evaluate on fresh data; the best evaluated parameters are kept
    seed: int = 0
    targets: CloneTargets = field(default_factory=CloneTargets)


def forward_tick(model: CloneParams, targets: CloneTargets, h: torch.Tensor, c: torch.Tensor, pending: torch.Tensor,
                 x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A forward tick (x, e = 0) from a state whose pending (batch-mean) update is `pending`
    (S, 1, 2) = (dw, db), x (S, G). Returns h, c, the forward message and the squared errors
    (w units) of that message and of the update it must apply."""
    w_star, b_star = targets.weight(c) + pending[..., 0], targets.bias(c) + pending[..., 1]
    h, c, y, _ = model.tick(x, torch.zeros_like(x), h, c)
    forward = (y - targets.forward(x, w_star, b_star)) ** 2
    update = (targets.weight(c) - w_star) ** 2 + (targets.bias(c) - b_star) ** 2
    return h, c, y, forward, update


def error_tick(model: CloneParams, targets: CloneTargets, h: torch.Tensor, c: torch.Tensor, x: torch.Tensor,
               e: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """An error tick (x, e), (S, G) each: the backward message comes from the current weights,
    which must stay as they are. Returns h, c, the backward message, the squared errors of that
    message and of the weights' drift, and the pending update it records (S, 1, 2)."""
    w, b = targets.weight(c), targets.bias(c)
    h, c, _, message = model.tick(x, e, h, c)
    keep = (targets.weight(c) - w) ** 2 + (targets.bias(c) - b) ** 2
    backward = (message - targets.backward_message(x, e, w)) ** 2
    w_next, b_next = targets.update(x, e, w, b)
    pending = torch.stack([(w_next - w).mean(1, keepdim=True), (b_next - b).mean(1, keepdim=True)], -1)
    return h, c, message, backward, keep, pending


def step_losses(model: CloneParams, targets: CloneTargets, h: torch.Tensor, c: torch.Tensor,
                pending: torch.Tensor, x1: torch.Tensor, e1: torch.Tensor, x2: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], tuple]:
    """Squared errors (w units) of one unrolled example from a post-averaging state whose
    pending (batch-mean) update is `pending` (S, 1, 2) = (dw, db): forward tick (x1) applies it,
    backward tick (x1, e1) records the next one, averaging, forward tick (x2) applies that.
    Returns the losses and (h, c, pending) after the averaging."""
    h, c, _, forward, update = forward_tick(model, targets, h, c, pending, x1)
    h, c, _, backward, keep, pending = error_tick(model, targets, h, c, x1, e1)
    h, c = batch_average(h), batch_average(c)
    after = (h.detach(), c.detach(), pending.detach())
    _, _, _, forward2, update2 = forward_tick(model, targets, h, c, pending, x2)
    return {"forward": torch.cat([forward, forward2]).mean(), "backward": backward.mean(),
            "update": torch.cat([update, update2]).mean(), "keep": keep.mean()}, after


LOSS_WEIGHTS = {"forward": 1.0, "backward": 1.0, "update": 10.0, "keep": 100.0}


def train_clone(config: TrainConfig, progress: Callable[[int, dict[str, float]], None] | None = None,
                model: CloneParams | None = None) -> tuple[CloneParams, dict]:
    """Stage 1; returns the model (the best evaluated parameters) and a summary."""
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    if model is None:
        model = CloneParams(seed=config.seed)
        analytic_init(model, config.targets)
    n, targets = model.n, config.targets
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    total = config.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / max(total, 1), 1))) * 0.97 + 0.03)
    buf_h, buf_c = fresh_states(config.buffer, config.streams, n, g)
    buf_p = torch.zeros(config.buffer, 1, 2)
    started = time.time()
    history = []
    start_score = weighted_score(evaluate_clone(model, targets))
    best = (start_score, {k: v.detach().clone() for k, v in model.state_dict().items()})
    for step in range(config.steps):
        idx = torch.randint(0, config.buffer, (config.batch,), generator=g)
        h, c, pending = buf_h[idx], buf_c[idx], buf_p[idx]
        nf = int(config.batch * config.fresh)
        h[:nf], c[:nf] = fresh_states(nf, config.streams, n, g)
        pending[:nf] = 0
        shape = (config.batch, config.streams)
        losses, (h_new, c_new, p_new) = step_losses(model, targets, h, c, pending, sample_x(shape, g),
                                                    sample_e(shape, g), sample_x(shape, g))
        loss = sum(LOSS_WEIGHTS[k] * v for k, v in losses.items())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ok = (c_new[..., :2].abs() <= 1).all(-1).all(-1) & torch.isfinite(c_new).all(-1).all(-1)
        buf_h[idx[ok]], buf_c[idx[ok]], buf_p[idx[ok]] = h_new[ok], c_new[ok], p_new[ok]
        record = {k: v.item() for k, v in losses.items()}
        if step % 50 == 0 or step == config.steps - 1:
            history.append({"step": step, **record})
        if progress:
            progress(step, record)
        if (step + 1) % config.eval_every == 0 or step == config.steps - 1:
            score = weighted_score(evaluate_clone(model, targets))
            if score < best[0]:
                best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])  # gradient descent may not beat its start: keep the best evaluated
    return model, {"train_seconds": time.time() - started, "history": history, "best_score": best[0],
                   "start_score": start_score, "errors": evaluate_clone(model, targets)}


def weighted_score(errors: dict[str, float]) -> float:
    """The training loss's weighting of evaluated RMS errors (other entries, e.g. accuracy, ignored):
    the score by which both stages keep their best parameters."""
    return sum(weight * errors[name] ** 2 for name, weight in LOSS_WEIGHTS.items())


@torch.no_grad()
def evaluate_clone(model: CloneParams, targets: CloneTargets, samples: int = 4096, seed: int = 1,
                   streams: int = 4, warmup: int = 20) -> dict[str, float]:
    """Root-mean-square errors (w units) on fresh random data, from states the clone reached
    after `warmup` random examples (starting fresh): forward, backward, update, keep (drift of w/b
    in e = 0 ticks), plus the RMS of the targets for scale."""
    g = torch.Generator().manual_seed(seed)
    count = samples // streams
    h, c = fresh_states(count, streams, model.n, g)
    pending = torch.zeros(count, 1, 2)
    shape = (count, streams)
    for _ in range(warmup):
        _, (h, c, pending) = step_losses(model, targets, h, c, pending, sample_x(shape, g), sample_e(shape, g),
                                         sample_x(shape, g))
        out = (c[..., :2].abs() > 1).any(-1).any(-1)  # restart learners whose w or b left the range
        if out.any():
            h[out], c[out] = fresh_states(int(out.sum()), streams, model.n, g)
            pending[out] = 0
    losses, _ = step_losses(model, targets, h, c, pending, sample_x(shape, g), sample_e(shape, g),
                            sample_x(shape, g))
    return {k: math.sqrt(v.item()) for k, v in losses.items()}


def save_clone(model: CloneParams, targets: CloneTargets, path, summary: dict | None = None) -> None:
    torch.save({"format": "vsml_gym.cloning/1", "named_params": model.vsml_named_params(),
                "targets": targets.as_dict(), "options": dict(CLONE_OPTIONS), "summary": summary or {}}, path)


def load_clone(path) -> tuple[CloneParams, CloneTargets, dict]:
    data = torch.load(path, map_location="cpu", weights_only=False)
    return CloneParams.from_vsml_named_params(data["named_params"]), CloneTargets(**data["targets"]), data
