"""VSML: every weight of a network is a tiny LSTM; all of them share one set of meta-parameters.

Learning happens in the sub-LSTM states while the network runs forward over (input, error)
pairs. The same meta-parameters run networks of any input/output size: only the state grows.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from agents.learner import Learner, Observation, State, check_positive
from agents.params import ParamSpec, truncated_normal
from agents.vsml.layers import ConvLayer, DenseLayer, Layer
from agents.vsml.sub_lstm import SubLSTMParams, SubLSTMShape

DEFAULT_LAYERS = ({"type": "dense"},)
BATCH_ERRORS = ("per_stream", "batch_mean")  # the error a batched LA feeds back (see VSML)


def build_layers(specs: Sequence[dict[str, Any]], input_shape: tuple[int, ...], num_classes: int) -> list[Layer]:
    """Layer objects from specs such as [{"type": "conv", "channels": 8, "kernel": 3, "stride": 2},
    {"type": "dense", "size": 32}, {"type": "dense"}]; the last layer is dense with one output
    per class."""
    if not specs or specs[-1].get("type") != "dense":
        raise ValueError("a VSML network needs at least one layer and must end with a dense layer")
    layers: list[Layer] = []
    shape = tuple(input_shape)
    for index, spec in enumerate(specs):
        spec = dict(spec)
        kind = spec.pop("type", None)
        last = index == len(specs) - 1
        if kind == "dense":
            size = num_classes if last else spec.pop("size", None)
            if last and spec.pop("size", num_classes) != num_classes:
                raise ValueError(f"the last dense layer has one output per class ({num_classes})")
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"hidden dense layers need a positive 'size', got {size!r}")
            layer: Layer = DenseLayer(math.prod(shape), size)
        elif kind == "conv":
            if len(shape) != 3 or any(isinstance(l, DenseLayer) for l in layers):
                raise ValueError(f"conv layers need (C, H, W) inputs and must come before dense layers; got {shape}")
            layer = ConvLayer(shape, spec.pop("channels", 8), spec.pop("kernel", 3), spec.pop("stride", 1))
        else:
            raise ValueError(f"unknown layer type {kind!r}: use 'dense' or 'conv'")
        if spec:
            raise ValueError(f"unknown option(s) {sorted(spec)} in {kind} layer spec")
        layers.append(layer)
        shape = layer.out_shape
    return layers


class VSML(Learner):
    """Variable Shared Meta Learning (Kirsch & Schmidhuber 2021) with the reference defaults.

    Options: `layers` (see `build_layers`), `state_size` N, `message_size` M,
    `num_micro_ticks` per example, `output_idx` (forward-message channel read as the logit),
    `tanh_bound` (logits bounded to bound*tanh(./bound), 0 disables), `feed_label` (the label
    joins the error in backward messages), `backward_pass` (an extra reverse-order pass feeds the
    error back before the next example), `separate_backward_rnn`, `layer_norm` on messages,
    `layerwise_rnns` (one sub-LSTM per layer instead of one shared), `state_clip` (clip states to
    [-v, v]), `batch_average` (batched LA: the B streams of a member form one learner whose first
    half of state dims is averaged over the batch before each example), `batch_error` (with
    `batch_average`, the error each stream feeds back: "per_stream", softmax - y as the env emits
    it, the default: its scale does not depend on B, so one LA runs at any batch size; or
    "batch_mean", (softmax - y) / B, the gradient of the batch-mean loss, as the reference
    implementation feeds it), `coordinates` (each
    sub-LSTM also sees a, b, layer index and t / time_scale), `init_rand_proportion` (fraction of
    cell dims initialised randomly with std 1/sqrt(fan_in)), `input_gate_init` /
    `forget_gate_init` (initial value of the learned input / forget gate biases, on top of the
    fixed -5 / +5 shifts: e.g. 5 opens the input gates halfway, so that examples write into the
    states from the first meta-training step).
    """

    name = "vsml"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        layers: Sequence[dict[str, Any]] = DEFAULT_LAYERS,
        state_size: int = 16,
        message_size: int = 8,
        num_micro_ticks: int = 2,
        output_idx: int = 1,
        tanh_bound: float = 100.0,
        feed_label: bool = False,
        backward_pass: bool = False,
        separate_backward_rnn: bool = False,
        layer_norm: bool = False,
        layerwise_rnns: bool = False,
        state_clip: float | None = None,
        batch_average: bool = False,
        batch_error: str = "per_stream",
        coordinates: bool = False,
        time_scale: float = 500.0,
        init_rand_proportion: float = 0.5,
        input_gate_init: float = 0.0,
        forget_gate_init: float = 0.0,
    ) -> None:
        super().__init__(input_shape, num_classes)
        if message_size < 2 or not 0 <= output_idx < message_size:
            raise ValueError(f"message_size must be >= 2 (error and label channels) and 0 <= output_idx < message_size, "
                             f"got message_size={message_size!r}, output_idx={output_idx!r}")
        check_positive(state_size=state_size, num_micro_ticks=num_micro_ticks,
                       state_clip=state_clip, time_scale=time_scale)
        if batch_error not in BATCH_ERRORS:
            raise ValueError(f"batch_error must be one of {BATCH_ERRORS}, got {batch_error!r}")
        if batch_error != "per_stream" and not batch_average:
            raise ValueError(f"batch_error={batch_error!r} is the error of a batched LA: it needs batch_average=True")
        if not 0.0 <= init_rand_proportion <= 1.0:
            raise ValueError(f"init_rand_proportion must be in [0, 1], got {init_rand_proportion!r}")
        self.layers = build_layers(layers, self.input_shape, self.num_classes)
        self.shape = SubLSTMShape(state_size, message_size, coordinates, layer_norm)
        self.num_micro_ticks, self.output_idx, self.tanh_bound = num_micro_ticks, output_idx, tanh_bound
        self.feed_label, self.backward_pass, self.state_clip = feed_label, backward_pass, state_clip
        self.batch_average, self.coordinates, self.time_scale = batch_average, coordinates, time_scale
        self.pools_streams = batch_average
        self.batch_error = batch_error
        self.init_rand_proportion = init_rand_proportion
        self.gate_init = {"i": input_gate_init, "f": forget_gate_init}
        self._sub_lstm_cache: tuple[torch.Tensor, int, tuple[list, list]] | None = None  # (params, version, views)
        count = len(self.layers) if layerwise_rnns else 1
        self._forward_prefixes = [f"layer{i}." if layerwise_rnns else "" for i in range(len(self.layers))]
        self._backward_prefixes = self._forward_prefixes
        if backward_pass and separate_backward_rnn:
            self._backward_prefixes = ["back." + prefix for prefix in self._forward_prefixes]
        shapes: dict[str, tuple[int, ...]] = {}
        for prefix in dict.fromkeys(self._forward_prefixes[:count] + self._backward_prefixes[:count]):
            shapes.update(self.shape.param_shapes(prefix))
        self.param_spec = ParamSpec.of(**shapes)
        self.config = {"layers": [dict(s) for s in layers], "state_size": state_size, "message_size": message_size,
                       "num_micro_ticks": num_micro_ticks, "output_idx": output_idx, "tanh_bound": tanh_bound,
                       "feed_label": feed_label, "backward_pass": backward_pass,
                       "separate_backward_rnn": separate_backward_rnn, "layer_norm": layer_norm,
                       "layerwise_rnns": layerwise_rnns, "state_clip": state_clip, "batch_average": batch_average,
                       "batch_error": batch_error, "coordinates": coordinates, "time_scale": time_scale,
                       "init_rand_proportion": init_rand_proportion, "input_gate_init": input_gate_init,
                       "forget_gate_init": forget_gate_init}

    # -- meta-parameters and states -------------------------------------------------------------
    def init_named_params(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        named = {}
        for name, shape in self.param_spec.shapes:
            if name.endswith("_w"):  # truncated normal, std 1/sqrt(fan_in); everything else 0 or 1
                named[name] = truncated_normal(shape, 1.0 / math.sqrt(shape[0]), generator)
            else:
                named[name] = torch.ones(shape) if name.endswith("_scale") else torch.zeros(shape)
            if name.endswith("lstm_b"):  # columns (i, g, f, o)
                n = self.shape.state_size
                named[name][:n] = self.gate_init["i"]
                named[name][2 * n : 3 * n] = self.gate_init["f"]
        return named

    def initial_state(self, params: torch.Tensor, batch: int, generator: torch.Generator) -> State:
        pop, like = params.shape[0], {"device": params.device, "dtype": params.dtype}
        n, m = self.shape.state_size, self.shape.message_size
        random_dims = int(n * self.init_rand_proportion)
        draws = 1 if self.batch_average else batch  # batched LA: one learner per member
        state: State = {"t": 0}
        for i, layer in enumerate(self.layers):
            grid = (layer.num_in, layer.num_out)
            cell = truncated_normal((pop, draws, *grid, random_dims), 1.0 / math.sqrt(layer.fan_in), generator, **like)
            cell = torch.cat([cell, cell.new_zeros(pop, draws, *grid, n - random_dims)], dim=-1)
            state[f"c{i}"] = cell.expand(pop, batch, *grid, n).contiguous()
            state[f"h{i}"] = torch.zeros(pop, batch, *grid, n, **like)
            if i > 0:
                state[f"fwd_in{i}"] = torch.zeros(pop, batch, *self.layers[i - 1].out_shape, m, **like)
            if i < len(self.layers) - 1:
                state[f"bwd_in{i}"] = torch.zeros(pop, batch, *layer.out_shape, m, **like)
        if self.backward_pass:
            state["prev_x"] = torch.zeros(pop, batch, *self.input_shape, **like)
        return state

    # -- stepping -------------------------------------------------------------------------------
    def step(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        return self._step(params, state, obs, donated=False)

    def step_donated(self, params: torch.Tensor, state: State, obs: Observation) -> tuple[torch.Tensor, State]:
        return self._step(params, state, obs, donated=True)

    def _step(self, params: torch.Tensor, state: State, obs: Observation, donated: bool
              ) -> tuple[torch.Tensor, State]:
        """`step`; with `donated` the layers may write the new sub-LSTM states over the old ones."""
        forward_lstms, backward_lstms = self._sub_lstms(params)
        state = dict(state)
        feedback = self._feedback_messages(obs)
        t = state["t"]
        if self.backward_pass:
            if t > 0:  # the error of the previous example flows back through it, last layer first
                self._run(backward_lstms, state, state["prev_x"], feedback, True, t, donated)
            self._average_over_batch(state)
            logits = self._run(forward_lstms, state, obs["x"], torch.zeros_like(feedback), False, t, donated)
            state["prev_x"] = obs["x"]
        else:
            self._average_over_batch(state)
            logits = self._run(forward_lstms, state, obs["x"], feedback, False, t, donated)
        state["t"] = t + 1
        if self.tanh_bound:
            logits = torch.tanh(logits / self.tanh_bound) * self.tanh_bound
        return logits, state

    def _sub_lstms(self, params: torch.Tensor) -> tuple[list[SubLSTMParams], list[SubLSTMParams]]:
        """The layers' sub-LSTM parameters for the forward and the backward pass. Reused while the
        same, unmodified `params` come back and no gradient is recorded (a rollout calls `step`
        hundreds of times with one tensor): rebuilding them is a good part of a small step."""
        cached = self._sub_lstm_cache
        if cached is not None and cached[0] is params and cached[1] == params._version:
            return cached[2]
        named = self.param_spec.unflatten(params)
        built = ([SubLSTMParams(self.shape, named, prefix) for prefix in self._forward_prefixes],
                 [SubLSTMParams(self.shape, named, prefix) for prefix in self._backward_prefixes])
        recording = torch.is_grad_enabled() and params.requires_grad
        self._sub_lstm_cache = None if recording else (params, params._version, built)  # a graph must not be reused
        return built

    def _feedback_messages(self, obs: Observation) -> torch.Tensor:
        """Backward messages into the output units: [error, label] (P, B, C, 2) with `feed_label`,
        else [error] (P, B, C, 1); the other message channels are zero (`sub_lstm.message_rows`)."""
        error = obs["error"].unsqueeze(-1)
        if self.batch_error == "batch_mean":  # d(mean over the B streams of the loss) / d(logits)
            error = error / error.shape[1]
        return torch.cat([error, obs["label"].unsqueeze(-1)], dim=-1) if self.feed_label else error

    def _input_messages(self, x: torch.Tensor) -> torch.Tensor:
        """Forward messages of the input units: [x_a] (the other channels zero), flattened unless
        a conv comes first."""
        if isinstance(self.layers[0], DenseLayer):
            return x.reshape(*x.shape[:2], -1, 1)
        return x.unsqueeze(-1)

    def _average_over_batch(self, state: State) -> None:
        if not self.batch_average:
            return
        half = self.shape.state_size // 2
        for i in range(len(self.layers)):
            for key in (f"h{i}", f"c{i}"):
                s = state[key]
                state[key] = torch.cat([s[..., :half].mean(1, keepdim=True).expand_as(s[..., :half]), s[..., half:]], -1)

    def _run(self, sub_lstms: list[SubLSTMParams], state: State, x: torch.Tensor, feedback: torch.Tensor,
             reverse: bool, t: int, donated: bool = False) -> torch.Tensor:
        """One pass over the layers (forward order, or reverse for the backward pass); each layer
        runs its micro ticks on fixed incoming messages, then hands messages to its neighbours.
        Returns the output units' logits (P, B, C) (unbounded). `donated`: the states in `state`
        are the caller's to overwrite."""
        last = len(self.layers) - 1
        order = range(last, -1, -1) if reverse else range(last + 1)
        logits = None
        for i in order:
            layer, p = self.layers[i], sub_lstms[i]
            fwd = self._input_messages(x) if i == 0 else state[f"fwd_in{i}"]
            if isinstance(layer, DenseLayer) and fwd.dim() > 4:  # after a conv: (P, B, C, H, W, M)
                fwd = fwd.flatten(2, -2)
            bwd = feedback if i == last else state[f"bwd_in{i}"]
            coords = (i / max(last, 1), t / self.time_scale) if self.coordinates else None
            state[f"h{i}"], state[f"c{i}"], fwd_out, bwd_out = layer.run(
                p, state[f"h{i}"], state[f"c{i}"], fwd, bwd, self.num_micro_ticks, coords, self.state_clip, donated)
            if i > 0:
                previous = self.layers[i - 1]
                state[f"bwd_in{i - 1}"] = bwd_out.reshape(*bwd_out.shape[:2], *previous.out_shape, -1)
            if i < last:
                state[f"fwd_in{i + 1}"] = fwd_out
            else:
                logits = fwd_out[..., self.output_idx]
        return logits
