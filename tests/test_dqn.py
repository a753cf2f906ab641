from __future__ import annotations

import math
import subprocess
import sys
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TransformReward

from tests.toy_envs import FORK
from tuner import dqn, networks
from tuner.config import DQNConfig
from tuner.dqn import (
    Exploration,
    _play_cartpole,
    _play_one_by_one,
    check_finite,
    epsilon,
    evaluate,
    gradient_step,
    learning_rate,
    load_checkpoint,
    make_optimizer,
    play_cartpole_to_end,
    save_checkpoints,
    train,
)
from tuner.envs import RECHECK_EPISODE, CartPoleBatch, TrainEnvs, check_env, make_env
from tuner.errors import Diverged, TunerError
from tuner.networks import BatchedQNetwork
from tuner.replay import ReplayBuffer, SeedUniforms

ROOT = Path(__file__).resolve().parent.parent
FAST = DQNConfig(
    total_steps=600,
    learning_starts=100,
    train_frequency=4,
    gradient_steps=2,
    batch_size=16,
    hidden_sizes=(16,),
    replay_size=1000,
    target_update_interval=50,
    epsilon_decay_steps=300,
    eval_every=300,
    eval_episodes=2,
    learning_rate=1e-3,
)


def weights(net: BatchedQNetwork, k: int) -> torch.Tensor:
    return net.params[k].clone()


def test_same_seed_twice_gives_identical_returns_and_weights():
    a, b = train(FAST, seeds=2, device="cpu"), train(FAST, seeds=2, device="cpu")
    assert np.array_equal(a.eval_returns, b.eval_returns)
    assert torch.equal(a.network.params, b.network.params)


@pytest.mark.parametrize(
    ("hidden", "onednn"),
    [
        ((16,), None),
        ((64, 64), None),
        ((256, 256), False),
        pytest.param(
            (256, 256),
            True,
            marks=pytest.mark.skipif(networks.LINEAR is None, reason="this torch has no oneDNN"),
        ),
    ],
    ids=["16", "64-64", "256-256-batched-products", "256-256-onednn-per-seed"],
)
def test_a_seed_trains_to_the_same_bits_alone_first_middle_or_last_in_a_batch(
    monkeypatch, hidden, onednn
):
    # 114 and 4610 weights a seed: without the row padding, the fused Adam kernel's scalar tail
    # (the last numel % 16 floats) rounded the last seed's final weights differently. With
    # 256-256 and a batch of 32, the middle layer's products reach networks.ONEDNN_MIN_MACS: one
    # oneDNN call per seed where that path is on, a batched call where it is off
    config = FAST.replace(hidden_sizes=hidden, total_steps=1500, eval_every=750)
    if onednn is not None:
        monkeypatch.setattr(networks, "ONEDNN", onednn)
        config = config.replace(batch_size=32)
        assert networks.ONEDNN_MIN_MACS <= 32 * 256 * 256
    alone = train(config.replace(seed=2), seeds=1, device="cpu")
    assert onednn is None or alone.network.onednn is onednn
    for first, k, at in ((0, 3, 2), (1, 3, 1), (2, 2, 0)):
        batched = train(config.replace(seed=first), seeds=k, device="cpu")
        assert batched.seeds[at] == 2
        assert np.array_equal(alone.eval_returns[:, 0], batched.eval_returns[:, at])
        assert torch.equal(weights(alone.network, 0), weights(batched.network, at))


