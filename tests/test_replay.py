"""Replay and TD targets on tiny buffers whose every number is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tuner import kernels
from tuner.config import DQNConfig
from tuner.dqn import compiled_step, gradient_step, make_optimizer, paired_step, td_targets
from tuner.envs import learning_rewards
from tuner.networks import BatchedQNetwork
from tuner.replay import Batch, HostBatch, ReplayBuffer


def add(buf: ReplayBuffer, obs, reward, next_obs, terminated=False, truncated=False, action=0):
    """One transition for a K=1, E=1, 1-D observation buffer."""
    buf.add(
        np.array([[[obs]]], np.float32),
        np.array([[action]]),
        np.array([[reward]], np.float32),
        np.array([[[next_obs]]], np.float32),
        np.array([[terminated]]),
        np.array([[terminated or truncated]]),
    )


def rows(buf: ReplayBuffer, slots: list[int]) -> list[tuple[float, ...]]:
    obs, actions, returns, next_obs, discounts = buf.transitions(torch.tensor([slots]))
    return [
        tuple(round(float(x), 6) for x in t)
        for t in zip(obs[0, :, 0], actions[0], returns[0], next_obs[0, :, 0], discounts[0])
    ]


def test_ring_buffer_wraps_and_samples_only_the_newest_transitions():
    buf = ReplayBuffer(seeds=[0], envs_per_seed=1, capacity=3, obs_dim=1)
    for i in range(5):
        add(buf, obs=i, reward=i, next_obs=i + 1)
    # 3 and 4 overwrote slots 0 and 1; 2 is the oldest and sits in slot 2
    assert buf.data[0, :, 0].tolist() == [3, 4, 2]
    assert (buf.pos, buf.size, buf.sampleable) == (2, 3, 3)
    sampled = buf.sample(batch_size=300).obs.flatten().unique().tolist()
    assert sampled == [2, 3, 4]


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("prioritized", [False, True])
def test_cpu_sampling_returns_the_rows_the_indexed_path_returns(n_step, prioritized):
    """Sampling on the CPU draws, gathers rows and fills n-step returns with tuner.kernels;
    every field must equal what the hand-checked torch path (`transitions` of a tensor of slots)
    gives for the same slots, also after the ring has wrapped (30 vector steps into 20 rows)."""
    buf = ReplayBuffer(
        seeds=[0, 1],
        envs_per_seed=2,
        capacity=40,
        obs_dim=3,
        gamma=0.9,
        n_step=n_step,
        prioritized=prioritized,
    )
    for step in random_steps(30):
        buf.add(*step)
    batch = buf.sample(batch_size=50, count=2)
    assert batch.actions.dtype == torch.int64 and batch.indices.shape == (2, 2, 50)
    assert torch.equal(batch.pairs, torch.cat([batch.obs, batch.next_obs], 1))
    for fast, indexed in zip(batch[:5], buf.transitions(batch.indices)):
        assert fast.dtype == indexed.dtype and fast.shape == indexed.shape
        # the n-step sum of 3 float32 terms may round differently in the kernel and torch
        torch.testing.assert_close(fast, indexed, rtol=1e-6, atol=0)


def test_n_step_returns_stop_at_episode_ends_and_bootstrap_only_through_truncation():
    buf = ReplayBuffer(seeds=[0], envs_per_seed=1, capacity=10, obs_dim=1, n_step=3, gamma=0.5)
    add(buf, 0, 1, 1)
    add(buf, 1, 2, 2, terminated=True)
    add(buf, 10, 4, 11)
    add(buf, 11, 8, 12, truncated=True)
    add(buf, 12, 16, 13)
    add(buf, 13, 32, 14)
    add(buf, 14, 64, 15)
    assert buf.sampleable == 5  # the two newest have no complete 3-step lookahead yet
    assert rows(buf, [0, 1, 2, 3, 4]) == [
        # obs, action, return, bootstrap obs, discount
        (0, 0, 1 + 0.5 * 2, 2, 0.0),  # cut at the termination: no bootstrap
        (1, 0, 2, 2, 0.0),
        (10, 0, 4 + 0.5 * 8, 12, 0.25),  # cut at the truncation: bootstrap with gamma^2
        (11, 0, 8, 12, 0.5),
        (12, 0, 16 + 0.5 * 32 + 0.25 * 64, 15, 0.125),  # full 3 steps
    ]


def test_n_step_lookahead_follows_each_env_of_a_seed_separately():
    buf = ReplayBuffer(seeds=[0], envs_per_seed=2, capacity=8, obs_dim=1, n_step=2, gamma=0.5)
    for t in range(3):  # env 0 sees rewards 1, 2, 4; env 1 sees 10, 20, 40
        buf.add(
            np.array([[[t], [100 + t]]], np.float32),
            np.zeros((1, 2)),
            np.array([[2.0**t, 10 * 2.0**t]], np.float32),
            np.array([[[t + 1], [101 + t]]], np.float32),
            np.zeros((1, 2)),
            np.zeros((1, 2)),
        )
    assert rows(buf, [0, 1, 2, 3]) == [
        (0, 0, 1 + 0.5 * 2, 2, 0.25),
        (100, 0, 10 + 0.5 * 20, 102, 0.25),
        (1, 0, 2 + 0.5 * 4, 3, 0.25),
        (101, 0, 20 + 0.5 * 40, 103, 0.25),
    ]


def tiny_net(last_layer: list[float]) -> BatchedQNetwork:
    """Q(x) = relu(x) * last_layer, one seed."""
    net = BatchedQNetwork([0], obs_dim=1, n_actions=2, hidden_sizes=(1,))
    with torch.no_grad():
        net.weights[0].fill_(1.0)
        net.biases[0].zero_()
        net.weights[1].copy_(torch.tensor([[last_layer]]))
        net.biases[1].zero_()
    return net


def as_batch(buf: ReplayBuffer, slots: list[int]) -> Batch:
    obs, actions, returns, next_obs, discounts = buf.transitions(torch.tensor([slots]))
    weights = torch.ones_like(returns)
    return Batch(
        *(
            t[None]
            for t in (obs, actions, returns, next_obs, discounts, weights, torch.tensor([slots]))
        )
    )


def test_td_targets_mask_termination_bootstrap_truncation_and_apply_the_penalty():
    rewards = learning_rewards(np.array([1.0, 1.0, 1.0]), np.array([False, True, False]), -15.0)
    assert rewards.tolist() == [1.0, -15.0, 1.0]  # the truncated step keeps its reward
    scaled = learning_rewards(np.array([1.0, 1.0]), np.array([False, True]), -15.0, scale=0.1)
    assert scaled.tolist() == pytest.approx([0.1, -1.5])  # the penalty is scaled too
    assert learning_rewards(np.array([2.0]), np.array([True]), None, 0.5).tolist() == [1.0]
    buf = ReplayBuffer(seeds=[0], envs_per_seed=1, capacity=4, obs_dim=1, gamma=0.9)
    add(buf, 0, rewards[0], 3)
    add(buf, 0, rewards[1], 3, terminated=True)
    add(buf, 0, rewards[2], 3, truncated=True)
    target_net = tiny_net([1.0, 2.0])  # Q(s'=3) = [3, 6]
    targets = td_targets(target_net, target_net, as_batch(buf, [0, 1, 2]), double_dqn=False)
    assert targets[0, 0].tolist() == pytest.approx([1 + 0.9 * 6, -15.0, 1 + 0.9 * 6])


def test_double_dqn_values_the_online_argmax_with_the_target_network():
    buf = ReplayBuffer(seeds=[0], envs_per_seed=1, capacity=2, obs_dim=1, gamma=0.9)
    add(buf, 0, 1.0, 3)
    online, target = tiny_net([2.0, 1.0]), tiny_net([1.0, 2.0])  # online prefers action 0
    double = td_targets(online, target, as_batch(buf, [0]), double_dqn=True)
    plain = td_targets(online, target, as_batch(buf, [0]), double_dqn=False)
    assert double.item() == pytest.approx(1 + 0.9 * 3)  # target's Q(s', 0)
    assert plain.item() == pytest.approx(1 + 0.9 * 6)  # target's max


NUMPY_OR_TORCH = pytest.mark.parametrize("numpy_paths", [True, False], ids=["numpy", "torch"])
"""Prioritized replay has a numpy path (CPU buffers: block sums) and a torch path (device
buffers: one cumulative sum); both must pass every prioritized-replay test."""


def per_buffer(alpha: float, seeds=(0,), numpy_paths: bool = True) -> ReplayBuffer:
    buf = ReplayBuffer(
        seeds=list(seeds),
        envs_per_seed=1,
        capacity=5,
        obs_dim=1,
        prioritized=True,
        alpha=alpha,
        eps=1e-9,
        numpy_paths=numpy_paths,
    )
    for i in range(4):
        buf.add(
            np.full((len(seeds), 1, 1), i, np.float32),
            np.zeros((len(seeds), 1)),
            np.zeros((len(seeds), 1)),
            np.zeros((len(seeds), 1, 1)),
            np.zeros((len(seeds), 1)),
            np.zeros((len(seeds), 1)),
        )
    return buf


@pytest.mark.parametrize("alpha", [1.0, 0.5])
@NUMPY_OR_TORCH
def test_prioritized_sampling_follows_priorities_to_the_alpha(alpha, numpy_paths):
    buf = per_buffer(alpha, numpy_paths=numpy_paths)
    buf.update_priorities(torch.tensor([[0, 1, 2, 3]]), torch.tensor([[1.0, -2.0, 3.0, -4.0]]))
    batch = buf.sample(batch_size=40_000, beta=1.0)
    freq = np.bincount(batch.indices.flatten().numpy(), minlength=5) / 40_000
    p = np.array([1.0, 2.0, 3.0, 4.0]) ** alpha
    assert freq[:4] == pytest.approx(p / p.sum(), abs=0.01)
    assert freq[4] == 0  # never written
    # w = (N P(i))^-beta / max w: with beta 1 that is p_min / p_i
    weights = {int(i): float(w) for i, w in zip(batch.indices.flatten(), batch.weights.flatten())}
    assert [weights[i] for i in range(4)] == pytest.approx(list(p.min() / p), rel=1e-5)


@NUMPY_OR_TORCH
def test_new_transitions_get_the_highest_priority_seen(numpy_paths):
    buf = per_buffer(alpha=0.5, numpy_paths=numpy_paths)
    buf.update_priorities(torch.tensor([[0, 1]]), torch.tensor([[9.0, 1.0]]))
    add(buf, 4, 0.0, 0.0)
    buf.flush()  # a device buffer stages new rows until it is next read
    assert buf.priority[0].tolist() == pytest.approx([3.0, 1.0, 1.0, 1.0, 3.0])


@NUMPY_OR_TORCH
def test_a_slot_drawn_twice_in_a_batch_keeps_the_priority_of_its_last_draw(numpy_paths):
    buf = per_buffer(alpha=1.0, numpy_paths=numpy_paths)
    buf.update_priorities(
        torch.tensor([[2, 0, 2, 1, 0]]), torch.tensor([[5.0, 1.0, -7.0, 2.0, 3.0]])
    )
    assert buf.priority[0].tolist() == pytest.approx([3.0, 2.0, 7.0, 1.0, 0.0])


@NUMPY_OR_TORCH
def test_one_seeds_priorities_do_not_change_anothers_samples(numpy_paths):
    a, b = (per_buffer(1.0, seeds=(0, 1), numpy_paths=numpy_paths) for _ in range(2))
    b.update_priorities(torch.tensor([[0, 1], [0, 1]]), torch.tensor([[0.0, 0.0], [50.0, 0.1]]))
    a.update_priorities(torch.tensor([[0, 1], [0, 1]]), torch.tensor([[0.0, 0.0], [0.1, 50.0]]))
    sa, sb = a.sample(batch_size=64), b.sample(batch_size=64)
    assert torch.equal(sa.indices[:, 0], sb.indices[:, 0])
    assert not torch.equal(sa.indices[:, 1], sb.indices[:, 1])


@NUMPY_OR_TORCH
def test_prioritized_replay_never_samples_an_incomplete_n_step_window(numpy_paths):
    buf = ReplayBuffer(
        seeds=[0],
        envs_per_seed=1,
        capacity=6,
        obs_dim=1,
        prioritized=True,
        n_step=3,
        numpy_paths=numpy_paths,
    )
    for i in range(4):
        add(buf, i, 1.0, i + 1)
    assert set(buf.sample(batch_size=2000).indices.flatten().tolist()) == {0, 1}


@NUMPY_OR_TORCH
def test_prioritized_sampling_leaves_every_priority_as_it_found_it(numpy_paths):
    """The torch path hides the newest rows (incomplete n-step windows) by overwriting their
    priorities in place; it must put them back, also once the ring has wrapped. Neither path may
    draw those rows."""
    buf = ReplayBuffer(
        seeds=[0, 1],
        envs_per_seed=1,
        capacity=6,
        obs_dim=1,
        prioritized=True,
        n_step=3,
        numpy_paths=numpy_paths,
    )
    for i in range(9):
        buf.add(
            np.full((2, 1, 1), i, np.float32),
            np.zeros((2, 1)),
            np.ones((2, 1)),
            np.zeros((2, 1, 1)),
            np.zeros((2, 1)),
            np.zeros((2, 1)),
        )
    # slots 3, 4, 5, 0 are sampleable (oldest first); 1 and 2, the newest rows, are not
    hidden = {(buf.pos - 1) % buf.rows, (buf.pos - 2) % buf.rows}
    assert hidden == {1, 2}
    buf.update_priorities(torch.tensor([[3, 4], [5, 0]]), torch.tensor([[5.0, 0.5], [2.0, 9.0]]))
    before = buf.priority.clone()
    drawn = set(buf.sample(batch_size=500, count=2).indices.flatten().tolist())
    assert torch.equal(buf.priority, before)
    assert drawn and not drawn & hidden


def random_steps(count: int, seed: int = 0):
    """`count` vector steps of random transitions for K=2 seeds, E=2 envs, 3-D observations."""
    gen = np.random.default_rng(seed)
    for _ in range(count):
        terminated = gen.random((2, 2)) < 0.3
        yield (
            gen.normal(size=(2, 2, 3)).astype(np.float32),
            gen.integers(0, 4, (2, 2)),
            gen.normal(size=(2, 2)),
            gen.normal(size=(2, 2, 3)).astype(np.float32),
            terminated,
            terminated | (gen.random((2, 2)) < 0.2),
        )


@pytest.mark.parametrize("n_step", [1, 3])
def test_device_copy_path_stores_the_same_rows_as_the_cpu_fast_path(n_step):
    """The path CUDA buffers take (rows staged in host memory, then sent over in one copy when the
    buffer is read; n-step columns worked out with torch) must match direct CPU writes and
    numpy's n-step columns, also after the ring wrapped."""
    fast, copied = (
        ReplayBuffer(
            seeds=[0, 1],
            envs_per_seed=2,
            capacity=12,
            obs_dim=3,
            gamma=0.9,
            n_step=n_step,
            numpy_paths=numpy_paths,
        )
        for numpy_paths in (True, False)
    )
    for step in random_steps(9):
        fast.add(*step)
        copied.add(*step)
    for buf in (fast, copied):
        buf.transitions(torch.zeros((2, 1), dtype=torch.int64))
    torch.testing.assert_close(fast.data, copied.data, rtol=1e-6, atol=0)


