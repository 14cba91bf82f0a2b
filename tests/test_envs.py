import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import vsml_gym
from vsml_gym.data import DatasetNotFoundError
from vsml_gym.envs import OnlineVectorEnv


def softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


def test_every_builtin_id_is_registered():
    assert set(vsml_gym.BUILTIN_ENVS) <= set(vsml_gym.registered_env_ids())
    assert len(vsml_gym.BUILTIN_ENVS) == 10


@pytest.mark.parametrize("env_id", sorted(vsml_gym.BUILTIN_ENVS))
def test_check_env_passes_for_every_registered_id(env_id, data_root):
    env = gym.make(env_id, split="test", data_root=str(data_root), episode_length=None)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_feedback_arrives_one_step_late(data_root):
    env = gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(data_root), episode_length=30)
    obs, _ = env.reset(seed=1)
    assert not obs["error"].any() and not obs["label"].any()
    assert obs["x"].shape == (1, 28, 28) and obs["x"].dtype == np.float32
    rng = np.random.default_rng(0)
    for t in range(30):
        logits = rng.normal(size=10).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(logits)
        y = info["label"]
        expected_error = softmax(logits.astype(np.float64)) - np.eye(10)[y]
        np.testing.assert_allclose(next_obs["error"], expected_error, atol=1e-6)
        np.testing.assert_array_equal(next_obs["label"], np.eye(10)[y])
        expected_loss = -np.log(softmax(logits.astype(np.float64))[y])
        assert reward == pytest.approx(-expected_loss, rel=1e-5) and info["loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert info["correct"] == (int(np.argmax(logits)) == y) and info["scored"]
        assert not terminated and truncated == (t == 29)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(10, np.float32))


def _rollout_single(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    xs, labels = [obs["x"]], []
    for a in actions:
        obs, _, _, _, info = env.step(a)
        xs.append(obs["x"])
        labels.append(info["label"])
    return np.stack(xs), labels


def test_same_seed_same_episode_different_seed_different(data_root):
    env = gym.make("VSML/FashionMNIST-Online-v0", split="train", data_root=str(data_root), episode_length=20)
    actions = np.zeros((20, 10), np.float32)
    a, la = _rollout_single(env, 7, actions)
    b, lb = _rollout_single(env, 7, actions)
    c, lc = _rollout_single(env, 8, actions)
    assert np.array_equal(a, b) and la == lb
    assert not np.array_equal(a, c) and la != lc
    obs_next_episode, _ = env.reset()  # seed=None continues the stream with a new episode
    assert not np.array_equal(obs_next_episode["x"], a[0])


VECTOR_CASES = [
    ("VSML/MNIST-Online-v0", {}),
    ("VSML/MNIST-RandProj-Online-v0", {"projection": "episode", "label_permutation": "episode"}),
    ("VSML/EMNIST-Online-v0", {"resize": 14, "pad_input": (1, 28, 28), "pad_outputs": 64}),
    ("VSML/CIFAR10-Online-v0", {"pixel_shuffle": True, "classes": [3, 1, 7]}),
    ("VSML/SumSign-Online-v0", {}),
    ("VSML/Random-Online-v0", {}),
    ("VSML/Omniglot-5Way1Shot-v0", {}),
]


@pytest.mark.parametrize("env_id,options", VECTOR_CASES)
def test_vector_env_matches_single_envs_with_the_same_seeds(env_id, options, data_root):
    n, seed = 4, 11
    common = dict(split="test", data_root=str(data_root), **options)
    if "Omniglot" not in env_id:
        common["episode_length"] = 8
    venv = gym.make_vec(env_id, num_envs=n, **common)
    assert isinstance(venv, OnlineVectorEnv)
    singles = [gym.make(env_id, **common) for _ in range(n)]
    length = venv.episode_length
    actions = torch.randn(2 * length + 1, n, venv.single_action_space.shape[0], generator=torch.Generator().manual_seed(0))

    obs, _ = venv.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    for step in range(2 * length + 1):  # two episodes, across a NEXT_STEP autoreset
        for i in range(n):
            for key in ("x", "error", "label"):
                np.testing.assert_allclose(obs[key][i].numpy(), single_obs[i][key], atol=1e-5, err_msg=f"{key} env {i}")
        obs, reward, _, truncated, info = venv.step(actions[step])
        if step == length:  # the autoreset step: the singles start their next episode by hand
            single_obs = [env.reset()[0] for env in singles]
            assert not info["scored"].any() and not truncated.any()
            assert not any(info[f"_{key}"].any() for key in ("loss", "correct", "label", "scored"))  # no step info
            continue
        for i, env in enumerate(singles):
            single_obs[i], r, _, single_truncated, single_info = env.step(actions[step, i].numpy())
            assert float(reward[i]) == pytest.approx(r, abs=1e-5)
            assert int(info["label"][i]) == single_info["label"] and bool(truncated[i]) == single_truncated
    venv.close()


def test_vector_env_outputs_tensors_and_metadata(data_root):
    venv = gym.make_vec("VSML/KMNIST-Online-v0", num_envs=6, split="test", data_root=str(data_root), device="cpu")
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = venv.reset(seed=0)
    assert obs["x"].shape == (6, 1, 28, 28) and obs["x"].dtype == torch.float32
    assert venv.observation_space["x"].shape == (6, 1, 28, 28) and venv.action_space.shape == (6, 10)
    assert venv.episode_length == 2000  # meta-test default
    _, reward, terminated, truncated, info = venv.step(torch.zeros(6, 10))
    assert reward.shape == (6,) and terminated.dtype == torch.bool and not terminated.any()
    keys = {"loss", "correct", "label", "scored"}
    assert set(info) == keys | {f"_{key}" for key in keys}  # Gymnasium's vector info convention
    assert all(info[f"_{key}"].dtype == torch.bool and info[f"_{key}"].all() for key in keys)
    assert torch.allclose(reward, torch.full((6,), -float(np.log(10))))
    # each sub-env its own stream
    assert len({tuple(row.flatten().tolist()) for row in obs["x"]}) == 6


def test_envs_per_stream_pairs_share_one_data_stream(data_root):
    venv = gym.make_vec("VSML/MNIST-Online-v0", num_envs=6, envs_per_stream=2, split="test",
                        data_root=str(data_root), episode_length=5)
    obs, _ = venv.reset(seed=3)
    for _ in range(4):
        assert torch.equal(obs["x"][0], obs["x"][1]) and torch.equal(obs["x"][4], obs["x"][5])
        assert not torch.equal(obs["x"][0], obs["x"][2])
        obs, _, _, _, info = venv.step(torch.randn(6, 10))
        assert torch.equal(info["label"][0::2], info["label"][1::2])
    single = gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(data_root), episode_length=5)
    first, _ = single.reset(seed=4)  # the second pair is stream seed + 1
    np.testing.assert_array_equal(venv.reset(seed=3)[0]["x"][2].numpy(), first["x"])
    with pytest.raises(ValueError, match="divisor"):
        gym.make_vec("VSML/SumSign-Online-v0", num_envs=5, envs_per_stream=2)