FAULTS = """
import resource, sys
from tuner import dqn
from tuner.config import load_config

dqn.FUSED = False  # the torch step, whose allocations these settings are for
if sys.argv[1] == "off":
    dqn.keep_freed_memory = lambda: None
config = load_config("studies/configs/rl_zoo_cartpole.yaml").replace(
    total_steps=6000, eval_every=0, eval_episodes=1
)
dqn.train(config.replace(total_steps=1500), device="cpu")  # imports, first allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
dqn.train(config, device="cpu")
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets glibc's malloc")
def test_training_reuses_freed_memory_instead_of_paging_it_in_again():
    """RL Zoo's config (256-256, 128 gradient steps a phase) allocates and frees blocks glibc
    would otherwise hand back and page in again (dqn.keep_freed_memory). Measured on a Zen 5 day:
    2,050 page faults with the settings, 77-82k without, in 6 of 6 pairs of runs. (A smaller
    config, 32 gradient steps a phase, was no test: without the settings it paged in 1.1k or
    49-56k, depending on the run.) The torch step's: the compiled CPU step (dqn.FUSED) pages in
    a few hundred either way."""

    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return int(out.stdout.split()[-1])

    on, off = faults("on"), faults("off")
    assert on * 10 < off, (on, off)


def test_the_row_padding_stays_zero_and_out_of_checkpoints(tmp_path):
    result = train(FAST.replace(hidden_sizes=(16,)), seeds=2, device="cpu")
    network = result.network
    assert network.padding == 128 - 114 and network.params.shape == (2, 128)
    assert not network.params[:, 114:].any()
    _, state = load_checkpoint(save_checkpoints(result, tmp_path)[1])
    assert sum(t.numel() for t in state.values()) == 114
    loaded = BatchedQNetwork([9], 4, 2, (16,))
    loaded.load_seed_state(state)
    assert torch.equal(loaded.params[0], network.params[1])


DEVICE_PATH_MIXES = {  # feature mixes that cover every path a device takes apart from the CPU
    "plain": {},
    "nstep-per-double-dueling": {
        "n_step": 3,
        "prioritized": True,
        "double_dqn": True,
        "dueling": True,
    },
    "rmsprop-soft-tanh": {
        "optimizer": "rmsprop",
        "target_update": "soft",
        "tau": 0.01,
        "activation": "tanh",
    },
}


@pytest.mark.parametrize("host_acting", [False, True], ids=["device-acts", "host-copy-acts"])
@pytest.mark.parametrize("extra", DEVICE_PATH_MIXES.values(), ids=DEVICE_PATH_MIXES.keys())
def test_the_code_a_gpu_runs_trains_the_same_weights_on_the_cpu(monkeypatch, extra, host_acting):
    """On a device, the replay buffer stores, samples, fills n-step columns and updates
    priorities with torch alone, where the CPU uses numpy and compiled loops; the network acts
    with torch, or with numpy from a host copy of its weights refreshed after every training
    phase (small networks, dqn.acts_on_host). No GPU here, so the whole trainer runs those paths
    on the CPU: it must train the same weights to the bit, and see the same evaluations, as the
    CPU paths (a stale host copy would act differently and part the runs). Both take the torch
    gradient step, which a device runs (the compiled CPU step rounds its own way: below)."""
    monkeypatch.setattr(dqn, "FUSED", False)
    config = FAST.replace(total_steps=2000, eval_every=1000, hidden_sizes=(32, 32), **extra)
    cpu_paths = train(config, seeds=2, device="cpu")
    monkeypatch.setattr(dqn, "BatchedQNetwork", partial(BatchedQNetwork, numpy_paths=False))
    monkeypatch.setattr(dqn, "ReplayBuffer", partial(ReplayBuffer, numpy_paths=False))
    monkeypatch.setattr(dqn, "acts_on_host", lambda network, rows: host_acting)
    device_paths = train(config, seeds=2, device="cpu")
    assert device_paths.network.host_layers is None  # the torch paths really ran
    assert cpu_paths.network.host_layers is not None
    assert cpu_paths.gradient_steps == device_paths.gradient_steps > 0
    assert np.array_equal(cpu_paths.eval_returns, device_paths.eval_returns)
    assert torch.equal(cpu_paths.network.params, device_paths.network.params)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "rmsprop"])
def test_perturbing_one_seeds_batch_leaves_the_other_seeds_update_unchanged(optimizer):
    config = DQNConfig(
        optimizer=optimizer,
        weight_decay=0.01,
        grad_clip_norm=1e-3,
        grad_clip_value=0.5,
        hidden_sizes=(8, 8),
        dueling=True,
    )
    gen = torch.Generator().manual_seed(0)
    obs, targets = torch.randn(2, 16, 3, generator=gen), torch.randn(2, 16, generator=gen)
    actions = torch.randint(0, 2, (2, 16), generator=gen)
    after = []
    for perturb in (False, True):
        net = BatchedQNetwork([0, 1], obs_dim=3, n_actions=2, hidden_sizes=(8, 8), dueling=True)
        opt = make_optimizer(config, net)
        o, t = obs.clone(), targets.clone()
        if perturb:
            o[1] *= 100.0
            t[1] += 1e4
        for _ in range(3):
            gradient_step(net, opt, config, o, actions, t, torch.ones(2, 16))
        after.append(net)
    assert torch.equal(weights(after[0], 0), weights(after[1], 0))
    assert not torch.equal(weights(after[0], 1), weights(after[1], 1))


def test_every_feature_trains_together():
    config = FAST.replace(
        double_dqn=True,
        dueling=True,
        prioritized=True,
        n_step=3,
        envs_per_seed=2,
        target_update="soft",
        tau=0.1,
        termination_penalty=-10,
        loss="mse",
        epsilon_schedule="exponential",
        optimizer="adamw",
        amsgrad=True,
    )
    result = train(config, seeds=2, device="cpu")
    assert result.env_steps == 600 and result.eval_steps == [300, 600]
    assert result.eval_returns.shape == (2, 2) and np.isfinite(result.eval_returns).all()
    # learning starts after 100 steps; a phase every 2 vector steps (4 env steps over 2 envs)
    assert result.gradient_steps == 2 * len(
        [t for t in range(1, 301) if t % 2 == 0 and 2 * t > 100]
    )


def test_non_finite_loss_stops_training_with_step_and_seed():
    config = FAST.replace(env="tests.toy_envs:Blowup-v0", loss="mse", grad_clip_norm=None)
    with pytest.raises(Diverged, match="seed 0 at env step 104") as err:
        train(config, seeds=2, device="cpu")
    assert (err.value.step, err.value.seed) == (104, 0)


def test_a_divergence_check_names_the_first_non_finite_seed_and_not_a_large_finite_sum():
    net = BatchedQNetwork([7, 8, 9], obs_dim=2, n_actions=2, hidden_sizes=(4,))
    huge = torch.full((3, 4), 3e38)  # every error finite, their sum not
    check_finite(net, huge, step=50)
    huge[1, 2] = huge[2, 0] = float("nan")
    with pytest.raises(Diverged, match="seed 8 at env step 50") as err:
        check_finite(net, huge, step=50)
    assert err.value.network is net  # the export scores a diverged seed by it


def test_on_eval_can_stop_training_or_abort_it():
    seen = []
    result = train(
        FAST, seeds=2, device="cpu", on_eval=lambda step, r: seen.append((step, r)) or False
    )
    assert result.stopped_early and result.env_steps == 300 and result.eval_steps == [300]
    assert seen[0][0] == 300 and seen[0][1].shape == (2,)

    def boom(step, returns):
        raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        train(FAST, device="cpu", on_eval=boom)


def test_best_keeps_each_seeds_weights_from_its_best_evaluation_the_latest_of_equals():
    net = BatchedQNetwork([7, 8, 9], obs_dim=2, n_actions=2, hidden_sizes=(4,))
    first = net.params.clone()
    best = dqn.Best(net)
    best.update(net, np.array([10.0, 20.0, 30.0]), step=100)
    net.params.add_(1.0)
    best.update(net, np.array([10.0, 5.0, 40.0]), step=200)  # seed 0 ties, 1 falls, 2 gains
    assert best.steps.tolist() == [200, 100, 200]
    assert best.returns.tolist() == [10.0, 20.0, 40.0]
    assert torch.equal(best.network.params[0], first[0] + 1.0)
    assert torch.equal(best.network.params[1], first[1])
    assert torch.equal(best.network.params[2], first[2] + 1.0)


def test_a_recheck_breaks_ties_at_the_best_and_a_higher_score_still_wins():
    net = BatchedQNetwork([7, 8], obs_dim=2, n_actions=2, hidden_sizes=(4,))
    best = dqn.Best(net)
    checks = iter([[400.0, 480.0], [450.0, 470.0], [300.0, 490.0], [200.0, 100.0]])
    recheck = lambda: np.array(next(checks))  # noqa: E731 - what the extra episodes scored
    weights = {}
    for step, returns in [
        (100, [500, 500]),
        (200, [500, 500]),
        (300, [500, 500]),
        (400, [200, 600]),
    ]:
        net.params.add_(1.0)
        weights[step] = net.params.clone()
        best.update(net, np.array(returns, dtype=float), step=step, recheck=recheck)
    # seed 0: 500 at 100 (recheck 400), at 200 (450: kept), at 300 (300: not); 200 at 400
    # seed 1: 500 at 100 (480), at 200 (470: not), at 300 (490: kept); 600 at 400 wins at 100
    assert best.steps.tolist() == [200, 400]
    assert best.rechecked.tolist() == [450.0, 100.0]
    assert torch.equal(best.network.params[0], weights[200][0])
    assert torch.equal(best.network.params[1], weights[400][1])
    assert next(checks, None) is None  # every evaluation at least at a best was rechecked


def test_a_recheck_changes_which_weights_are_kept_never_the_training():
    # barely learning, seed 5 scores 42 at all 20 one-episode evaluations: without a recheck it
    # keeps the last, with one the evaluation whose weights do best on the recheck's episodes
    config = LEARNS.replace(
        learning_rate=1e-5, keep_weights="best", eval_episodes=1, eval_every=100, seed=3
    )
    plain = train(config, seeds=3, device="cpu")
    checked = train(config.replace(recheck_episodes=5), seeds=3, device="cpu")
    assert np.array_equal(plain.eval_returns, checked.eval_returns)
    assert torch.equal(plain.network.params, checked.network.params)
    for k, step in enumerate(checked.best_steps):  # still one of the seed's best evaluations
        curve = checked.eval_returns[:, k]
        assert curve[checked.eval_steps.index(step)] == curve.max()
    assert (checked.eval_returns[:, 2] == 42).all() and plain.best_steps[2] == 2000
    assert checked.best_steps[2] < 2000
    again = [
        evaluate(net, config.env, 5, first=RECHECK_EPISODE).mean(1)
        for net in (checked.best_network, checked.network)
    ]
    assert again[0][2] > again[1][2]  # the last evaluation lost its tie on the recheck
    # the recheck played the kept weights on the episodes from RECHECK_EPISODE, not the ones
    # evaluations play (which would have scored them otherwise)
    assert checked.rechecked == again[0].tolist() and plain.rechecked is None
    assert evaluate(checked.best_network, config.env, 5).mean(1)[2] != again[0][2]


LEARNS = FAST.replace(
    total_steps=2000,
    train_frequency=1,
    gradient_steps=1,
    hidden_sizes=(32,),
    eval_every=250,
    eval_episodes=3,
    target_update_interval=100,
    learning_rate=3e-3,
)
"""Learns a little in 2,000 steps, and not steadily: of seeds 0-2, seed 1 scores best at its
third evaluation, seed 2 at its seventh, seed 0 at its last."""


def test_keep_weights_best_keeps_the_weights_a_run_stopped_at_that_evaluation_ends_with():
    result = train(LEARNS.replace(keep_weights="best"), seeds=3, device="cpu")
    curves = result.eval_returns.T
    latest_best = [max(i for i, r in enumerate(c) if r == c.max()) for c in curves]
    assert result.best_steps == [result.eval_steps[i] for i in latest_best]
    assert len(set(result.best_steps)) == 3  # not every seed's best is its last evaluation
    assert result.kept is result.best_network and result.kept_steps == result.best_steps
    for k, step in enumerate(result.best_steps):
        stopped = train(LEARNS, seeds=3, device="cpu", on_eval=lambda at, _, s=step: at < s).network
        assert torch.equal(result.best_network.params[k], stopped.params[k])
    # the default keeps the last step's weights; the best are tracked all the same
    final = train(LEARNS, seeds=3, device="cpu")
    assert final.kept is final.network and final.kept_steps == [2000] * 3
    assert torch.equal(final.network.params, result.network.params)
    assert torch.equal(final.best_network.params, result.best_network.params)


def test_runs_merged_in_seed_order_keep_each_seeds_recheck():
    # the export splits one config's seeds across workers and merges the parts
    config = LEARNS.replace(keep_weights="best", recheck_episodes=2)
    parts = [
        dqn.retrain(config.replace(seed=s), [s], device="cpu", episodes=2, progress=False)
        for s in (2, 1)
    ]
    merged = dqn.merge(parts).result
    assert merged.seeds == [1, 2] and len(merged.rechecked) == 2
    assert merged.rechecked == parts[1].result.rechecked + parts[0].result.rechecked
    assert merged.best_steps == parts[1].result.best_steps + parts[0].result.best_steps


def test_checkpoints_and_retrain_use_the_kept_weights(tmp_path):
    config = LEARNS.replace(keep_weights="best", seed=1)
    done = dqn.retrain(config, [1, 2], device="cpu", episodes=4, progress=False)
    best = done.result.best_network
    assert done.result.best_steps == [750, 1750]
    assert np.array_equal(done.returns, evaluate(best, config.env, 4))
    paths = save_checkpoints(done.result, tmp_path)
    data = torch.load(paths[0], weights_only=True)
    assert data["step"] == 750
    assert torch.equal(data["weights"]["layers.0.weight"], best.weights[0][0])


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ("Pendulum-v1", "action space Box.*needs Discrete"),
        ("FrozenLake-v1", "observation space Discrete.*1-D Box"),
        ("NoSuchEnv-v0", "cannot make environment 'NoSuchEnv-v0'"),
        ("no_such_module:Env-v0", "cannot make environment"),
    ],
)
def test_unsupported_or_unknown_envs_are_clear_errors(env, says):
    with pytest.raises(TunerError, match=says):
        check_env(env)


def test_module_env_ids_work():
    info = check_env("tests.toy_envs:Blowup-v0")
    assert (info.obs_dim, info.n_actions, info.max_episode_steps) == (2, 2, 20)


def test_autoreset_keeps_the_final_observation_of_a_finished_episode():
    envs = TrainEnvs("CartPole-v1", [[0]])
    for _ in range(100):
        next_obs, real, _, terminated, done = envs.step(np.zeros((1, 1), np.int64))
        if done[0, 0]:
            break
    assert terminated[0, 0]
    real, next_obs = real[0, 0], next_obs[0, 0]
    assert abs(real[2]) > 0.2095 or abs(real[0]) > 2.4  # the pole fell: the last state
    assert np.abs(next_obs).max() <= 0.05  # autoreset already gave a fresh start
    envs.close()


@pytest.mark.parametrize("shape", [(2, 3), (3, 1)])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "tests.toy_envs:Fork-v0"])
def test_train_envs_step_exactly_like_gymnasiums_sync_vector_env(env_id, shape):
    """Same seeds, same actions: the same observations, rewards, episode ends and final
    observations as SyncVectorEnv in SAME_STEP autoreset mode (Fork truncates every 3 steps;
    CartPole's envs are stepped by CartPoleBatch, and seed 1's balance to the time limit). 3 x 1
    is the default study's shape: 3 seeds of one env each."""
    k, e = shape
    seeds = list(range(3, 3 + k * e))
    ours = TrainEnvs(env_id, [seeds[i * e : (i + 1) * e] for i in range(k)])  # seed-major
    ref = SyncVectorEnv(
        [lambda: make_env(env_id) for _ in seeds], autoreset_mode=AutoresetMode.SAME_STEP
    )
    ref_obs, _ = ref.reset(seed=seeds)
    np.testing.assert_array_equal(ours.obs.reshape(k * e, -1), ref_obs)
    rng = np.random.default_rng(0)
    ends, truncations = 0, 0
    for _ in range(1600):
        actions = rng.integers(0, 2, shape)
        if env_id == "CartPole-v1":
            assert ours.cartpole is not None
            pole = ours.obs[1]
            actions[1] = (pole[:, 2] + 0.3 * pole[:, 3] + 0.01 * pole[:, 0]) > 0
        obs, real, rewards, terminated, done = ours.step(actions)
        r_obs, r_rewards, r_terminated, r_truncated, info = ref.step(actions.reshape(-1))
        obs, real = obs.reshape(k * e, -1), real.reshape(k * e, -1)
        np.testing.assert_array_equal(obs, r_obs)
        np.testing.assert_array_equal(rewards.reshape(-1), r_rewards)
        np.testing.assert_array_equal(terminated.reshape(-1), r_terminated)
        np.testing.assert_array_equal(done.reshape(-1), r_terminated | r_truncated)
        for i in np.flatnonzero(done):
            np.testing.assert_array_equal(real[i], info["final_obs"][i])
            ends += 1
        truncations += int((r_truncated & ~r_terminated).sum())
        for i in np.flatnonzero(~done):
            np.testing.assert_array_equal(real[i], obs[i])
    assert ends >= 20 and truncations >= 3
    ours.close()
    ref.close()


