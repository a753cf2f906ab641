"""Replay for K seeds at once: a preallocated ring buffer with n-step returns and proportional PER.

Each seed owns a slice [k] of one tensor [K, slots, columns]; its E envs write E consecutive
slots per vector step, so env e's stream is slots e, e + E, e + 2E, ... and an n-step lookahead
is a fixed stride. n-step returns are computed when sampling: rewards are summed until the first
episode end (termination or truncation) and the target bootstraps from the next observation
reached there, unless that step terminated.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """`count` batches for K seeds: every field is [count, K, batch, ...]."""

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor
    """Discounted sum of the rewards before bootstrapping (one reward when n_step is 1)."""
    next_obs: torch.Tensor
    """The observation the target bootstraps from."""
    discounts: torch.Tensor
    """gamma ** steps_summed, or 0 when the last summed step terminated the episode."""
    weights: torch.Tensor | None
    """Importance-sampling weights; None for uniform replay."""
    indices: torch.Tensor


class SeedUniforms:
    """Uniform [0, 1) numbers where row k comes from seed k's own generator alone.

    Drawn in chunks so the hot path slices an array instead of calling K generators.
    """

    def __init__(self, seeds: list[int], stream: int, width: int, chunk: int = 1024) -> None:
        self.gens = [np.random.default_rng([seed, stream]) for seed in seeds]
        self.width, self.chunk = width, chunk
        self.buf = np.empty((len(seeds), 0, width))
        self.pos = 0

    def next(self, rows: int = 1) -> np.ndarray:
        """[K, rows, width]."""
        if self.pos + rows > self.buf.shape[1]:
            n = max(self.chunk, rows)
            self.buf = np.stack([g.random((n, self.width)) for g in self.gens])
            self.pos = 0
        self.pos += rows
        return self.buf[:, self.pos - rows : self.pos]


class ReplayBuffer:
    """Columns per slot: obs, next_obs, action, reward, gamma * (1 - terminated), done."""

    def __init__(
        self,
        *,
        seeds: list[int],
        envs_per_seed: int,
        capacity: int,
        obs_dim: int,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.6,
        eps: float = 1e-6,
        device: torch.device | str = "cpu",
    ) -> None:
        self.k, self.e, self.d = len(seeds), envs_per_seed, obs_dim
        self.rows = max(math.ceil(capacity / envs_per_seed), n_step + 1)  # vector steps held
        self.slots = self.rows * envs_per_seed
        self.n_step, self.gamma = n_step, gamma
        self.device = torch.device(device)
        self.data = torch.zeros(self.k, self.slots, 2 * obs_dim + 4, device=self.device)
        self.host = self.data.numpy() if self.device.type == "cpu" else None  # same memory
        self.host_offsets = np.arange(self.k)[:, None] * self.slots
        self.pos = 0  # next row to write
        self.size = 0  # rows written, at most self.rows
        self.gamma_powers = gamma ** torch.arange(n_step, dtype=torch.float32, device=self.device)
        self.uniforms = SeedUniforms(seeds, stream=3, width=1)
        self.seed_offsets = torch.arange(self.k, device=self.device)[:, None] * self.slots
        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        if prioritized:
            self.priority = torch.zeros(self.k, self.slots, dtype=torch.float64, device=self.device)
            self.max_priority = torch.ones(self.k, 1, dtype=torch.float64, device=self.device)

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """One vector step: obs/next_obs [K, E, D], the rest [K, E]. `done` = terminated or truncated."""
        start, d = self.pos * self.e, self.d
        columns = (obs, next_obs, actions, rewards, np.where(terminated, 0.0, self.gamma), done)
        if self.host is not None:  # write straight into the buffer's memory
            rows = self.host[:, start : start + self.e]
            rows[..., :d], rows[..., d : 2 * d] = obs, next_obs
            for c, values in enumerate(columns[2:]):
                rows[..., 2 * d + c] = values
        else:
            row = np.concatenate([obs, next_obs, np.stack(columns[2:], -1)], -1).astype(np.float32)
            self.data[:, start : start + self.e] = torch.from_numpy(row).to(self.device)
        if self.prioritized:
            self.priority[:, start : start + self.e] = self.max_priority**self.alpha
        self.pos = (self.pos + 1) % self.rows
        self.size = min(self.size + 1, self.rows)

    @property
    def sampleable(self) -> int:
        """Slots whose whole n-step lookahead is already stored (the newest n-1 rows are not)."""
        return max(self.size - (self.n_step - 1), 0) * self.e

    def sample(self, batch_size: int, count: int = 1, beta: float = 0.4) -> Batch:
        """`count` independent batches per seed, drawn with each seed's own randomness."""
        n = self.sampleable
        if n == 0:
            raise ValueError("the replay buffer holds no complete transition yet")
        u = self.uniforms.next(count * batch_size)[..., 0].reshape(self.k, count, batch_size)
        u = u.transpose(1, 0, 2)  # [count, K, B]
        oldest = (self.pos - self.size) % self.rows * self.e
        if self.prioritized:
            idx, weights = self._sample_prioritized(
                torch.from_numpy(u).to(self.device), n, oldest, beta
            )
            if self.host is not None:
                idx = idx.numpy()  # the same memory: the CPU path gathers with numpy
        else:
            idx, weights = (oldest + np.minimum((u * n).astype(np.int64), n - 1)) % self.slots, None
        indices = torch.as_tensor(idx, device=self.device)
        return Batch(*self.transitions(idx if self.host is not None else indices), weights, indices)

    def transitions(self, idx: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, ...]:
        """(obs, actions, returns, next_obs, discounts) of slots idx [..., K, B], n-step included.

        idx may be a numpy array when the buffer is on the CPU.
        """
        d = self.d
        if self.host is not None and isinstance(idx, np.ndarray):
            return self._host_transitions(idx)
        idx = torch.as_tensor(idx, device=self.device)
        rows = self._gather(idx)
        obs, actions = rows[..., :d], rows[..., 2 * d].long()
        if self.n_step == 1:
            return obs, actions, rows[..., 2 * d + 1], rows[..., d : 2 * d], rows[..., 2 * d + 2]
        ahead = (
            idx[..., None] + self.e * torch.arange(self.n_step, device=self.device)
        ) % self.slots
        window = self._gather(ahead, trailing=1)  # [..., K, B, n, columns]
        done = window[..., 2 * d + 3]
        # step j counts while no earlier step in the window ended the episode
        alive = torch.cumprod(
            torch.cat([torch.ones_like(done[..., :1]), 1.0 - done[..., :-1]], -1), -1
        )
        returns = (window[..., 2 * d + 1] * alive * self.gamma_powers).sum(-1)
        steps = alive.sum(-1).long()
        last = window.gather(
            -2, (steps - 1)[..., None, None].expand(*steps.shape, 1, window.shape[-1])
        )
        last = last.squeeze(-2)
        return (
            obs,
            actions,
            returns,
            last[..., d : 2 * d],
            self.gamma_powers[steps - 1] * last[..., 2 * d + 2],
        )

    def _host_transitions(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        """`transitions` for a CPU buffer: numpy's indexing and arithmetic cost a fraction of
        torch's per-op overhead on arrays this small. The same steps as the tensor path."""
        d, flat = self.d, self.host.reshape(-1, self.host.shape[-1])
        if self.n_step == 1:
            rows = flat[idx + self.host_offsets]
            return (
                torch.from_numpy(rows[..., :d]),
                torch.from_numpy(rows[..., 2 * d].astype(np.int64)),
                torch.from_numpy(rows[..., 2 * d + 1]),
                torch.from_numpy(rows[..., d : 2 * d]),
                torch.from_numpy(rows[..., 2 * d + 2]),
            )
        ahead = (idx[..., None] + self.e * np.arange(self.n_step)) % self.slots
        window = flat[ahead + self.host_offsets[..., None]]  # [..., K, B, n, columns]
        done = window[..., 2 * d + 3]
        alive = np.ones_like(done)  # step j counts while no earlier step ended the episode
        np.cumprod(1.0 - done[..., :-1], -1, out=alive[..., 1:])
        powers = self.gamma_powers.numpy()
        returns = (window[..., 2 * d + 1] * alive * powers).sum(-1)
        steps = alive.sum(-1).astype(np.int64)
        last = np.take_along_axis(window, (steps - 1)[..., None, None], -2)[..., 0, :]
        return (
            torch.from_numpy(window[..., 0, :d]),
            torch.from_numpy(window[..., 0, 2 * d].astype(np.int64)),
            torch.from_numpy(returns),
            torch.from_numpy(last[..., d : 2 * d]),
            torch.from_numpy(powers[steps - 1] * last[..., 2 * d + 2]),
        )

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        """indices, td_errors: [K, B]. Priority = (|td| + eps) ** alpha."""
        p = td_errors.abs().double() + self.eps
        self.priority.scatter_(1, indices, p**self.alpha)
        self.max_priority = torch.maximum(self.max_priority, p.max(1, keepdim=True).values)

    def _gather(self, idx: torch.Tensor, trailing: int = 0) -> torch.Tensor:
        """Rows of seed-local slots idx [..., K, B, *trailing dims]."""
        offsets = self.seed_offsets.view(self.k, 1, *[1] * trailing)
        flat = (idx + offsets).reshape(-1)
        return self.data.view(-1, self.data.shape[-1]).index_select(0, flat).view(*idx.shape, -1)

    def _sample_prioritized(
        self, u: torch.Tensor, n: int, oldest: int, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """u [count, K, B] -> slots drawn with probability p_i / sum(p), and their weights."""
        filled = self.size * self.e
        p = self.priority[:, :filled]  # a view: the slots past `filled` hold nothing yet
        # the newest rows, whose lookahead is incomplete, are left out: they are set to inf for
        # the minimum and to 0 for the cumulative sum in place (a handful of slots), not by
        # copying every priority
        if filled > n:
            hidden = (oldest + n + torch.arange(filled - n, device=self.device)) % self.slots
            saved = p.index_select(1, hidden)
            p.index_fill_(1, hidden, torch.inf)
            p_min = p.amin(1, keepdim=True)
            p.index_fill_(1, hidden, 0.0)
            cdf = torch.cumsum(p, 1)
            p.index_copy_(1, hidden, saved)
        else:
            p_min, cdf = p.amin(1, keepdim=True), torch.cumsum(p, 1)
        total = cdf[:, -1:]
        count, k, b = u.shape
        draws = (u.transpose(0, 1).reshape(k, count * b) * total).contiguous()
        idx = torch.searchsorted(cdf, draws, right=True).clamp_(max=filled - 1)
        # w_i = (n * P(i)) ** -beta, normalised by the largest possible weight (smallest P)
        weights = ((p.gather(1, idx) / p_min) ** -beta).float()
        return (idx.view(k, count, b).transpose(0, 1), weights.view(k, count, b).transpose(0, 1))