def test_n_step_columns_are_the_same_filled_step_by_step_or_at_once():
    """Each sample fills in the rows whose windows completed since the last one; filling after
    every step, or every 4 steps, or once at the end (the ring wrapped twice by then) must give
    the same columns for every row still held."""
    bufs = [
        ReplayBuffer(seeds=[0, 1], envs_per_seed=2, capacity=16, obs_dim=3, gamma=0.9, n_step=3)
        for _ in range(3)
    ]
    for t, step in enumerate(random_steps(21), 1):
        for every, buf in zip((1, 4, None), bufs):
            buf.add(*step)
            if every and t % every == 0 and buf.sampleable:
                buf.sample(batch_size=1)
    held = torch.tensor([(bufs[0].pos + i) % 8 * 2 + e for i in range(6) for e in (0, 1)])
    every_step, every_fourth, at_once = (buf.transitions(held[None].repeat(2, 1)) for buf in bufs)
    for a, b, c in zip(every_step, every_fourth, at_once):
        assert torch.equal(a, b) and torch.equal(a, c)


def prioritized_for_random_steps(capacity: int, n_step: int, **where) -> ReplayBuffer:
    """A prioritized buffer (alpha 0.6, gamma 0.9) shaped for `random_steps`; `where`: device or
    numpy_paths."""
    return ReplayBuffer(
        seeds=[0, 1],
        envs_per_seed=2,
        capacity=capacity,
        obs_dim=3,
        gamma=0.9,
        n_step=n_step,
        prioritized=True,
        alpha=0.6,
        **where,
    )


