import math

import pytest
import torch

from vsml_gym import rng
from vsml_gym.data import load_split
from vsml_gym.tasks.catalog import build_task
from vsml_gym.tasks import classification
from vsml_gym.tasks.classification import ClassificationTask
from vsml_gym.tasks.synthetic import RandomTask, SumSignTask
from vsml_gym.tasks.transforms import LabelPermutation, PadInput, PixelShuffle, RandomProjection, Resize


def episode_keys(n, episode=0):
    return rng.fold(rng.seed_keys(range(n)), "test", episode)


def test_sum_sign_labels_are_the_sign_of_the_sum_and_noise_is_truncated():
    task = SumSignTask("cpu")
    task.reset(episode_keys(256))
    for t in range(5):
        x, y = task.sample(t)
        assert x.shape == (256, 1, 28, 28)
        assert torch.equal(y, (x.flatten(1).sum(1) >= 0).long())
        mu = x.flatten(1).mean(1, keepdim=True)  # the per-example mean, up to noise
        assert float((x.flatten(1) - mu).abs().max()) < 2.0 + 0.3
        assert 0.3 < float(y.float().mean()) < 0.7
    noise = (x.flatten(1) - x.flatten(1).mean(1, keepdim=True)).flatten()
    expected_std = math.sqrt(1 - 2 * 2 * math.exp(-2) / math.sqrt(2 * math.pi) / (math.erf(2 / math.sqrt(2))))
    assert abs(float(noise.std()) - expected_std) < 0.02  # std of N(0,1) truncated at +-2


def test_random_task_shows_20_fixed_pairs_in_shuffled_blocks():
    task = RandomTask("cpu")
    task.reset(episode_keys(8))
    xs, ys = zip(*(task.sample(t) for t in range(100)))
    xs, ys = torch.stack(xs, 1), torch.stack(ys, 1)  # (N, T, ...)
    for n in range(8):
        flat = xs[n].flatten(1)
        distinct, inverse = torch.unique(flat, dim=0, return_inverse=True)
        assert distinct.shape[0] == 20
        for pair in range(20):
            assert len(set(ys[n][inverse == pair].tolist())) == 1  # a pair always has the same label
        for block in range(5):  # every block of 20 steps shows every pair once
            assert sorted(inverse[block * 20 : (block + 1) * 20].tolist()) == list(range(20))
        assert not torch.equal(inverse[:20], inverse[20:40])
    assert abs(float(xs.mean())) < 0.1 and abs(float(xs.std()) - 1) < 0.1
    task.reset(episode_keys(8, episode=1))
    assert not torch.equal(task.sample(0)[0], xs[:, 0])


def test_classification_task_samples_standardised_dataset_examples():
    images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    labels = torch.arange(50) % 3
    task = ClassificationTask(images, labels, 3, mean=0.5, std=0.25, device="cpu")
    task.reset(episode_keys(16))
    x, y = task.sample(3)
    matches = ((images.float() / 255 - 0.5) / 0.25).flatten(1)
    for n in range(16):
        index = int((matches - x[n].flatten()).abs().sum(1).argmin())
        assert torch.allclose(matches[index], x[n].flatten(), atol=1e-6)
        assert int(labels[index]) == int(y[n])


def test_omniglot_episodes_follow_the_few_shot_protocol(data_root):
    data = load_split("omniglot", "test", data_root)
    task = build_task("omniglot", "test", "cpu", data_root, False, n_way=5, k_shot=1)
    assert task.fixed_episode_length == 6 and task.query_step == 5 and task.num_classes == 5
    task.reset(episode_keys(64))
    index, labels = task._index, task._labels
    characters = data.labels[index]  # (N, 6) source character of every example
    for n in range(64):
        support_chars, query_char = characters[n, :5].tolist(), int(characters[n, 5])
        assert len(set(support_chars)) == 5  # 5 distinct classes
        assert sorted(labels[n, :5].tolist()) == list(range(5))  # renumbered 0..4
        assert query_char in support_chars  # the query comes from a support class...
        same = support_chars.index(query_char)
        assert int(index[n, 5]) != int(index[n, same])  # ...but is a different drawing
        assert int(labels[n, 5]) == int(labels[n, same])
    x, y = task.sample(5)
    expected = (data.images[index[:, 5]].float() / 255 - 0.9221) / 0.2681
    assert torch.allclose(x, expected, atol=1e-5) and torch.equal(y, labels[:, 5])
    assert len(set(characters[:, 0].tolist())) > 30  # episodes draw from many characters


def test_omniglot_k_shot_support_has_k_distinct_drawings_per_class(data_root):
    task = build_task("omniglot", "train", "cpu", data_root, False, n_way=3, k_shot=4)
    task.reset(episode_keys(16))
    assert task._index.shape == (16, 13)
    for n in range(16):
        labels = task._labels[n, :12]
        assert torch.equal(torch.bincount(labels, minlength=3), torch.tensor([4, 4, 4]))
        assert len(set(task._index[n].tolist())) == 13  # every drawing differs, query included


def _constant_task(n_classes=4, shape=(1, 6, 6)):
    images = torch.rand(40, *shape, generator=torch.Generator().manual_seed(0))
    return ClassificationTask(images, torch.arange(40) % n_classes, n_classes, 0.0, 1.0, "cpu")


