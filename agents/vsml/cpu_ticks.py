"""The fused micro ticks of a dense VSML layer on the CPU: a C++ extension (csrc/dense_ticks.cpp).

Same semantics as `triton_tick.fused_dense_ticks`. The eager CPU tick spends its time writing
and re-reading the gates; the extension keeps them in registers, vectorised with AVX2 (chosen
at run time, scalar code elsewhere) and parallel over OpenMP threads. It is built on first use
with torch's JIT extension loader (needs a C++ compiler and ninja; ~20 s) and cached under
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

ENABLED = os.environ.get("VSML_GYM_CPU_KERNEL", "1") != "0"
SOURCE = Path(__file__).resolve().parent / "csrc" / "dense_ticks.cpp"


def build_directory() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vsml_gym" / "torch_extensions"


@functools.lru_cache(maxsize=None)
def _build() -> Exception | None:
    """Builds (or finds the cached build) and loads the extension, once per process. Returns the
    error instead of raising: a machine without a compiler must still run the learner."""
    try:
        cpp_extension = _import_cpp_extension()
        if shutil.which("ninja") is None:  # pip's ninja sits in the venv's bin, maybe not on PATH
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        directory = build_directory()
        directory.mkdir(parents=True, exist_ok=True)
        cpp_extension.load(name="vsml_gym_dense_ticks", sources=[str(SOURCE)], extra_cflags=["-O3", "-fopenmp"],
                           extra_ldflags=["-fopenmp"], build_directory=str(directory), is_python_module=False)
    except Exception as error:  # no compiler, no ninja, a read-only cache...
        warnings.warn(f"the VSML CPU kernel could not be built, using the slower eager tick: {error}", RuntimeWarning)
        return error
    return None


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
    fits = all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    return fits and cpu_kernel_available()


def cpu_dense_ticks(h: torch.Tensor, c: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w_h: torch.Tensor,
                    ticks: int = 1, clip: float | None = None) -> tuple[torch.Tensor, ...]:
    """`ticks` micro ticks in one call, shapes as `triton_tick.fused_dense_ticks`: h, c (P, B, A, O, N);
    u (P, B, A, 4N); v (P, B, O, 4N); w_h (P, N, 4N); states clipped to [-clip, clip] after every
    tick if clip is given. Returns the new h and c, and the new h's means over a (P, B, O, N) and
    over o (P, B, A, N), which the read-outs need; no autograd."""
    load_extension()
    return torch.ops.vsml_gym.dense_ticks(h, c, u, v, w_h, ticks, None if clip is None else float(clip))
