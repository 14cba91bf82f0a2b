"""`vsml_cloned`: VSML running the shipped cloned-backprop meta-parameters.

Options fixed by the clone (`CLONE_OPTIONS`): one micro tick, `backward_pass=True` (the error of
example t - 1 arrives with example t and flows back in a reverse-order tick before the forward
tick), `batch_average=True` (the B streams of a member form one learner: batch = B),
`state_clip=4`, `output_idx=0`, no label feed. Two differences from plain VSML, both part of the
cloned algorithm:

- initial state: the weight dim of every sub-LSTM (and its two copies) starts at 4 * w0 with w0
  truncated normal, std 1/sqrt(A) as VSML's random cells, the other dims at 0 (plain VSML draws
  every first-half cell dim independently, which would desynchronise the copies);
- a hidden layer's forward tick sees zero backward messages (plain VSML hands it the message
  its successor left in the backward tick), so that, as in the output layer, the error of an
  example is seen exactly once.

Meta-parameters: `init_params` returns the shipped clone (`cloned_backprop.pt`) for every
member, or the checkpoint given as `checkpoint=`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch

from agents.cloning.train import CLONE_OPTIONS, COPY_DIMS, WEIGHT_DIM, load_clone
from agents.learner import Observation, State
from agents.params import truncated_normal
from agents.vsml.learner import VSML

CHECKPOINT = Path(__file__).resolve().parent / "cloned_backprop.pt"


class ClonedBackpropVSML(VSML):
    """VSML with the cloned online-backprop sub-LSTM; `hidden` adds dense hidden layers
    (e.g. hidden=[32] for 784 x 32 x 10), or pass VSML `layers` directly."""

    name = "vsml_cloned"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, *, hidden: Sequence[int] = (),
                 layers: Sequence[dict[str, Any]] | None = None, checkpoint: str | None = None,
                 tanh_bound: float = 100.0) -> None:
        if layers is None:
            layers = [*({"type": "dense", "size": int(s)} for s in hidden), {"type": "dense"}]
        super().__init__(input_shape, num_classes, layers=layers, tanh_bound=tanh_bound, **CLONE_OPTIONS)
        self.checkpoint = Path(checkpoint) if checkpoint else CHECKPOINT
        self.config.update({"hidden": list(hidden), "checkpoint": str(checkpoint) if checkpoint else "shipped"})
        self._named = None

    def cloned_named_params(self) -> dict[str, torch.Tensor]:
        if self._named is None:
            clone, targets, data = load_clone(self.checkpoint)
            self._named = data["named_params"]
            self.targets = targets
        return self._named

    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.cloned_named_params().items()}

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        state = super().initial_state(params, batch, generator)
        pop, device = params.shape[0], params.device
        for i, layer in enumerate(self.layers):
            w0 = truncated_normal((pop, 1, layer.num_in, layer.num_out), 1.0 / math.sqrt(layer.fan_in), generator,
                                  device)
            cell = torch.zeros_like(state[f"c{i}"][:, :1])
            for d in (WEIGHT_DIM, *COPY_DIMS):
                cell[..., d] = w0
            state[f"c{i}"] = cell.expand_as(state[f"c{i}"]).contiguous()
        return state

    def _step(self, params: torch.Tensor, state: State, obs: Observation, donated: bool
              ) -> tuple[torch.Tensor, State]:
        if state["t"] == 0 or len(self.layers) == 1:
            return super()._step(params, state, obs, donated)
        # run the backward tick ourselves, then clear the hidden layers' backward messages
        forward_lstms, backward_lstms = self._sub_lstms(params)
        state = dict(state)
        feedback = self._feedback_messages(obs)
        self._run(backward_lstms, state, state["prev_x"], feedback, True, state["t"], donated)
        for i in range(len(self.layers) - 1):
            state[f"bwd_in{i}"] = torch.zeros_like(state[f"bwd_in{i}"])
        self._average_over_batch(state)
        logits = self._run(forward_lstms, state, obs["x"], torch.zeros_like(feedback), False, state["t"], donated)
        state["prev_x"] = obs["x"]
        state["t"] = state["t"] + 1
        if self.tanh_bound:
            logits = torch.tanh(logits / self.tanh_bound) * self.tanh_bound
        return logits, state
