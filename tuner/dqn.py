"""DQN for K seeds in lock-step: train(), evaluate(), checkpoints. Knows nothing of Optuna."""

from __future__ import annotations

import contextlib
import ctypes
import math
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from tuner import fused, kernels
from tuner.config import DQNConfig
from tuner.envs import (
    EVAL_SEED,
    RECHECK_EPISODE,
    CartPoleBatch,
    TrainEnvs,
    check_env,
    learning_rewards,
    make_env,
    stream_seed,
)
from tuner.errors import Diverged, TunerError
from tuner.networks import NUMPY_ACTIVATIONS, BatchedQNetwork
from tuner.optim import FlatOptimizer, clip_gradients, flush_tiny
from tuner.replay import Batch, HostBatch, ReplayBuffer, SeedUniforms

HOUSEKEEPING_EVERY = 32
"""Gradient steps between checks for divergence and flushes of tiny weights (both also run on
the first training phase; the check also before every evaluation): each costs a few dozen
microseconds, as much as a whole update of a small network."""

HOST_ACTING_MACS = 500_000
"""A device network acts (greedy actions) with numpy on a host copy of its weights when one call
costs at most this many multiply-adds (seeds x observations x one network's): about 80 us at the
6 GMAC/s numpy managed for these shapes on this project's CPUs, where a device call costs
100-200 us of launches, copies and a wait on an H200, whatever its size
(benchmarks/gpu/profile_train.py). Acting then needs no wait on the device between env steps,
only one copy of the weights after each training phase, and picks the actions the CPU would."""

MALLOC_MMAP_THRESHOLD = 32 << 20
MALLOC_TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> None:
    """Have glibc's malloc keep freed memory for the next allocation instead of returning it.

    A gradient step allocates and frees blocks of 64-270 kB (a 256-256 network's weight
    gradient and the flat gradient), and a phase's TD targets blocks of megabytes; by default
    glibc maps such blocks afresh and hands them back on free, or trims the heap's top, so each
    was paged in again: 315k page faults in 20k steps of RL Zoo's CartPole config (one seed),
    19.6k with these settings, and the run took 4.31 s instead of 4.80. The settings hold for
    the whole process (freed memory up to MALLOC_TRIM_THRESHOLD stays with it); nothing is
    done where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library (musl)
        return
    libc.mallopt(-3, MALLOC_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (which also stops it moving)
    libc.mallopt(-1, MALLOC_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD


OnEval = Callable[[int, np.ndarray], "bool | None"]
"""on_eval(env_step, mean_returns[K]); returning False stops training, raising aborts it."""


@dataclass
class TrainResult:
    config: DQNConfig
    seeds: list[int]
    eval_steps: list[int]
    eval_returns: np.ndarray
    """[n_evals, K]: each seed's mean greedy return at each evaluation."""
    env_steps: int
    """Env steps per seed."""
    gradient_steps: int
    """Gradient steps per seed."""
    wall_seconds: float
    stopped_early: bool
    network: BatchedQNetwork
    """Every seed's weights at the last step."""
    best_network: BatchedQNetwork
    """Every seed's weights at its best evaluation (the latest of equals): a seed that learned the
    task and lost it keeps what it had. Its initial weights when it was never evaluated."""
    best_steps: list[int]
    """[K]: the env step of each seed's best evaluation (0 where there was none)."""
    rechecked: list[float] | None = None
    """[K]: with recheck_episodes, each seed's best_network weights' mean return over the recheck
    episodes (from RECHECK_EPISODE; -inf where none was played); None without a recheck (and for
    a merged run where a part, such as a diverged seed's, had none)."""

    @property
    def kept(self) -> BatchedQNetwork:
        """The weights the run ends with, as config.keep_weights says: network or best_network."""
        return self.best_network if self.config.keep_weights == "best" else self.network

    @property
    def kept_steps(self) -> list[int]:
        """[K]: the env step each seed's kept weights are from."""
        if self.config.keep_weights == "best":
            return self.best_steps
        return [self.env_steps] * len(self.seeds)

    @property
    def final_returns(self) -> np.ndarray:
        """[K]: each seed's mean return at the last evaluation."""
        return self.eval_returns[-1] if len(self.eval_returns) else np.full(len(self.seeds), np.nan)

    @property
    def steps_per_second(self) -> float:
        """Env steps per second over all seeds together."""
        return self.env_steps * len(self.seeds) / max(self.wall_seconds, 1e-9)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is CUDA when available, else CPU; asking for CUDA without one is a TunerError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise TunerError(
            "--device cuda was asked for but no CUDA GPU is available; use auto or cpu"
        )
    try:
        return torch.device(device)
    except RuntimeError:
        raise TunerError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def epsilon(config: DQNConfig, step: int) -> float:
    """Exploration rate after `step` env steps: 1 during the learning_starts warm-up (uniformly
    random actions, as in Stable-Baselines3), then the schedule, which counts from step 0."""
    if step < config.learning_starts:
        return 1.0
    span = config.epsilon_start - config.epsilon_end
    if config.epsilon_schedule == "exponential":
        return config.epsilon_end + span * math.exp(-step / config.epsilon_decay_steps)
    return config.epsilon_end + span * max(0.0, 1.0 - step / config.epsilon_decay_steps)