@pytest.mark.parametrize("n_step", [1, 3])
def test_sum_trees_draw_what_one_cumulative_sum_draws(n_step):
    """The CPU path's sum and min trees must draw the slots a search of the running sum over every
    slot (the torch path) draws from the same random numbers, with the same weights: over 5 ring
    wraps, each draw followed by new priorities for the slots it drew, and the pending priorities
    of incomplete n-step windows entering the trees as the windows complete."""
    bufs = [prioritized_for_random_steps(256, n_step, numpy_paths=p) for p in (True, False)]
    gen = np.random.default_rng(1)
    drawn = set()
    for t, step in enumerate(random_steps(640), 1):
        for buf in bufs:
            buf.add(*step)
        if t % 3 == 0 and bufs[0].sampleable:
            td = torch.from_numpy(gen.lognormal(0.0, 2.0, (2, 2, 32)).astype(np.float32))
            blocks, cumsum = (buf.sample(batch_size=32, count=2, beta=0.5) for buf in bufs)
            assert torch.equal(blocks.indices, cumsum.indices)
            torch.testing.assert_close(blocks.weights, cumsum.weights, rtol=1e-6, atol=0)
            for buf, batch in zip(bufs, (blocks, cumsum)):
                for j in range(2):
                    buf.update_priorities(batch.indices[j], td[j])
            drawn.update(blocks.indices.flatten().tolist())
    assert len(drawn) > 200  # the draws cover the buffer, not a corner of it
    bufs[1].flush()  # the last steps' rows, staged since the last draw
    sampleable = bufs[0].priority > 0
    torch.testing.assert_close(bufs[0].priority[sampleable], bufs[1].priority[sampleable])