def test_same_step_autoreset_returns_final_obs_and_new_episode():
    venv = gym.make_vec("VSML/SumSign-Online-v0", num_envs=3, episode_length=3, autoreset_mode="SameStep")
    first, _ = venv.reset(seed=0)
    for t in range(3):
        obs, _, _, truncated, info = venv.step(torch.randn(3, 2))
    assert truncated.all() and "final_obs" in info and info["_final_obs"].all() and info["_final_info"].all()
    assert not obs["error"].any() and info["final_obs"]["error"].abs().sum() > 0
    assert not torch.equal(obs["x"], first["x"])  # the next episode already began
    venv.step(torch.randn(3, 2))  # and continues without a reset


def test_disabled_autoreset_requires_reset():
    venv = gym.make_vec("VSML/SumSign-Online-v0", num_envs=2, episode_length=2, autoreset_mode="Disabled")
    venv.reset(seed=0)
    venv.step(torch.zeros(2, 2))
    venv.step(torch.zeros(2, 2))
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(torch.zeros(2, 2))


def test_omniglot_rewards_only_the_query(data_root):
    env = gym.make("VSML/Omniglot-5Way1Shot-v0", split="test", data_root=str(data_root))
    env.reset(seed=0)
    rewards, scored = [], []
    for t in range(6):
        _, reward, _, truncated, info = env.step(np.random.default_rng(t).normal(size=5).astype(np.float32))
        rewards.append(reward)
        scored.append(info["scored"])
    assert scored == [False] * 5 + [True] and truncated
    assert rewards[:5] == [0.0] * 5 and rewards[5] < 0
    with pytest.raises(ValueError, match="fixed episodes"):
        gym.make("VSML/Omniglot-5Way1Shot-v0", split="test", data_root=str(data_root), episode_length=10)