def test_checkpoints_round_trip_and_warm_start(tmp_path):
    first = train(FAST, seeds=2, device="cpu")
    paths = save_checkpoints(first, tmp_path)
    assert [p.name for p in paths] == ["seed-0.pt", "seed-1.pt"]
    config, state = load_checkpoint(paths[1])
    assert config == FAST
    assert torch.equal(state["layers.0.weight"], first.network.weights[0][1])
    assert torch.equal(state["layers.1.bias"], first.network.biases[1][1])
    # no learning and a greedy policy: the warm-started seed scores what the saved one did
    frozen = FAST.replace(learning_starts=10_000, epsilon_start=0.0, epsilon_end=0.0, seed=5)
    warm = train(frozen, seeds=1, device="cpu", init_from=paths[1])
    assert warm.final_returns[0] == first.final_returns[1]


def test_bad_checkpoints_are_clear_errors(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TunerError, match="not a tuner checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(TunerError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    paths = save_checkpoints(train(FAST, device="cpu"), tmp_path)
    with pytest.raises(TunerError, match="does not match"):
        train(FAST.replace(hidden_sizes=(32,)), device="cpu", init_from=paths[0])


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(TunerError, match="no CUDA GPU"):
        train(FAST, device="cuda")


def test_evaluation_in_chunks_scores_the_same_episodes():
    network = BatchedQNetwork([0, 1, 2], obs_dim=4, n_actions=2, hidden_sizes=(8,))
    whole = evaluate(network, "CartPole-v1", 5)
    chunked = evaluate(network, "CartPole-v1", 5, max_envs=6)  # 2 episodes x 3 seeds at a time
    assert whole.shape == (3, 5) and np.array_equal(whole, chunked)
    # every seed plays the same fixed-seed episodes: identical networks score identically
    network.params[1].copy_(network.params[0])
    assert np.array_equal(
        evaluate(network, "CartPole-v1", 3)[0], evaluate(network, "CartPole-v1", 3)[1]
    )


def balancing_network(seeds: list[int], gains: list[list[float]]) -> BatchedQNetwork:
    """Seed k pushes right exactly when gains[k] . obs > 0 (two relu units, one per action)."""
    network = BatchedQNetwork(seeds, obs_dim=4, n_actions=2, hidden_sizes=(2,))
    (w0, b0), (w1, b1) = network.layers
    c = torch.tensor(gains, dtype=torch.float32)
    w0[:, :, 0], w0[:, :, 1] = c, -c
    b0.zero_(), b1.zero_(), w1.zero_()
    w1[:, 0, 1], w1[:, 1, 0] = 1.0, 1.0  # Q(right) = relu(c . obs), Q(left) = relu(-c . obs)
    return network


@pytest.mark.parametrize(
    ("env_id", "integrator"), [("CartPole-v1", "euler"), ("CartPole-v0", "semi-implicit")]
)
def test_cartpole_batch_steps_bit_for_bit_like_gymnasium(env_id, integrator):
    """16 envs, half acting at random and half balancing (long episodes that end by the cart
    leaving the track or by the time limit): every state, observation and episode end equal."""
    envs = [make_env(env_id) for _ in range(16)]
    for env in envs:
        env.unwrapped.kinematics_integrator = integrator
    physics = CartPoleBatch(envs[0])
    assert physics.max_steps == envs[0].spec.max_episode_steps
    state = np.stack([(env.reset(seed=i), env.unwrapped.state)[1] for i, env in enumerate(envs)], 1)
    elapsed = np.zeros(16, dtype=int)
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for _ in range(3000):
        balance = (state[2] + 0.3 * state[3] + 0.01 * state[0]) > 0
        actions = np.where(np.arange(16) < 8, rng.integers(0, 2, 16), balance).astype(np.int64)
        after, terminated = physics.step(state, actions)
        elapsed += 1
        for i, env in enumerate(envs):
            obs, reward, term, trunc, _ = env.step(int(actions[i]))
            assert np.array_equal(env.unwrapped.state, after[:, i]) and term == terminated[i]
            assert np.array_equal(obs, after[:, i].astype(np.float32)) and reward == 1.0
            assert trunc == (elapsed[i] >= physics.max_steps)
            if term or trunc:
                ends["terminated" if term else "truncated"] += 1
                env.reset()
                after[:, i], elapsed[i] = env.unwrapped.state, 0
        state = after
    assert ends["terminated"] > 100 and ends["truncated"] >= 4


def test_batched_cartpole_evaluation_scores_what_one_env_at_a_time_does():
    # seed 0 random (short episodes), seed 1 balancing while its cart drifts off the track
    # (some episodes end at x = 2.4, some at the time limit), seed 2 balancing to the limit
    trained = balancing_network([0, 1, 2], [[0, 0, 1, 0.5], [0, 0, 0.3, 1], [0, 0, 1, 0.5]])
    trained.params[0].copy_(BatchedQNetwork([0], 4, 2, (2,)).params[0])
    env = make_env("CartPole-v1")
    ids = list(range(3, 15))
    batched = _play_cartpole(trained, env, ids)
    one_by_one = _play_one_by_one(trained, "CartPole-v1", ids)
    assert np.array_equal(batched, one_by_one)
    returns = batched.reshape(3, -1)
    assert returns[0].max() < 100 and (returns[2] == 500).all()
    assert returns[1].min() > 100 and returns[1].max() == 500 > returns[1].min()
    assert np.array_equal(evaluate(trained, "CartPole-v1", 15)[:, 3:], returns)
    # episodes 3-14 on their own, at once or 5 at a time, are the same episodes
    assert np.array_equal(evaluate(trained, "CartPole-v1", 12, first=3), returns)
    assert np.array_equal(evaluate(trained, "CartPole-v1", 12, first=3, max_envs=15), returns)


def test_batched_cartpole_play_tells_where_each_episode_ended():
    # the same three seeds: the last state shows the pole down (seed 0), the cart off the track
    # for seed 1's episodes short of 500 steps, and everything within bounds at the time limit
    trained = balancing_network([0, 1, 2], [[0, 0, 1, 0.5], [0, 0, 0.3, 1], [0, 0, 1, 0.5]])
    trained.params[0].copy_(BatchedQNetwork([0], 4, 2, (2,)).params[0])
    env = make_env("CartPole-v1")
    ids = list(range(3, 15))
    returns, last = play_cartpole_to_end(trained, env, ids)
    assert np.array_equal(returns, _play_cartpole(trained, env, ids))
    cart = env.unwrapped
    off_track = (np.abs(last[0]) > cart.x_threshold).reshape(3, -1)
    pole_down = (np.abs(last[2]) > cart.theta_threshold_radians).reshape(3, -1)
    full = (returns == 500).reshape(3, -1)
    assert pole_down[0].all() and not off_track[0].any()
    assert np.array_equal(off_track[1], ~full[1]) and not pole_down[1].any()
    assert full[2].all() and not (off_track[2] | pole_down[2]).any()


def test_only_plain_cartpole_is_stepped_in_a_batch():
    assert CartPoleBatch.fits(make_env("CartPole-v1"))
    assert not CartPoleBatch.fits(make_env("Acrobot-v1"))
    assert not CartPoleBatch.fits(make_env("tests.toy_envs:Fork-v0"))
    assert not CartPoleBatch.fits(TransformReward(make_env("CartPole-v1"), lambda r: 2 * r))
    assert not CartPoleBatch.fits(gym.make("CartPole-v1", sutton_barto_reward=True))
    # a gymnasium whose CartPole has no such flag: its reward rule is unknown, so not batched
    unflagged = make_env("CartPole-v1")
    del unflagged.unwrapped._sutton_barto_reward
    assert not CartPoleBatch.fits(unflagged)


def test_epsilon_is_one_during_warm_up_then_follows_its_schedule():
    linear = DQNConfig(
        learning_starts=100, epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_steps=1000
    )
    assert [epsilon(linear, s) for s in (0, 99)] == [1.0, 1.0]
    assert epsilon(linear, 100) == pytest.approx(1.0 - 0.9 * 0.1)  # counted from step 0
    assert epsilon(linear, 500) == pytest.approx(0.55) and epsilon(linear, 5000) == pytest.approx(
        0.1
    )
    tutorial = linear.replace(
        epsilon_start=0.9, epsilon_end=0.05, epsilon_schedule="exponential", learning_starts=0
    )
    assert epsilon(tutorial, 1000) == pytest.approx(0.05 + 0.85 * math.exp(-1))


def test_a_linear_learning_rate_falls_from_its_value_to_zero_at_the_last_step():
    config = DQNConfig(learning_rate=2e-3, total_steps=1000, learning_rate_schedule="linear")
    assert [learning_rate(config, s) for s in (0, 250, 500, 1000)] == pytest.approx(
        [2e-3, 1.5e-3, 1e-3, 0.0]
    )
    constant = config.replace(learning_rate_schedule="constant")
    assert {learning_rate(constant, s) for s in (0, 500, 1000)} == {2e-3}


def test_each_training_phase_steps_with_the_schedules_rate_at_that_step():
    """Two phases, at env steps 500 and 1000. Falling linearly from 2e-3, the first steps at 1e-3,
    as a constant 1e-3 does, and the second at 0, which leaves the weights where they were."""
    linear = FAST.replace(
        total_steps=1000,
        train_frequency=500,
        eval_every=500,
        learning_rate=2e-3,
        learning_rate_schedule="linear",
    )
    constant = linear.replace(learning_rate=1e-3, learning_rate_schedule="constant")

    def params(config: DQNConfig, stop_at_500: bool) -> torch.Tensor:
        stop = (lambda step, returns: False) if stop_at_500 else None
        return train(config, seeds=2, device="cpu", on_eval=stop).network.params

    at_500 = params(linear, True)
    assert torch.equal(at_500, params(constant, True))
    assert torch.equal(params(linear, False), at_500)
    assert not torch.equal(params(constant, False), at_500)


def test_exploration_chooses_per_step_what_the_schedule_and_each_seeds_numbers_say():
    """Across a chunk boundary: env [k, e] at vector step t acts greedily iff its explore number
    is >= epsilon at env step (t - 1) * E; otherwise its action number picks the action."""
    config = DQNConfig(learning_starts=300, epsilon_decay_steps=4000, epsilon_end=0.1)
    seeds, e, n_actions = [7, 8], 2, 3
    explore = Exploration(config, seeds, e, n_actions)
    numbers = SeedUniforms(seeds, stream=4, width=2 * e)  # the same streams, a step at a time
    for t in range(1, 2 * Exploration.CHUNK + 50):
        u = numbers.next()[:, 0].reshape(len(seeds), e, 2)
        actions, greedy, n_greedy = explore.choices(t)
        want_greedy = u[..., 0] >= epsilon(config, (t - 1) * e)
        np.testing.assert_array_equal(greedy, want_greedy)
        assert n_greedy == want_greedy.sum()
        np.testing.assert_array_equal(actions, (u[..., 1] * n_actions).astype(np.int64))


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_training_penalises_termination_and_bootstraps_through_truncation(scale):
    """Fixed points with gamma 0.5: Q(s, 0) = -5 (the penalty, no bootstrap) and
    Q(s, 1) = 1 + 0.5 * Q(s, 1) = 2 (bootstraps at the time limit; 1.5 if it did not). A reward
    scale multiplies both, the penalty included: -2.5 and 1 at 0.5."""
    config = FORK.replace(
        total_steps=4000, learning_rate=3e-3, batch_size=64, eval_episodes=1, reward_scale=scale
    )
    result = train(config, device="cpu")
    q = result.network(torch.ones(1, 1, 1))[0, 0]
    assert q[0].item() == pytest.approx(-5.0 * scale, abs=0.15 * scale)
    assert q[1].item() == pytest.approx(2.0 * scale, abs=0.15 * scale)


@pytest.mark.parametrize(("activation", "compiled"), [("relu", True), ("gelu", False)])
def test_the_cpu_trains_through_the_compiled_step_on_one_blas_thread(
    monkeypatch, activation, compiled
):
    """On the CPU every gradient step is tuner.fused's two calls where it has the activation, and
    the BLAS those calls use runs on one thread during training (so that a seed's bits never
    depend on a process's threads), as it was before and after."""
    from threadpoolctl import threadpool_info

    from tuner import fused

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    calls = {"gradients": 0, "optimize": 0}
    for name in calls:
        real = getattr(fused, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(fused, name, counted)
    before, during = blas_threads(), []
    config = FAST.replace(activation=activation)
    result = train(
        config, seeds=2, device="cpu", on_eval=lambda s, r: during.append(blas_threads())
    )
    assert blas_threads() == before
    expected = result.gradient_steps if compiled else 0
    assert calls == {"gradients": expected, "optimize": expected} and result.gradient_steps > 0
    if compiled:
        assert during and all(threads and set(threads) == {1} for threads in during)
