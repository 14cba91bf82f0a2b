"""One step of a dense VSML layer on the CPU: a C++ extension (csrc/dense_layer.cpp).

Input terms, micro ticks and read-outs in one call, the CPU's twin of
`triton_layer.fused_dense_layer`. The eager CPU tick spends its time writing and re-reading the
gates, and the dozen small torch ops around it cost as much as the ticks of one network; the
extension keeps the gates in registers, vectorised with AVX2 (chosen at run time, scalar code
elsewhere) and parallel over OpenMP threads. It is built on first use with torch's JIT extension
loader (needs a C++ compiler and ninja; ~20 s) and cached under
$XDG_CACHE_HOME/vsml_gym/torch_extensions, so later processes only load it. If the build fails
the learner falls back to the eager tick with one warning. VSML_GYM_CPU_KERNEL=0 disables it
(e.g. to compare).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import warnings
from pathlib import Path

import torch

from agents.vsml.sub_lstm import SubLSTMParams

ENABLED = os.environ.get("VSML_GYM_CPU_KERNEL", "1") != "0"
SOURCE = Path(__file__).resolve().parent / "csrc" / "dense_layer.cpp"


def build_directory() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vsml_gym" / "torch_extensions"


@functools.lru_cache(maxsize=None)
def _build() -> Exception | None:
    """Builds (or finds the cached build) and loads the extension, once per process. Returns the
    error instead of raising: a machine without a compiler must still run the learner."""
    try:
        compile_and_load("vsml_gym_dense_layer", SOURCE, build_directory())
    except Exception as error:  # no compiler, no ninja, a read-only cache...
        warnings.warn(f"the VSML CPU kernel could not be built, using the slower eager tick: {error}", RuntimeWarning)
        return error
    return None


def compile_and_load(name: str, source: Path, directory: Path) -> None:
    """Builds `source` (if its cached build in `directory` is stale) and loads its operators into
    torch.ops, with the flags the kernel needs."""
    cpp_extension = _import_cpp_extension()
    if shutil.which("ninja") is None:  # pip's ninja sits in the venv's bin, maybe not on PATH
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    directory.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(name=name, sources=[str(source)], extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"],
                       build_directory=str(directory), is_python_module=False)


def _import_cpp_extension():
    """torch.utils.cpp_extension, without the warning its import logs on machines without CUDA."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def load_extension() -> None:
    """Loads the extension, raising the build error (for tests, which must not silently fall back)."""
    error = _build()
    if error is not None:
        raise RuntimeError(f"building {SOURCE} failed: {error}") from error


def cpu_kernel_available() -> bool:
    return ENABLED and _build() is None


def cpu_tick_supported(*tensors: torch.Tensor) -> bool:
    """The kernel takes float32 CPU tensors only."""
    fits = all(t.is_cpu and t.dtype == torch.float32 for t in tensors)
    return fits and cpu_kernel_available()


#: donated states up to this size (h and c together) are updated in place, larger ones go to
#: fresh buffers that the kernel writes past the caches. In place on MNIST (1 MB of states
#: per member), benchmarks/cpu_kernel_ab.py: 1.03-1.22x at P=1 (the VM's slow and fast
#: periods), 1.06x at P=4, 1.0x at P=8, 0.92x at P=32: the caches hold one set of small states,
#: not two.
IN_PLACE_MAX_BYTES = 4 << 20


def cpu_dense_layer(p: SubLSTMParams, h: torch.Tensor, c: torch.Tensor, fwd: torch.Tensor, bwd: torch.Tensor,
                    ticks: int = 1, clip: float | None = None, u_add: torch.Tensor | None = None,
                    v_add: torch.Tensor | None = None, donated: bool = False) -> tuple[torch.Tensor, ...]:
    """One step of a dense layer (`DenseLayer.run`) in one call: the input terms u = fwd @ w_fwd
    (+ u_add (P, A, 4N)) and v = bwd @ w_bwd + bias (+ v_add (P, O, 4N)), `ticks` micro ticks
    (h, c (P, B, A, O, N), fwd (P, B, A, K), bwd (P, B, O, K); states clipped to [-clip, clip]
    after every tick if clip is given) and, without layer norm, the outgoing messages (linear
    read-outs of the new h's means). Returns (h, c, forward (P, B, O, M), backward (P, B, A, M)),
    the messages None with layer norm; no autograd. `donated`: the caller never reads h and c
    again, so the new states may be written over them (see IN_PLACE_MAX_BYTES)."""
    load_extension()
    read_outs = (None,) * 4 if p.ln is not None else (p.fwd_w, p.fwd_b, p.bwd_w, p.bwd_b)
    # whole input maps: the kernel reads the rows of the messages' channels itself (message_rows)
    rest = (fwd, bwd, p.w_fwd, p.w_bwd, p.bias, p.w_h, u_add, v_add, *read_outs, ticks,
            None if clip is None else float(clip))
    in_place = (donated and h.is_contiguous() and c.is_contiguous()
                and h.nbytes + c.nbytes <= IN_PLACE_MAX_BYTES)
    if in_place:
        fwd_out, bwd_out = torch.ops.vsml_gym.dense_layer_(h, c, *rest)
    else:
        h, c, fwd_out, bwd_out = torch.ops.vsml_gym.dense_layer(h, c, *rest)
    return (h, c, None, None) if p.ln is not None else (h, c, fwd_out, bwd_out)