@pytest.mark.parametrize(
    "action,error,match",
    [
        (np.zeros(9, np.float32), ValueError, "shape"),
        (np.zeros((1, 10), np.float32), ValueError, "shape"),
        (np.full(10, np.nan, np.float32), ValueError, "NaN"),
        (np.zeros(10, np.int64), TypeError, "floating"),
    ],
)
def test_single_env_rejects_bad_actions(action, error, match, data_root):
    env = gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(data_root))
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.unwrapped.step(action)


def test_vector_env_rejects_bad_actions_and_defers_nan_check_when_asked():
    venv = gym.make_vec("VSML/SumSign-Online-v0", num_envs=4, episode_length=3)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="floating"):
        venv.step(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        venv.step(torch.full((4, 2), float("nan")))
    deferred = gym.make_vec("VSML/SumSign-Online-v0", num_envs=4, episode_length=3, nan_check="episode")
    deferred.reset(seed=0)
    deferred.step(torch.full((4, 2), float("nan")))  # no sync, no error yet
    deferred.step(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        deferred.step(torch.zeros(4, 2))  # the episode ends here


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), None])
def test_deferred_nan_check_catches_any_infinite_logit_and_accepts_huge_finite_ones(bad):
    env = gym.make_vec("VSML/SumSign-Online-v0", num_envs=3, episode_length=2, nan_check="episode")
    env.reset(seed=0)
    actions = torch.full((3, 2), 3e38)  # their sum overflows; each is finite
    if bad is not None:
        actions[2, 1] = bad
    env.step(actions)
    if bad is None:
        env.step(torch.zeros(3, 2))
        env.reset()
        return
    with pytest.raises(ValueError, match="NaN or infinite"):
        env.step(torch.zeros(3, 2))
    env.reset()  # the error is reported once; the next episode starts clean
    env.step(torch.zeros(3, 2))
    env.step(torch.zeros(3, 2))


def test_bad_options_raise_clear_errors(data_root):
    with pytest.raises(TypeError, match="did you mean 'episode_length'"):
        gym.make("VSML/MNIST-Online-v0", episode_lenght=10)
    with pytest.raises(TypeError, match="n_way"):
        gym.make("VSML/MNIST-Online-v0", n_way=5)  # a few-shot option on a plain task
    with pytest.raises(ValueError, match="split"):
        gym.make("VSML/MNIST-Online-v0", split="validation")
    with pytest.raises(ValueError, match="projection"):
        gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(data_root), projection="always")
    with pytest.raises(ValueError, match="out of range"):
        gym.make("VSML/MNIST-Online-v0", split="test", data_root=str(data_root), classes=[1, 10])
    with pytest.raises(ValueError, match="episode_length"):
        gym.make("VSML/SumSign-Online-v0", episode_length=0)
    with pytest.raises(ValueError, match="num_envs"):
        gym.make_vec("VSML/SumSign-Online-v0", num_envs=0)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="vsml-gym data download kmnist"):
        gym.make("VSML/KMNIST-Online-v0", split="test", data_root=str(tmp_path))


