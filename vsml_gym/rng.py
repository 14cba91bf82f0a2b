"""Counter-based random numbers: every draw is a pure hash of (key, counter).

Each sub-environment owns a 32-bit key derived from its seed. A draw at step t is
`hash(fold(key, purpose, t), element)`, so a stream's numbers do not depend on which
other streams are batched with it, on the device, or on how many draws happened before.
That is what makes a vector env of N streams equal N single envs with the same seeds,
lets antithetic ES pairs share one data stream, and keeps the hot path free of Python
loops over environments and of host-device round trips.

Keys are int64 tensors holding values in [0, 2**32). All arithmetic stays below 2**63,
so results are exact on every device.
"""

from __future__ import annotations

import functools
import math
import zlib
from typing import Callable, Sequence

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_MAX_CHUNK_ELEMENTS = 1 << 24


def _mul32(x: torch.Tensor | int, constant: int) -> torch.Tensor | int:
    """(x * constant) mod 2**32 without int64 overflow (x < 2**32, constant < 2**32)."""
    if isinstance(x, int):
        return (x * constant) & _MASK32
    high, low = constant >> 16, constant & 0xFFFF
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def mix32(x: torch.Tensor | int) -> torch.Tensor | int:
    """A bijective avalanche hash on 32-bit values (the 'lowbias32' integer hash), on int64
    tensors or Python ints (scalar salts then cost no tensor ops)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _salt(value: int | str | torch.Tensor) -> int | torch.Tensor:
    if isinstance(value, str):  # named sub-streams read better than magic numbers
        value = zlib.crc32(value.encode())
    if isinstance(value, torch.Tensor):
        return mix32(value.to(torch.int64) + _GOLDEN)
    return mix32(int(value) + _GOLDEN)


def fold(keys: torch.Tensor, *values: int | str | torch.Tensor) -> torch.Tensor:
    """Derive child keys: fold(keys, "index", t) names an independent sub-stream of each key.
    Tensor values broadcast against keys (one child key per pair)."""
    for value in values:
        keys = mix32(keys ^ _salt(value))
    return keys


def fold_int(key: int, *values: int | str) -> int:
    """`fold` for one plain-int key: derive sub-seeds on the host without tensors."""
    for value in values:
        key = mix32(key ^ _salt(value))
    return key


def seed_keys(seeds: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """One key per (arbitrarily large, non-negative) integer seed."""
    if any(int(s) < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(seeds)}")
    low = torch.tensor([int(s) & _MASK32 for s in seeds], dtype=torch.int64, device=device)
    high = torch.tensor([(int(s) >> 32) & _MASK32 for s in seeds], dtype=torch.int64, device=device)
    return fold(fold(torch.zeros_like(low), low), high)


@functools.lru_cache(maxsize=32)
def _salted_counters(count: int, device: torch.device) -> torch.Tensor:
    return mix32(torch.arange(count, dtype=torch.int64, device=device) + _GOLDEN)


def bits(keys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """32-bit random integers of shape keys.shape + shape, one per (key, element index)."""
    shape = tuple(shape)
    count = math.prod(shape)
    flat_keys = keys.reshape(-1, 1)
    salted = _salted_counters(count, keys.device)
    rows_per_chunk = max(1, _MAX_CHUNK_ELEMENTS // max(count, 1))
    chunks = [mix32(chunk ^ salted) for chunk in flat_keys.split(rows_per_chunk)]
    out = torch.cat(chunks) if chunks else flat_keys.new_empty((0, count))
    return out.reshape(*keys.shape, *shape)


def uniform(keys: torch.Tensor, shape: Sequence[int] = ()) -> torch.Tensor:
    """float32 uniforms strictly inside (0, 1)."""
    return ((bits(keys, shape) >> 9).to(torch.float32) + 0.5) * (1.0 / (1 << 23))


def randint(keys: torch.Tensor, high: int, shape: Sequence[int] = ()) -> torch.Tensor:
    """Integers uniform in [0, high) (bias below high / 2**32)."""
    if high <= 0:
        raise ValueError(f"high must be positive, got {high}")
    return bits(keys, shape) % high


def normal(keys: torch.Tensor, shape: Sequence[int] = ()) -> torch.Tensor:
    """Standard normals by the Box-Muller transform."""
    u = uniform(keys, (2, *shape))
    u1, u2 = u.unbind(keys.dim())
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


def permutation(keys: torch.Tensor, n: int) -> torch.Tensor:
    """A uniformly random permutation of range(n) per key: shape keys.shape + (n,)."""
    return torch.argsort(bits(keys, (n,)), dim=-1)


class BlockwiseDraws:
    """Per-step values made a block of steps at a time: `draw(block)` returns step-major tables
    (a tensor or a tuple of tensors, each (block_size, N, ...)) holding the values of steps
    block*block_size ... (block+1)*block_size-1. One pass per block instead of one per step
    (a step then costs a view), and the same values whatever order the steps are read in. The
    rows returned are views of the cached table: callers must not write into them."""

    def __init__(self, draw: Callable[[int], torch.Tensor | tuple[torch.Tensor, ...]], block_size: int) -> None:
        self._draw, self.block_size = draw, block_size
        self._block, self._table = -1, None

    def at(self, t: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The values of step t."""
        block, offset = divmod(t, self.block_size)
        return self._select(block, offset)

    def span(self, start: int, stop: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The values of steps start ... stop-1, which must lie in one block."""
        if not start < stop:
            raise ValueError(f"an empty span of steps: start={start}, stop={stop}")
        block, offset = divmod(start, self.block_size)
        if stop > (block + 1) * self.block_size:
            raise ValueError(f"steps {start}..{stop - 1} are not within one block of {self.block_size} steps")
        return self._select(block, slice(offset, offset + stop - start))

    def _select(self, block: int, rows: int | slice) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if block != self._block:
            self._table, self._block = self._draw(block), block
        if isinstance(self._table, tuple):
            return tuple(table[rows] for table in self._table)
        return self._table[rows]