def test_sum_tree_draws_by_hand():
    """Priorities 1, 2, 0, 4 (slot 2 holds nothing): total 7, so u * 7 falls in [0, 1) for slot 0,
    [1, 3) for slot 1 and [3, 7) for slot 3; a draw on a boundary goes right (as searchsorted's
    right=True), and one rounded past the end stays on the last slot with any priority."""
    sums, mins = np.zeros((1, 8)), np.full((1, 8), np.inf)
    kernels.set_priorities(sums, mins, np.array([[0, 1, 2, 3]]), np.array([[1.0, 2.0, 0.0, 4.0]]))
    assert sums[0, 1] == 7.0 and mins[0, 1] == 1.0
    u = np.array([[0.0, 0.999 / 7, 1 / 7, 2.999 / 7, 3 / 7, 0.9999999999999999]])
    idx, weights = np.empty(u.shape, np.int64), np.empty(u.shape, np.float32)
    kernels.draw_proportional(sums, mins, u, 1.0, idx, weights)
    assert idx.tolist() == [[0, 0, 1, 1, 3, 3]]
    # beta 1: w = p_min / p_i
    assert weights[0].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    # priorities 1, 2, 4, 0, and a root that rounding left above its leaves' sum (7.5, not 7):
    # a draw past the end must land on slot 2, the last with any priority, never on empty slot 3
    kernels.set_priorities(sums, mins, np.array([[2, 3]]), np.array([[4.0, 0.0]]))
    sums[0, 1] = 7.5
    kernels.draw_proportional(sums, mins, np.array([[0.99]]), 1.0, idx[:, :1], weights[:, :1])
    assert idx[0, 0] == 2