def test_user_registered_task_from_tensors_and_from_a_dataset():
    images = torch.randint(0, 256, (30, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(30) % 3
    env_id = vsml_gym.register_task("Test/Tensors-Online-v0", train=(images, labels), test=(images[:9], labels[:9]),
                                    episode_length=12)
    env = gym.make(env_id, split="test")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["x"].shape == (1, 8, 8) and env.action_space.shape == (3,)
    pixels = images.float() / 255
    standardised = ((pixels[:9] - pixels.mean()) / pixels.std()).flatten(1).numpy()
    assert np.abs(standardised - obs["x"].reshape(1, -1)).sum(1).min() < 1e-4  # a test-split example
    venv = gym.make_vec(env_id, num_envs=4, projection="episode")
    vobs, _ = venv.reset(seed=0)
    assert vobs["x"].shape == (4, 1, 8, 8) and venv.episode_length == 12

    from PIL import Image

    dataset = [(Image.fromarray(images[i, 0].numpy()), int(labels[i])) for i in range(30)]
    pil_id = vsml_gym.register_task("Test/PIL-Online-v0", train=dataset)
    pil_env = gym.make(pil_id)
    assert pil_env.reset(seed=0)[0]["x"].shape == (1, 8, 8)
    with pytest.raises(ValueError, match="without a 'test' split"):
        gym.make(pil_id, split="test")
    with pytest.raises(ValueError, match="already registered"):
        vsml_gym.register_task(pil_id, train=dataset)


def test_vector_env_flags_are_the_callers_to_write():
    """Writing into a step's flag vectors must not leak into later steps or into the other
    results of the same step (no shared buffers), also on the autoreset step."""
    env = gym.make_vec("VSML/SumSign-Online-v0", num_envs=3, episode_length=2)
    env.reset(seed=0)
    for _ in range(3):  # a step, the last step of the episode, then the autoreset step
        _, reward, terminated, truncated, info = env.step(torch.zeros(3, 2))
        was_truncated = truncated.clone()
        truncated[0] = True
        terminated |= True
        info["scored"][:] = False
        reward[1] = 5.0
        assert float(info["loss"][1]) != 5.0 and not info["correct"].all()
    _, _, terminated, truncated, info = env.step(torch.zeros(3, 2))
    assert not was_truncated.any() and not truncated.any() and not terminated.any() and info["scored"].all()


def test_deferred_nan_check_does_not_hold_the_autograd_graph():
    env = gym.make_vec("VSML/SumSign-Online-v0", num_envs=2, episode_length=3, nan_check="episode")
    env.reset(seed=0)
    weight = torch.ones(2, requires_grad=True)
    env.step(torch.zeros(2, 2) * weight)
    assert env.unwrapped._nonfinite_probe.grad_fn is None and not env.unwrapped._nonfinite_probe.requires_grad


#: (env id, gym.make kwargs, exception, message regex): each bad value gets one sentence naming it and what is accepted
BAD_OPTIONS = [
    ("VSML/MNIST-Online-v0", {"classes": "10"}, TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got '10'"),
    ("VSML/MNIST-Online-v0", {"classes": [1.5, 2]}, TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got \[1\.5, 2\]"),
    ("VSML/MNIST-Online-v0", {"classes": 5}, TypeError, r"classes must be a list of at least 2 distinct ints in 0\.\.9, got 5"),
    ("VSML/MNIST-Online-v0", {"classes": [3]}, ValueError, r"classes must be a list of at least 2 distinct ints in 0\.\.9 .*got \[3\]"),
    ("VSML/MNIST-Online-v0", {"classes": [3, 3]}, ValueError, r"classes must be a list of at least 2 distinct ints in 0\.\.9 .*got \[3, 3\]"),
    ("VSML/MNIST-Online-v0", {"classes": [1, 10]}, ValueError, r"classes \[10\] are out of range: classes must be a list of at least 2 distinct ints in 0\.\.9"),
    ("VSML/EMNIST-Online-v0", {"classes": [0, 62]}, ValueError, r"classes \[62\] are out of range: .* in 0\.\.61"),
    ("VSML/MNIST-Online-v0", {"resize": "14"}, TypeError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got '14'"),
    ("VSML/MNIST-Online-v0", {"resize": 14.5}, TypeError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got 14\.5"),
    ("VSML/MNIST-Online-v0", {"resize": True}, TypeError, r"resize must be a positive int .*, got True"),
    ("VSML/MNIST-Online-v0", {"resize": 0}, ValueError, r"resize must be a positive int or a \(height, width\) pair of positive ints, got 0"),
    ("VSML/MNIST-Online-v0", {"resize": (14,)}, ValueError, r"resize must be a positive int .*, got \(14,\)"),
    ("VSML/MNIST-Online-v0", {"pad_input": 28}, TypeError, r"pad_input must be a \(channels, height, width\) triple of positive ints, got 28"),
    ("VSML/MNIST-Online-v0", {"pad_input": (28, 28)}, ValueError, r"pad_input must be a \(channels, height, width\) triple of positive ints, got \(28, 28\)"),
    ("VSML/MNIST-Online-v0", {"pad_input": (1, 20, 20)}, ValueError, r"pad_input target \(1, 20, 20\) is smaller than the task's input shape \(1, 28, 28\)"),
    ("VSML/MNIST-Online-v0", {"data_root": 123}, TypeError, r"data_root must be a folder path \(a str or os\.PathLike\) or None, got 123"),
    ("VSML/SumSign-Online-v0", {"data_root": 123}, TypeError, r"data_root must be a folder path \(a str or os\.PathLike\) or None, got 123"),
    ("VSML/Omniglot-5Way1Shot-v0", {"n_way": "5"}, TypeError, r"n_way must be an int in 2\.\.659, got '5'"),
    ("VSML/Omniglot-5Way1Shot-v0", {"n_way": 1}, ValueError, r"n_way must be an int in 2\.\.659, got 1"),
    ("VSML/Omniglot-5Way1Shot-v0", {"k_shot": 20}, ValueError, r"k_shot .*must be an int in 1\.\.19, got 20"),
    ("VSML/Random-Online-v0", {"num_pairs": "3"}, TypeError, r"num_pairs must be an int >= 1, got '3'"),
    ("VSML/Random-Online-v0", {"num_pairs": 2.5}, TypeError, r"num_pairs must be an int >= 1, got 2\.5"),
    ("VSML/Random-Online-v0", {"num_pairs": 0}, ValueError, r"num_pairs must be an int >= 1, got 0"),
]


@pytest.mark.parametrize("env_id,options,error,match", BAD_OPTIONS, ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_bad_option_values_name_the_option_and_what_is_accepted(env_id, options, error, match, data_root):
    options = {"split": "test", "data_root": str(data_root), **options}
    with pytest.raises(error, match=match):
        gym.make(env_id, **options)
    with pytest.raises(error, match=match):
        gym.make_vec(env_id, num_envs=2, **options)


@pytest.mark.parametrize("seed,error,match", [
    ("abc", TypeError, r"seed must be None, a non-negative int or a list of 2 non-negative ints \(one per stream\), got 'abc'"),
    (1.5, TypeError, r"seed must be None, a non-negative int or a list of 2 .*, got 1\.5"),
    (True, TypeError, r"seed must be None, a non-negative int or a list of 2 .*, got True"),
    (-1, ValueError, r"seed must be None, a non-negative int or a list of 2 .*, got -1"),
    ([1, 2, 3], ValueError, r"seed must be None, a non-negative int or a list of 2 .*, got \[1, 2, 3\]"),
    ([1, -2], ValueError, r"seed must be None, a non-negative int or a list of 2 .*, got \[1, -2\]"),
])
def test_vector_reset_rejects_bad_seeds(seed, error, match):
    venv = gym.make_vec("VSML/SumSign-Online-v0", num_envs=2)
    with pytest.raises(error, match=match):
        venv.reset(seed=seed)
    first, _ = venv.reset(seed=np.array([3, 4]))  # numpy seeds are ints too
    assert torch.equal(first["x"], venv.reset(seed=[3, 4])[0]["x"])


def test_good_option_forms_still_work(data_root):
    common = dict(split="test", data_root=data_root, episode_length=3)  # a pathlib.Path root
    assert gym.make("VSML/MNIST-Online-v0", resize=np.int64(14), **common).observation_space["x"].shape == (1, 14, 14)
    assert gym.make("VSML/MNIST-Online-v0", resize=[7, 9], **common).observation_space["x"].shape == (1, 7, 9)
    assert gym.make("VSML/MNIST-Online-v0", pad_input=[2, 30, 30], **common).observation_space["x"].shape == (2, 30, 30)
    env = gym.make("VSML/MNIST-Online-v0", classes=(np.int64(7), 2), **common)
    assert env.action_space.shape == (2,)
    assert gym.make("VSML/MNIST-Online-v0", classes=range(4), **common).action_space.shape == (4,)


def test_register_task_accepts_numpy_arrays_and_refuses_mismatched_splits():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8), np.arange(20) % 4
    env_id = vsml_gym.register_task("Test/Numpy-Online-v0", train=(images, labels), test=[images[:8], labels[:8]])
    env = gym.make(env_id, split="test", episode_length=5)
    assert env.reset(seed=0)[0]["x"].shape == (1, 6, 6) and env.action_space.shape == (4,)
    check_env(env.unwrapped, skip_render_check=True)
    cases = [
        ({"train": (images, labels), "test": (images[:, :5], labels)}, ValueError,
         r"test images have shape \(1, 5, 6\) but train images \(1, 6, 6\): both splits must have one image shape"),
        ({"train": (images, labels), "num_classes": 3}, ValueError,
         r"num_classes must be an int above the largest label, 3, got 3"),
        ({"train": images}, TypeError,
         r"train must be an \(images, labels\) pair of tensors or numpy arrays, or a dataset of \(image, label\) "
         r"pairs, got a single ndarray"),
        ({"train": (images[:0], labels[:0])}, ValueError, r"train holds no examples"),
    ]
    for i, (kwargs, error, match) in enumerate(cases):
        with pytest.raises(error, match=match):
            vsml_gym.register_task(f"Test/Bad{i}-Online-v0", **kwargs)