def test_projection_preserves_norms_in_expectation_and_is_glorot():
    task = RandomProjection(_constant_task(), "episode", task_seed=0)
    task.reset(episode_keys(4000))
    x_raw, _ = task.task.sample(0)
    x, _ = task.sample(0)
    ratio = x.flatten(1).pow(2).sum(1) / x_raw.flatten(1).pow(2).sum(1)
    assert abs(float(ratio.mean()) - 1.0) < 0.03
    limit = math.sqrt(6 / (2 * 36))
    assert float(task.matrix.abs().max()) <= limit and float(task.matrix.abs().max()) > 0.95 * limit


def test_fixed_projection_is_shared_and_kept_episode_projection_is_resampled():
    fixed = RandomProjection(_constant_task(), "fixed", task_seed=3)
    fixed.reset(episode_keys(2))
    first = fixed.matrix.clone()
    fixed.reset(episode_keys(2, episode=1))
    assert torch.equal(first, fixed.matrix) and first.shape == (36, 36)
    assert not torch.equal(first, RandomProjection(_constant_task(), "fixed", task_seed=4).matrix)

    per_episode = RandomProjection(_constant_task(), "episode", task_seed=3)
    per_episode.reset(episode_keys(2))
    a = per_episode.matrix.clone()
    per_episode.reset(episode_keys(2, episode=1))
    assert a.shape == (2, 36, 36) and not torch.equal(a[0], a[1]) and not torch.equal(a, per_episode.matrix)
    x_raw, _ = per_episode.task.sample(0)
    x, _ = per_episode.sample(0)
    assert torch.allclose(x[1].flatten(), x_raw[1].flatten() @ per_episode.matrix[1], atol=1e-5)


def test_label_permutation_fixed_and_per_episode():
    base = _constant_task()
    task = LabelPermutation(base, "episode", task_seed=0)
    task.reset(episode_keys(50))
    _, y_raw = base.sample(2)
    _, y = task.sample(2)
    assert torch.equal(y, task.permutation.gather(1, y_raw[:, None]).squeeze(1))
    assert len({tuple(p) for p in task.permutation.tolist()}) > 10
    fixed = LabelPermutation(base, "fixed", task_seed=0)
    fixed.reset(episode_keys(50))
    assert torch.equal(fixed.sample(2)[1], fixed.permutation[y_raw])


def test_pixel_shuffle_resize_and_pad_input():
    base = _constant_task()
    base.reset(episode_keys(3))
    x_raw, _ = base.sample(0)
    shuffled = PixelShuffle(base, task_seed=1)
    x, _ = shuffled.sample(0)
    assert torch.equal(x.flatten(1), x_raw.flatten(1)[:, shuffled.permutation])
    assert not torch.equal(x, x_raw) and torch.equal(x.flatten(1).sort(1).values, x_raw.flatten(1).sort(1).values)

    resized = Resize(base, (3, 3))
    x, _ = resized.sample(0)
    assert x.shape == (3, 1, 3, 3) and resized.input_shape == (1, 3, 3)
    assert torch.allclose(x.mean((1, 2, 3)), x_raw.mean((1, 2, 3)), atol=0.1)  # a low-pass filter keeps the mean
    constant = Resize(ClassificationTask(torch.full((2, 1, 6, 6), 0.7), torch.tensor([0, 1]), 2, 0.0, 1.0, "cpu"), (4, 5))
    constant.reset(episode_keys(2))
    assert torch.allclose(constant.sample(0)[0], torch.full((2, 1, 4, 5), 0.7))

    padded = PadInput(base, (2, 10, 10))
    x, _ = padded.sample(0)
    assert x.shape == (3, 2, 10, 10)
    assert torch.equal(x[:, :1, 2:8, 2:8], x_raw) and float(x[:, 1].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="smaller"):
        PadInput(base, (1, 4, 4))


@pytest.mark.parametrize("gather_bytes", [1, 3000, 8 << 20])
def test_classification_examples_gathered_in_blocks_equal_a_per_step_gather(gather_bytes, monkeypatch):
    """Examples are gathered and standardised many steps at once (as many as fit the budget):
    every step must equal the plain definition, image[randint(fold(key, "index", t // 256))[t % 256]]."""
    monkeypatch.setattr(classification, "_GATHER_BYTES_CPU", gather_bytes)
    images = torch.randint(0, 256, (37, 1, 5, 3), dtype=torch.uint8)
    labels = torch.arange(37) % 4
    task = ClassificationTask(images, labels, 4, mean=0.3, std=0.2, device="cpu")
    keys = episode_keys(6)
    task.reset(keys)
    expected_steps = {1: 1, 3000: 8, 8 << 20: 256}[gather_bytes]  # a step: 6 streams x 15 floats x 4 bytes
    assert classification.steps_per_gather(6, 15, gather_bytes) == expected_steps
    for t in [0, 1, 2, 3, 4, 255, 256, 300, 511, 512, 600]:
        index = rng.randint(rng.fold(keys, "index", t // 256), 37, (256,))[:, t % 256]
        x, y = task.sample(t)
        assert torch.equal(x, task.standardise(images[index])) and torch.equal(y, labels[index])
        assert x.is_contiguous()


@pytest.mark.parametrize("make", [lambda: _constant_task(), lambda: RandomTask("cpu"), lambda: SumSignTask("cpu")])
def test_examples_do_not_depend_on_the_order_steps_are_read(make):
    steps = [0, 1, 255, 256, 257, 330, 700]
    forward, backward = make(), make()
    forward.reset(episode_keys(5))
    backward.reset(episode_keys(5))
    ahead = {t: forward.sample(t) for t in steps}
    for t in reversed(steps):
        x, y = backward.sample(t)
        assert torch.equal(x, ahead[t][0]) and torch.equal(y, ahead[t][1])