def test_rows_are_stored_as_numpy_casts_them():
    """The compiled store writes each column as numpy's float32 assignment would: observations,
    the action, the reward rounded to float32, gamma where the episode did not terminate (else
    0) and done."""
    gen = np.random.default_rng(0)
    obs, next_obs = (gen.normal(size=(2, 3, 4)).astype(np.float32) for _ in range(2))
    actions = gen.integers(0, 5, (2, 3))
    rewards = gen.normal(size=(2, 3)) * 1e3  # float64 with bits float32 cannot hold
    terminated = gen.random((2, 3)) < 0.5
    done = terminated | (gen.random((2, 3)) < 0.5)
    rows = np.full((2, 3, 12), np.nan, dtype=np.float32)
    kernels.store_rows(rows, obs, next_obs, actions, rewards, terminated, done, 0.99)
    columns = np.stack([actions, rewards, np.where(terminated, 0.0, 0.99), done], -1)
    expected = np.concatenate([obs, next_obs, columns], -1).astype(np.float32)
    assert np.array_equal(rows, expected)


@pytest.mark.parametrize("double_dqn", [False, True])
@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_one_forward_of_online_and_target_together_updates_to_the_same_bits(
    double_dqn, prioritized, loss
):
    """On the CPU train() runs the online network at s and the target network at s' as one
    forward of a network whose two halves they are, and works out the targets, TD errors and
    d loss / d Q in one compiled call (paired_step); that must give the TD errors and weights
    that td_targets and then gradient_step give with torch, to the bit, at an odd batch size,
    with errors inside and outside Huber's [-1, 1], and leave the target half as it was. A NaN
    in the target network's Q-values gives the same NaN errors on both paths (max and argmax
    take a NaN as the largest value), for that seed alone."""
    config = DQNConfig(
        double_dqn=double_dqn, prioritized=prioritized, loss=loss, hidden_sizes=(8, 8)
    )
    buf = ReplayBuffer(
        seeds=[0, 1], envs_per_seed=2, capacity=40, obs_dim=3, n_step=3, prioritized=prioritized
    )
    for step in random_steps(30):
        buf.add(*step)
    batch = buf.sample(batch_size=15, count=1, beta=0.4)
    runs = []
    for paired in (True, False, True, False):
        both = BatchedQNetwork([0, 1, 0, 1], 3, 4, hidden_sizes=(8, 8))
        online, target = both.rows(0, 2), both.rows(2, 4)
        target.params.mul_(3.0)  # a target network that differs from the online one
        if len(runs) >= 2:  # seed 1's target network diverged: its Q-value of action 2 is NaN
            target.weights[-1][1, :, 2] = float("nan")
        before = both.params.clone()
        optimizer = make_optimizer(config, online)
        if paired:
            td = paired_step(both, online, optimizer, config, batch)
        else:
            weights = batch.weights[0] if prioritized else None
            targets = td_targets(online, target, batch, double_dqn)[0]
            td = gradient_step(
                online, optimizer, config, batch.obs[0], batch.actions[0], targets, weights
            )
        torch.testing.assert_close(both.params[2:], before[2:], rtol=0, atol=0, equal_nan=True)
        assert not torch.equal(both.params[0], before[0])  # the online half: updated
        runs.append((td.clone(), both.params.clone()))
    for (td_paired, params_paired), (td_apart, params_apart) in (runs[:2], runs[2:]):
        torch.testing.assert_close(td_paired, td_apart, rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(params_paired, params_apart, rtol=0, atol=0, equal_nan=True)
    finite, diverged = runs[0][0], runs[2][0]
    assert (finite.abs() > 1).any() and (finite.abs() < 1).any()
    assert diverged[1].isnan().any() and torch.equal(diverged[0], finite[0])
    assert double_dqn or diverged[1].isnan().all()


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"double_dqn": True, "prioritized": True, "loss": "mse"},
        {"dueling": True, "grad_clip_value": 0.05, "grad_clip_norm": None},
        {"activation": "tanh", "optimizer": "adamw", "amsgrad": True, "weight_decay": 0.01},
        {"activation": "elu", "optimizer": "rmsprop", "weight_decay": 0.01, "dueling": True},
    ],
    ids=["plain", "double-per-mse", "dueling-clip-value", "tanh-adamw-amsgrad", "elu-rmsprop"],
)
def test_the_compiled_cpu_step_updates_as_the_torch_step_does(extra):
    """train() on the CPU runs each gradient step as two compiled calls (dqn.compiled_step:
    forward, targets, backward and clip, then the optimizer); a device runs the torch step. Over
    a few updates of one batch (errors inside and outside Huber's [-1, 1], norms above the clip)
    both must give the same TD errors and weights to float precision (OpenBLAS and MKL round
    their products each their own way), leave the target half alone, and keep the padding zero.
    A NaN in seed 1's target network gives NaN errors for seed 1 alone."""
    config = DQNConfig(**{"hidden_sizes": (8, 8), "grad_clip_norm": 0.5, **extra})
    buf = ReplayBuffer(
        seeds=[0, 1],
        envs_per_seed=2,
        capacity=40,
        obs_dim=3,
        n_step=3,
        prioritized=config.prioritized,
    )
    for step in random_steps(30):
        buf.add(*step)
    batch = buf.sample(batch_size=15, count=1, beta=0.4)
    drawn = HostBatch(
        *(t[0].numpy() for t in (batch.pairs, batch.actions, batch.returns, batch.discounts)),
        np.ascontiguousarray(batch.weights[0].numpy()) if config.prioritized else None,
        batch.indices[0].numpy(),
    )
    runs = []
    for compiled, diverged in ((False, False), (True, False), (True, True)):
        both = BatchedQNetwork([0, 1, 0, 1], 3, 4, (8, 8), config.activation, config.dueling)
        online, target = both.rows(0, 2), both.rows(2, 4)
        target.params.mul_(3.0)  # a target network that differs from the online one
        if diverged:
            target.weights[-1][1, :, 2] = float("nan")
        before = both.params.clone()
        optimizer = make_optimizer(config, online)
        step = compiled_step(both, optimizer, config, 15)
        for _ in range(3):
            td = step(drawn) if compiled else paired_step(both, online, optimizer, config, batch)
        torch.testing.assert_close(both.params[2:], before[2:], rtol=0, atol=0, equal_nan=True)
        assert not (both.params[:2, online.params.shape[1] - online.padding :] != 0).any()
        runs.append((td.clone(), online.params.clone()))
    (td_torch, params_torch), (td_compiled, params_compiled), (td_nan, params_nan) = runs
    assert (td_torch.abs() > 1).any() and (td_torch.abs() < 1).any()
    assert not torch.equal(params_torch, before[:2])
    torch.testing.assert_close(td_compiled, td_torch, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(params_compiled, params_torch, rtol=1e-5, atol=1e-6)
    assert td_nan[1].isnan().any() and torch.equal(td_nan[0], td_compiled[0])
    assert torch.equal(params_nan[0], params_compiled[0])


@pytest.mark.parametrize("prioritized", [False, True])
def test_a_host_draw_is_the_batch_sample_draws(prioritized):
    """draw_host (numpy arrays, for the compiled CPU step) draws and gathers what sample() with
    count 1 does from the same buffer state, and its priority updates are update_priorities'."""
    a, b = (
        ReplayBuffer(
            seeds=[0, 1], envs_per_seed=2, capacity=40, obs_dim=3, n_step=3, prioritized=prioritized
        )
        for _ in range(2)
    )
    for step in random_steps(30):
        a.add(*step)
        b.add(*step)
    for _ in range(3):
        batch, drawn = a.sample(batch_size=7, count=1, beta=0.5), b.draw_host(7, beta=0.5)
        assert np.array_equal(drawn.pairs, batch.pairs[0].numpy())
        for name in ("actions", "returns", "discounts", "indices"):
            assert np.array_equal(getattr(drawn, name), getattr(batch, name)[0].numpy()), name
        if prioritized:
            assert np.array_equal(drawn.weights, batch.weights[0].numpy())
            td = np.random.default_rng(0).normal(size=(2, 7)).astype(np.float32)
            a.update_priorities(batch.indices[0], torch.from_numpy(td))
            b.update_priorities_host(drawn.indices, td)
        else:
            assert drawn.weights is None