def learning_rate(config: DQNConfig, step: int) -> float:
    """Step size for a training phase after `step` env steps."""
    if config.learning_rate_schedule == "linear":
        return config.learning_rate * max(0.0, 1.0 - step / config.total_steps)
    return config.learning_rate


class Exploration:
    """Epsilon-greedy choices for K seeds' E envs, drawn from each seed's own generator.

    The numbers and the epsilon schedule are turned into choices 1024 vector steps at a time,
    so that a step of the training loop only looks its choices up.
    """

    CHUNK = 1024

    def __init__(self, config: DQNConfig, seeds: list[int], e: int, n_actions: int) -> None:
        self.config, self.k, self.e, self.n_actions = config, len(seeds), e, n_actions
        self.uniforms = SeedUniforms(seeds, stream=4, width=2 * e, chunk=self.CHUNK)

    def choices(self, t: int) -> tuple[np.ndarray, np.ndarray, int]:
        """For vector step t (1, 2, ... in order): random actions [K, E], which envs act
        greedily instead [K, E], and how many do."""
        i = (t - 1) % self.CHUNK
        if i == 0:
            u = self.uniforms.next(self.CHUNK).reshape(self.k, self.CHUNK, self.e, 2)
            eps = [epsilon(self.config, (t - 1 + j) * self.e) for j in range(self.CHUNK)]
            self.random = (u[..., 1] * self.n_actions).astype(np.int64)
            self.greedy = u[..., 0] >= np.array(eps)[:, None]
            self.n_greedy = self.greedy.sum((0, 2)).tolist()
        return self.random[:, i], self.greedy[:, i], self.n_greedy[i]


def acts_on_host(network: BatchedQNetwork, rows: int) -> bool:
    """Whether greedy actions for `rows` observations a seed cost less from a host copy of this
    device network's weights than on the device (HOST_ACTING_MACS)."""
    return (
        network.params.device.type != "cpu"
        and network.numpy_paths is not False
        and network.activation in NUMPY_ACTIVATIONS
        and network.k * rows * network.macs <= HOST_ACTING_MACS
    )


def make_optimizer(config: DQNConfig, network: BatchedQNetwork) -> FlatOptimizer:
    return FlatOptimizer(
        config.optimizer,
        network.params,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        amsgrad=config.amsgrad,
    )


def td_targets(
    online: BatchedQNetwork, target: BatchedQNetwork, batch: Batch, double_dqn: bool
) -> torch.Tensor:
    """r + discount * Q_target(s', a*) for every [count, K, batch] entry.

    a* is the target network's argmax, or the online network's with Double DQN. `discount` is
    already 0 where the episode terminated: bootstrap through time limits, never termination.
    """
    count, k, b = batch.returns.shape
    if count == 1:  # the common case, with two fewer ops
        next_obs = batch.next_obs[0]
    else:
        next_obs = batch.next_obs.transpose(0, 1).reshape(k, count * b, -1)
    q_next = target(next_obs)
    if double_dqn:
        best = online(next_obs).argmax(-1, keepdim=True)
        value = q_next.gather(-1, best).squeeze(-1)
    else:
        value = q_next.max(-1).values
    value = value[None] if count == 1 else value.reshape(k, count, b).transpose(0, 1)
    # a product, then a sum, as paired_td rounds them (addcmul fused them into one rounding)
    return batch.returns + batch.discounts * value


