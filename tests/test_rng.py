import math

import pytest
import torch

from vsml_gym import rng


def lowbias32_reference(x: int) -> int:
    """Plain-Python big-int version of the hash, the reference for the tensor one."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_equals_big_int_reference_without_overflow():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 123456789, 0xDEADBEEF]
    values += torch.randint(0, 2**32, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    got = rng.mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [lowbias32_reference(v) for v in values]
    assert [rng.mix32(v) for v in values] == got  # the Python-int path used for scalar salts


def test_streams_do_not_depend_on_batch_composition():
    keys = rng.seed_keys(range(50))
    full = rng.uniform(rng.fold(keys, "x", 7), (3, 4))
    alone = torch.cat([rng.uniform(rng.fold(keys[i : i + 1], "x", 7), (3, 4)) for i in range(50)])
    assert torch.equal(full, alone)


def test_uniform_is_uniform_and_strictly_inside_unit_interval():
    u = rng.uniform(rng.seed_keys(range(200)), (5000,)).flatten()
    assert float(u.min()) > 0.0 and float(u.max()) < 1.0
    counts = torch.histc(u, bins=20, min=0.0, max=1.0)
    expected = u.numel() / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.0  # 19 dof: P(chi2 > 45) ~ 7e-4


def test_different_sub_streams_are_uncorrelated():
    keys = rng.seed_keys(range(2000))
    a = rng.normal(rng.fold(keys, "a"), (10,)).flatten()
    b = rng.normal(rng.fold(keys, "b"), (10,)).flatten()
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.05
    assert abs(float(a.mean())) < 0.05 and abs(float(a.std()) - 1.0) < 0.05


def test_randint_range_and_balance():
    r = rng.randint(rng.seed_keys(range(100)), 7, (700,))
    assert int(r.min()) == 0 and int(r.max()) == 6
    counts = torch.bincount(r.flatten(), minlength=7).float()
    assert float(counts.min() / counts.max()) > 0.9


def test_permutation_is_a_permutation():
    perm = rng.permutation(rng.seed_keys(range(30)), 17)
    assert torch.equal(perm.sort(dim=-1).values, torch.arange(17).expand(30, 17))
    assert len({tuple(p) for p in perm.tolist()}) == 30


def test_seed_keys_distinguish_large_seeds_and_reject_negative():
    keys = rng.seed_keys([5, 5 + 2**32, 5 + 2**40])
    assert len(set(keys.tolist())) == 3
    with pytest.raises(ValueError, match="non-negative"):
        rng.seed_keys([-1])


def test_normal_matches_standard_normal_quantiles():
    z = rng.normal(rng.seed_keys([3]), (200000,)).flatten()
    for q, expected in [(0.5, 0.0), (0.8413, 1.0), (0.9772, 2.0)]:
        assert abs(float(torch.quantile(z[:100000], q)) - expected) < 0.02
    assert math.isfinite(float(z.abs().max()))


def test_blockwise_draws_serve_rows_and_spans_of_one_block():
    calls = []

    def draw(block):
        calls.append(block)
        steps = torch.arange(block * 4, block * 4 + 4)
        return steps[:, None].expand(4, 3), -steps

    draws = rng.BlockwiseDraws(draw, 4)
    row, negated = draws.at(6)
    assert row.tolist() == [6, 6, 6] and int(negated) == -6
    rows, _ = draws.span(4, 7)
    assert rows[:, 0].tolist() == [4, 5, 6] and calls == [1]  # one draw for the whole block
    assert draws.at(1)[0].tolist() == [1, 1, 1] and calls == [1, 0]
    with pytest.raises(ValueError, match="within one block"):
        draws.span(3, 6)
    with pytest.raises(ValueError, match="empty"):
        draws.span(5, 5)