def gradient_step(
    online: BatchedQNetwork,
    optimizer: FlatOptimizer,
    config: DQNConfig,
    obs: torch.Tensor,
    actions: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """One update of every seed; returns the TD errors [K, B] (prioritized replay's priorities).

    Each seed minimises its own batch mean of Huber (delta 1) or squared TD error, so no seed's
    gradient depends on another seed's data.
    """
    q, cache = online.forward(obs)
    actions = actions[..., None]
    td = q.gather(-1, actions).squeeze_(-1).sub_(targets)
    # d loss / d td, over the batch size (each seed's loss is its batch mean)
    if config.loss == "huber":
        grad_td = td.clamp(-1.0, 1.0).div_(td.shape[1])
    else:
        grad_td = td.mul(2.0 / td.shape[1])
    if weights is not None:
        grad_td.mul_(weights)
    grad_q = torch.zeros_like(q).scatter_(-1, actions, grad_td[..., None])
    descend(online, optimizer, config, cache, grad_q)
    return td


def paired_step(
    both: BatchedQNetwork,
    online: BatchedQNetwork,
    optimizer: FlatOptimizer,
    config: DQNConfig,
    batch: Batch,
) -> torch.Tensor:
    """td_targets and gradient_step for one batch (count 1) with the CPU's replay, whose `pairs`
    hold obs and next_obs together: `both` is the online network's seeds followed by the target
    network's, whose halves `online` and the target are, so one forward gives the online
    Q-values at s and the target's at s' (one forward a step instead of two; two instead of three
    with Double DQN, which also needs the online network at s'), and one compiled call
    (kernels.paired_td) the rest up to the backward. On a small network each torch call costs more than its arithmetic. The
    same products on the same rows, the same arithmetic: the same bits as the two calls."""
    k, b = online.k, batch.returns.shape[2]
    q_both, cache = both.forward(batch.pairs[0])
    online_next = online(batch.next_obs[0]).numpy() if config.double_dqn else None
    q = q_both.numpy()
    # numpy allocates and slices in a fraction of the time torch takes at these sizes
    td, grad_q = np.empty((k, b), np.float32), np.empty((k, *q.shape[1:]), np.float32)
    kernels.paired_td(
        q,
        q[:0] if online_next is None else online_next,
        batch.actions.numpy()[0],
        batch.returns.numpy()[0],
        batch.discounts.numpy()[0],
        batch.weights.numpy()[0] if config.prioritized else td[:, :0],
        config.loss == "huber",
        td,
        grad_q,
    )
    descend(online, optimizer, config, [c[:k] for c in cache], torch.from_numpy(grad_q))
    return torch.from_numpy(td)


def descend(
    online: BatchedQNetwork,
    optimizer: FlatOptimizer,
    config: DQNConfig,
    cache: list[torch.Tensor],
    grad_q: torch.Tensor,
) -> None:
    """The online network's backward from d loss / d Q, the gradient clip and the optimizer."""
    grad = online.backward(cache, grad_q)
    optimizer.step(clip_gradients(grad, config.grad_clip_value, config.grad_clip_norm))


FUSED = True
"""Run each CPU gradient step (forward, targets, backward, clip, optimizer) as two compiled calls
(tuner.fused) where the activation allows; False runs the torch step, which a device runs (a
test trains through both and requires the same returns and weights to float precision)."""


def compiled_step(
    both: BatchedQNetwork, optimizer: FlatOptimizer, config: DQNConfig, batch_size: int
) -> Callable[[HostBatch], torch.Tensor]:
    """paired_step on a CPU replay's draw (ReplayBuffer.draw_host), in tuner.fused's two calls:
    returns the update's TD errors [K, B] (one buffer, overwritten by the next step)."""
    k = both.k // 2
    params, shapes = both.params.numpy(), fused.layout(both.shapes)
    grad = np.zeros((k, params.shape[1]), np.float32)  # the padding's gradient stays zero
    td = np.empty((k, batch_size), np.float32)
    no_weights = np.zeros((k, 0), np.float32)
    act = fused.ACTIVATIONS[config.activation]
    huber = config.loss == "huber"
    clip_value, clip_norm = config.grad_clip_value or 0.0, config.grad_clip_norm or 0.0
    td_tensor = torch.from_numpy(td)

    def step(batch: HostBatch) -> torch.Tensor:
        fused.gradients(
            params,
            shapes,
            batch.pairs,
            batch.actions,
            batch.returns,
            batch.discounts,
            no_weights if batch.weights is None else batch.weights,
            config.double_dqn,
            config.dueling,
            huber,
            act,
            clip_value,
            clip_norm,
            grad,
            td,
        )
        optimizer.step_host(grad)
        return td_tensor

    return step


CUDA_GRAPHS = True
"""Replay each gradient step on CUDA as one captured graph (GradientStepGraph); False runs
every step op by op (a CUDA test requires both to train the same weights to the bit)."""


class GradientStepGraph:
    """gradient_step on CUDA, captured once as a CUDA graph and then replayed: one launch in
    place of the ~35 kernel launches of a forward, the hand-written backward, the clip and the
    optimizer, which cost the host more time than the GPU spends on them at these sizes.

    The graph reads its batch from fixed input tensors (each call copies the batch in) and
    writes the TD errors to a fixed output, so a call's result holds until the next call. The
    first WARM_UP calls are real steps run op by op on the same inputs (cuBLAS and the
    allocator settle there). The graph is captured again whenever the learning rate differs
    from the captured one (it is part of the captured optimizer call), so train() uses it only
    with a constant rate.
    """

    WARM_UP = 3

    def __init__(
        self,
        online: BatchedQNetwork,
        optimizer: FlatOptimizer,
        config: DQNConfig,
        batch_size: int,
    ) -> None:
        k, dev = online.k, online.params.device
        self.online, self.optimizer, self.config = online, optimizer, config
        self.obs = torch.zeros(k, batch_size, online.arch[0], device=dev)
        self.actions = torch.zeros(k, batch_size, dtype=torch.int64, device=dev)
        self.targets = torch.zeros(k, batch_size, device=dev)
        self.weights = torch.ones(k, batch_size, device=dev) if config.prioritized else None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.td: torch.Tensor | None = None  # the graph's output, set when it is captured
        self.lr = optimizer.lr
        self.calls = 0

    def _step(self) -> torch.Tensor:
        return gradient_step(
            self.online,
            self.optimizer,
            self.config,
            self.obs,
            self.actions,
            self.targets,
            self.weights,
        )

    def __call__(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        self.obs.copy_(obs)
        self.actions.copy_(actions)
        self.targets.copy_(targets)
        if self.weights is not None:
            self.weights.copy_(weights)
        self.calls += 1
        if self.graph is not None and self.optimizer.lr != self.lr:
            self.graph = None
        if self.graph is None and self.calls <= self.WARM_UP:
            # on a side stream, as torch.cuda.graph's documentation warms up
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                td = self._step()
            torch.cuda.current_stream().wait_stream(side)
            return td
        if self.graph is None:
            self.lr = self.optimizer.lr
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records the kernels, runs none of them
                self.td = self._step()
        self.graph.replay()
        return self.td


class Best:
    """Each seed's best evaluation so far, its env step and a copy of its weights then."""

    def __init__(self, online: BatchedQNetwork) -> None:
        self.network = online.clone()
        self.returns = np.full(online.k, -np.inf)
        self.steps = np.zeros(online.k, dtype=np.int64)
        self.rechecked = np.full(online.k, -np.inf)  # the kept weights' recheck, when rechecked

    def update(
        self,
        online: BatchedQNetwork,
        returns: np.ndarray,
        step: int,
        recheck: Callable[[], np.ndarray] | None = None,
    ) -> None:
        """Keep the weights of the seeds whose `returns` are at least their best so far (a later
        evaluation wins a tie: its weights had more training to reach the same score).

        With `recheck` (more greedy episodes of `online`: [K] means), a seed that ties its best
        keeps the new weights only if they score at least what the kept ones did on theirs; a
        higher score always wins, and its recheck becomes the one to match."""
        higher, equal = returns > self.returns, returns == self.returns
        better = higher | equal
        if recheck is not None and better.any():
            again = recheck()
            better = higher | (equal & (again >= self.rechecked))
            self.rechecked[better] = again[better]
        if better.any():
            self.returns[better], self.steps[better] = returns[better], step
            rows = torch.from_numpy(better).to(online.params.device)
            self.network.params[rows] = online.params[rows]


def check_finite(online: BatchedQNetwork, td: torch.Tensor, step: int) -> None:
    """Raise Diverged naming the first seed whose TD errors are not finite.

    Non-finite weights give non-finite Q-values and so TD errors, and once non-finite they stay
    so: checking the latest update's [K, B] errors every HOUSEKEEPING_EVERY gradient steps
    catches a divergence at most that many steps after it happens, at the cost of one sum.
    """
    if not torch.isfinite(td.sum()):
        bad = (~torch.isfinite(td).all(1)).nonzero()
        if not len(bad):  # every error finite, only their sum too large for a float
            return
        exc = Diverged(step=step, seed=online.seeds[int(bad[0, 0])], what="loss or Q-values")
        exc.network = online
        raise exc


def update_target(
    target: BatchedQNetwork, online: BatchedQNetwork, config: DQNConfig, times: int = 1
) -> None:
    """`times` target updates at once, made while the online weights stayed fixed: a hard copy
    (any number of copies is one), or n soft updates with tau, which leave (1 - tau)^n of the
    gap: one lerp."""
    if not times:
        return
    if config.target_update == "hard":
        target.params.copy_(online.params)
    else:
        target.params.lerp_(online.params, 1.0 - (1.0 - config.tau) ** times)


def evaluate(
    network: BatchedQNetwork, env_id: str, episodes: int, *, first: int = 0, max_envs: int = 1024
) -> np.ndarray:
    """Greedy returns [K, episodes] of episodes first .. first + episodes - 1; episode j of every
    seed starts from reset(seed=EVAL_SEED + j).

    Only envs still in their episode are stepped; envs without a time limit stop at 10,000 steps.
    CartPole's episodes are stepped all at once by CartPoleBatch, other envs one by one.
    """
    k = len(network.seeds)
    returns = np.zeros((k, episodes))
    per_chunk = max(1, max_envs // k)
    if acts_on_host(network, min(episodes, per_chunk)):
        network = network.host_copy()
    env = make_env(env_id)
    try:
        batched = CartPoleBatch.fits(env)
        for start in range(0, episodes, per_chunk):
            ids = list(range(first + start, first + min(episodes, start + per_chunk)))
            if batched:
                total = _play_cartpole(network, env, ids)
            else:
                total = _play_one_by_one(network, env_id, ids)
            returns[:, start : start + len(ids)] = total.reshape(k, len(ids))
    finally:
        env.close()
    return returns


def _play_one_by_one(network: BatchedQNetwork, env_id: str, ids: list[int]) -> np.ndarray:
    """Returns [K * len(ids)], seed-major, of greedy episodes in K * len(ids) gymnasium envs."""
    k = len(network.seeds)
    envs = [make_env(env_id) for _ in range(k * len(ids))]
    try:
        obs = np.stack([env.reset(seed=EVAL_SEED + j)[0] for env, j in zip(envs, ids * k)])
        obs = obs.astype(np.float32)
        total = np.zeros(len(envs))
        active = np.ones(len(envs), dtype=bool)
        limit = envs[0].spec.max_episode_steps if envs[0].spec else None
        for _ in range(limit or 10_000):
            actions = network.greedy(obs.reshape(k, len(ids), -1)).reshape(-1).tolist()
            for i in np.flatnonzero(active):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
                total[i] += reward
                active[i] = not (terminated or truncated)
            if not active.any():
                break
    finally:
        for env in envs:
            env.close()
    return total


def _play_cartpole(network: BatchedQNetwork, env: gym.Env, ids: list[int]) -> np.ndarray:
    """The same episodes and returns as _play_one_by_one, with CartPole stepped in numpy."""
    return play_cartpole_to_end(network, env, ids)[0]


def play_cartpole_to_end(
    network: BatchedQNetwork, env: gym.Env, ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """_play_cartpole's returns [K * len(ids)], seed-major, and each episode's last state
    [4, K * len(ids)]: where an episode that ended early left the cart and the pole."""
    k = len(network.seeds)
    physics = CartPoleBatch(env)
    starts = []
    for j in ids:
        env.reset(seed=EVAL_SEED + j)
        starts.append(env.unwrapped.state)
    state = np.tile(np.stack(starts, axis=1), k)  # [4, K * len(ids)], seed-major
    total = np.zeros(state.shape[1])
    active = np.ones(state.shape[1], dtype=bool)
    for _ in range(physics.max_steps or 10_000):
        obs = state.T.astype(np.float32)
        actions = network.greedy(obs.reshape(k, len(ids), -1)).reshape(-1)
        after, terminated = physics.step(state, actions)
        total += active  # CartPole's reward: 1 a step, the last one included
        state = np.where(active, after, state)  # a finished episode keeps its last state
        active &= ~terminated
        if not active.any():
            break
    return total, state


def train(
    config: DQNConfig,
    seeds: int = 1,
    device: str | torch.device = "auto",
    on_eval: OnEval | None = None,
    init_from: str | Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train `seeds` independent copies (seed config.seed + k) in lock-step; see TrainResult."""
    if seeds < 1:
        raise TunerError(f"seeds={seeds} must be at least 1")
    dev = resolve_device(device)
    info = check_env(config.env)
    seed_ids = [config.seed + k for k in range(seeds)]
    k, e = seeds, config.envs_per_seed

    both = BatchedQNetwork(  # the online network's seeds, then the target network's
        seed_ids * 2,
        info.obs_dim,
        info.n_actions,
        config.hidden_sizes,
        config.activation,
        config.dueling,
        device=dev,
    )
    online, target = both.rows(0, k), both.rows(k, 2 * k)
    if init_from is not None:
        _, weights = load_checkpoint(init_from)
        online.load_seed_state(weights)
        target.refresh(online)
    actor = online.host_copy() if acts_on_host(online, e) else online
    optimizer = make_optimizer(config, online)
    replay = ReplayBuffer(
        seeds=seed_ids,
        envs_per_seed=e,
        capacity=min(config.replay_size, config.total_steps),
        obs_dim=info.obs_dim,
        n_step=config.n_step,
        gamma=config.gamma,
        prioritized=config.prioritized,
        alpha=config.per_alpha,
        eps=config.per_eps,
        device=dev,
    )
    explore = Exploration(config, seed_ids, e, info.n_actions)

    # all cadences in vector steps (each is E env steps per seed)
    n_steps = math.ceil(config.total_steps / e)
    train_every = math.ceil(config.train_frequency / e)
    target_every = math.ceil(config.target_update_interval / e)
    eval_every = math.ceil(config.eval_every / e) if config.eval_every else n_steps
    chunk = 1 if (config.double_dqn or config.prioritized) else config.gradient_steps
    step_graph = (
        GradientStepGraph(online, optimizer, config, config.batch_size)
        if CUDA_GRAPHS and dev.type == "cuda" and config.learning_rate_schedule == "constant"
        else None
    )
    compiled = (
        compiled_step(both, optimizer, config, config.batch_size)
        if FUSED
        and replay.host is not None
        and both.numpy_paths is not False
        and config.activation in fused.ACTIVATIONS
        else None
    )

    envs = TrainEnvs(config.env, [[stream_seed(s, 2, i) for i in range(e)] for s in seed_ids])
    obs = envs.obs
    keep_freed_memory()
    # Denormal floats are ~10x slower on the CPU. This flag covers the calling thread only; the
    # weights and optimizer state, where they build up, are also cleared by flush_tiny below.
    torch.set_flush_denormal(True)
    bar = tqdm(
        total=n_steps * e, unit="step", disable=not progress, dynamic_ncols=True, leave=False
    )
    eval_steps: list[int] = []
    eval_returns: list[np.ndarray] = []
    best = Best(online)
    recheck = None
    if config.keep_weights == "best" and config.recheck_episodes:
        episodes = config.recheck_episodes

        def recheck() -> np.ndarray:
            return evaluate(online, config.env, episodes, first=RECHECK_EPISODE).mean(1)

    grad_steps, owed, stopped = 0, 0, False
    checked_at: int | None = None  # gradient steps at the last divergence check
    start = time.perf_counter()
    try:
        # nothing in the loop needs autograd: inference mode skips its bookkeeping on every
        # op (about a tenth of a small network's update); the weights stay ordinary tensors
        # a diverging seed's acting overflows in numpy before check_finite reports it
        with (
            torch.inference_mode(),
            np.errstate(over="ignore", invalid="ignore"),
            fused.one_blas_thread() if compiled is not None else contextlib.nullcontext(),
        ):
            for t in range(1, n_steps + 1):
                step = t * e
                # act: epsilon-greedy, each seed with its own random numbers
                actions, greedy, n_greedy = explore.choices(t)
                if n_greedy == k * e:
                    actions = actor.greedy(obs)
                elif n_greedy:
                    actions = np.where(greedy, actor.greedy(obs), actions)

                # step and store the observation each action led to (an episode's last one where
                # it ended, while next_obs already starts the next episode)
                next_obs, real_next, rewards, terminated, done = envs.step(actions)
                rewards = learning_rewards(
                    rewards, terminated, config.termination_penalty, config.reward_scale
                )
                replay.add(obs, actions, rewards, real_next, terminated, done)
                obs = next_obs

                # learn
                if t % train_every == 0 and step > config.learning_starts and replay.sampleable:
                    beta = (
                        config.per_beta
                        + (config.per_beta_end - config.per_beta) * step / config.total_steps
                    )
                    optimizer.lr = learning_rate(config, step)
                    update_target(target, online, config, times=owed)
                    owed = 0
                    if compiled is not None:  # the CPU: two compiled calls a step
                        for _ in range(config.gradient_steps):
                            drawn = replay.draw_host(config.batch_size, beta)
                            td = compiled(drawn)
                            if config.prioritized:
                                replay.update_priorities_host(drawn.indices, td.numpy())
                    else:
                        for g in range(config.gradient_steps):
                            if g % chunk == 0:  # target net and replay are fixed within a phase
                                batch = replay.sample(config.batch_size, chunk, beta)
                                paired = chunk == 1 and batch.pairs is not None
                                if not paired:
                                    targets = td_targets(online, target, batch, config.double_dqn)
                            j = g % chunk
                            weights = (
                                batch.weights[j] if config.prioritized and not paired else None
                            )
                            if paired:
                                td = paired_step(both, online, optimizer, config, batch)
                            elif step_graph is not None:
                                td = step_graph(batch.obs[j], batch.actions[j], targets[j], weights)
                            else:
                                td = gradient_step(
                                    online,
                                    optimizer,
                                    config,
                                    batch.obs[j],
                                    batch.actions[j],
                                    targets[j],
                                    weights,
                                )
                            if config.prioritized:
                                replay.update_priorities(batch.indices[j], td)
                    grad_steps += config.gradient_steps
                    if checked_at is None or grad_steps - checked_at >= HOUSEKEEPING_EVERY:
                        check_finite(online, td, step)
                        flush_tiny(both.params, *optimizer.state)
                        checked_at = grad_steps
                    if actor is not online:
                        actor.refresh(online)

                # sync target: the online weights change only while learning, so the updates due
                # are made at once right before the target is next used
                if t % target_every == 0:
                    owed += 1

                # evaluate
                if t % eval_every == 0 or t == n_steps:
                    # never score a diverged network
                    if checked_at is not None and grad_steps > checked_at:
                        check_finite(online, td, step)
                        checked_at = grad_steps
                    returns = evaluate(online, config.env, config.eval_episodes).mean(1)
                    eval_steps.append(step)
                    eval_returns.append(returns)
                    best.update(online, returns, step, recheck)
                    bar.set_postfix(eval=f"{returns.mean():.1f}", refresh=False)
                    if on_eval is not None and on_eval(step, returns) is False:
                        stopped = True
                        break
                if t % 256 == 0 or t == n_steps:
                    bar.update(step - bar.n)
    finally:
        torch.set_flush_denormal(False)
        envs.close()
        bar.close()
    return TrainResult(
        config=config,
        seeds=seed_ids,
        eval_steps=eval_steps,
        eval_returns=np.array(eval_returns).reshape(-1, k),
        env_steps=step,
        gradient_steps=grad_steps,
        wall_seconds=time.perf_counter() - start,
        stopped_early=stopped,
        network=online,
        best_network=best.network,
        best_steps=best.steps.tolist(),
        rechecked=best.rechecked.tolist() if recheck is not None else None,
    )


@dataclass
class Retrained:
    """A config trained on fresh seeds and played greedily: `result` holds every seed (a diverged
    seed's row is its network as it was when found, its curve ends there), `returns` [S,
    episodes] every seed's greedy episodes, `diverged` {seed: env step} the seeds whose training
    diverged."""

    result: TrainResult
    returns: np.ndarray
    diverged: dict[int, int]


def retrain(
    config: DQNConfig,
    seeds: list[int],
    device: str | torch.device,
    episodes: int,
    progress: bool,
    init_from: str | Path | None = None,
) -> Retrained:
    """Train config's `seeds` (consecutive, from config.seed) in one batched run and play
    `episodes` greedy episodes with each seed's kept weights (TrainResult.kept; none when 0). A
    seed whose training diverges is a failed seed, not a failed run: the other seeds of its run
    train again without it, which gives them the weights they would have had anyway on the CPU (a
    seed trains to the same bits alone or anywhere in a batch there; on a GPU the batch size
    changes the rounding), and it is scored by what its diverged network does."""
    assert seeds == list(range(config.seed, config.seed + len(seeds)))
    parts, groups, seen = [], [list(seeds)], []
    while groups:
        group = groups.pop(0)
        seen.clear()
        start = time.perf_counter()
        try:
            result = train(
                config.replace(seed=group[0]),
                seeds=len(group),
                device=device,
                on_eval=lambda step, returns: seen.append((step, returns)),
                init_from=init_from,
                progress=progress,
            )
        except Diverged as exc:
            k = group.index(exc.seed)
            parts.append(diverged_seed(config, exc, k, seen, time.perf_counter() - start, episodes))
            rest = [part for part in (group[:k], group[k + 1 :]) if part]
            groups += rest
            if progress:  # a worker's output would be lost: its parent reports the count
                print(
                    f"  seed {exc.seed} diverged at env step {exc.step:,}"
                    + (f"; training its run's other {len(group) - 1} seed(s) again" if rest else "")
                )
            continue
        parts.append(Retrained(result, play(result.kept, config.env, episodes), {}))
    return merge(parts)


def diverged_seed(
    config: DQNConfig,
    exc: Diverged,
    k: int,
    evals: list[tuple[int, np.ndarray]],
    seconds: float,
    episodes: int,
) -> Retrained:
    """Seed k of a run that diverged (exc): its network as it was found, its curve until then
    (the run's `evals`), and the greedy episodes of that network. Whatever config.keep_weights
    says, that network is the one kept: a seed that diverged counts as unsolved."""
    network = BatchedQNetwork.gather([(exc.network, k)])
    with np.errstate(all="ignore"):  # non-finite weights
        returns = play(network, config.env, episodes)
    result = TrainResult(
        config=config.replace(seed=exc.seed),
        seeds=[exc.seed],
        eval_steps=[step for step, _ in evals],
        eval_returns=np.array([r[k] for _, r in evals]).reshape(len(evals), 1),
        env_steps=exc.step,
        gradient_steps=0,
        wall_seconds=seconds,
        stopped_early=True,
        network=network,
        best_network=network,
        best_steps=[exc.step],
    )
    return Retrained(result, returns, {exc.seed: exc.step})


def merge(parts: list[Retrained]) -> Retrained:
    """The seeds of several runs of one config as one, in seed order: a curve where a run has
    no evaluation (after its seed diverged) is nan; the seconds are every run's together."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda p: p.result.seeds[0])
    runs = [p.result for p in parts]
    steps = sorted(set().union(*(r.eval_steps for r in runs)))
    columns = []
    for r in runs:
        row = {t: i for i, t in enumerate(r.eval_steps)}
        for k in range(len(r.seeds)):
            columns.append([r.eval_returns[row[t], k] if t in row else np.nan for t in steps])
    result = TrainResult(
        config=runs[0].config,
        seeds=[s for r in runs for s in r.seeds],
        eval_steps=steps,
        eval_returns=np.array(columns).T.reshape(len(steps), len(columns)),
        env_steps=max(r.env_steps for r in runs),
        gradient_steps=max(r.gradient_steps for r in runs),
        wall_seconds=sum(r.wall_seconds for r in runs),
        stopped_early=False,
        network=BatchedQNetwork.gather([(r.network, k) for r in runs for k in range(len(r.seeds))]),
        best_network=BatchedQNetwork.gather(
            [(r.best_network, k) for r in runs for k in range(len(r.seeds))]
        ),
        best_steps=[step for r in runs for step in r.best_steps],
        rechecked=None
        if any(r.rechecked is None for r in runs)
        else [x for r in runs for x in r.rechecked],
    )
    returns = np.vstack([p.returns for p in parts])
    return Retrained(result, returns, {s: t for p in parts for s, t in p.diverged.items()})


def play(network: BatchedQNetwork, env_id: str, episodes: int) -> np.ndarray:
    """evaluate(), or an empty [K, 0] array for no episodes."""
    return evaluate(network, env_id, episodes) if episodes else np.empty((network.k, 0))


def save_checkpoints(
    result: TrainResult, out_dir: str | Path, skip: set[int] = frozenset()
) -> list[Path]:
    """One file per seed but those in `skip`, `seed-<seed>.pt`: that seed's kept weights
    (TrainResult.kept), the env step they are from, and the full config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, seed in enumerate(result.seeds):
        if seed in skip:
            continue
        path = out / f"seed-{seed}.pt"
        torch.save(
            {
                "config": result.config.to_dict(),
                "seed": seed,
                "step": result.kept_steps[k],
                "weights": result.kept.seed_state(k),
            },
            path,
        )
        paths.append(path)
    return paths


def load_checkpoint(path: str | Path) -> tuple[DQNConfig, dict[str, torch.Tensor]]:
    """A checkpoint's config and weights, loaded with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise TunerError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return DQNConfig.from_dict(data["config"], source=str(path)), data["weights"]
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, EOFError):
        raise TunerError(
            f"{path}: not a tuner checkpoint (expected a file saved by tuner.train)"
        ) from None
