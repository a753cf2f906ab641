"""Replay for K seeds at once: a preallocated ring buffer with n-step returns and proportional PER.

Each seed owns a slice [k] of one tensor [K, slots, columns]; its E envs write E consecutive
slots per vector step, so env e's stream is slots e, e + E, e + 2E, ... and an n-step lookahead
is a fixed stride. n-step returns sum rewards until the first episode end (termination or
truncation), and the target bootstraps from the next observation reached there, unless that step
terminated. They are worked out once per slot, for every slot whose n-step window has filled since
the last sample, and stored in three more columns; a sample then reads a slot's row as it would
for 1-step returns.
On the CPU the n-step columns, prioritized replay (a sum tree per seed), the draws and the
gather of a batch are compiled loops (tuner.kernels); device buffers do the same with torch array
operations.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from tuner import kernels


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
    pairs: torch.Tensor | None = None
    """[count, 2K, batch, obs_dim]: obs then next_obs of every seed, one tensor whose halves are
    `obs` and `next_obs` (CPU buffers; None on a device), which one forward of the online and
    target networks together reads."""


class HostBatch(NamedTuple):
    """One batch per seed from a CPU buffer, in numpy arrays (ReplayBuffer.draw_host)."""

    pairs: np.ndarray
    """[2K, B, D]: every seed's observations, then every seed's next observations."""
    actions: np.ndarray
    returns: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray | None
    indices: np.ndarray
    """[K, B] slots, for update_priorities_host."""


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
    """Columns per slot: obs, next_obs, action, reward, gamma * (1 - terminated), done; with
    n-step returns also the n-step return, its discount and the observation it bootstraps from."""

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
        numpy_paths: bool | None = None,
    ) -> None:
        """numpy_paths: store, fill n-step columns, gather and prioritize with numpy and the
        compiled loops of tuner.kernels on the buffer's own memory (the default on the CPU, where
        a torch call costs several times a numpy call); False takes the torch code that device
        buffers run (tests compare the two)."""
        self.k, self.e, self.d = len(seeds), envs_per_seed, obs_dim
        self.rows = max(math.ceil(capacity / envs_per_seed), n_step + 1)  # vector steps held
        self.slots = self.rows * envs_per_seed
        self.n_step, self.gamma = n_step, gamma
        self.device = torch.device(device)
        d = obs_dim
        # the columns a transition is read from: (return, bootstrap obs, discount)
        self.cols = (2 * d + 1, d, 2 * d + 2) if n_step == 1 else (2 * d + 4, 2 * d + 6, 2 * d + 5)
        width = 2 * d + 4 if n_step == 1 else 3 * d + 6
        self.data = torch.zeros(self.k, self.slots, width, device=self.device)
        if numpy_paths is None:
            numpy_paths = self.device.type == "cpu"
        self.host = self.data.numpy() if numpy_paths else None  # the same memory
        self.staging: torch.Tensor | None = None
        if self.host is None:
            # add() writes rows to host memory and `flush` sends them over in one copy when the
            # buffer is next read: a copy to a GPU per env step cost more than the step
            pin = self.device.type == "cuda"
            self.staging = torch.zeros(self.k, self.slots, 2 * d + 4, pin_memory=pin)
            self.staged = self.staging.numpy()  # the same memory
            self.flushed = 0  # stream rows below this one are on the device
        self.pos = 0  # next row to write
        self.size = 0  # rows held, at most self.rows
        self.written = 0  # rows ever written: row r of the stream lives in ring row r % self.rows
        self.windows_done = 0  # stream rows below this one have their n-step columns filled in
        self.gamma_powers = gamma ** torch.arange(n_step, dtype=torch.float32, device=self.device)
        self.uniforms = SeedUniforms(seeds, stream=3, width=1)
        self.seed_offsets = torch.arange(self.k, device=self.device)[:, None] * self.slots
        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        if prioritized and self.host is not None:
            self._init_trees()
        elif prioritized:
            self.priority = torch.zeros(self.k, self.slots, dtype=torch.float64, device=self.device)
            self.max_priority = torch.ones(self.k, 1, dtype=torch.float64, device=self.device)

    def _init_trees(self) -> None:
        """The CPU's prioritized replay: a sum tree and a min tree per seed (tuner.kernels), so a
        draw or an update costs O(log slots) in one compiled call, where the torch path takes a
        cumulative sum over every slot at every draw.

        A slot's priority enters the trees when its n-step window completes, not when it is
        stored: until then the priority it was given (the highest seen so far, as on the torch
        path) waits in `pending`. The trees thus hold only slots a draw may return.
        """
        leaves = 1 << max(self.slots - 1, 1).bit_length()
        self.sums = np.zeros((self.k, 2 * leaves))
        self.mins = np.full((self.k, 2 * leaves), np.inf)
        self.priority = torch.from_numpy(self.sums)[:, leaves : leaves + self.slots]  # a view
        self.pending = np.zeros((self.k, self.n_step, self.e))
        self.max_priority = np.ones((self.k, 1))
        self.env_slots = np.tile(np.arange(self.e), (self.k, 1))
        self.no_priority = np.zeros((self.k, self.e))

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
        start = self.pos * self.e
        # straight into the buffer's memory on the CPU, else into the staging rows
        memory = self.host if self.host is not None else self.staged
        kernels.store_rows(
            memory[:, start : start + self.e],
            obs,
            next_obs,
            actions,
            rewards,
            terminated,
            done,
            self.gamma,
        )
        if self.prioritized and self.host is not None:
            self._add_priorities(start)
        self.pos = (self.pos + 1) % self.rows
        self.size = min(self.size + 1, self.rows)
        self.written += 1

    def _add_priorities(self, start: int) -> None:
        """add() on the CPU: the slots just overwritten leave the trees, their new priority
        waits, and the slots whose n-step window this step completed enter the trees."""
        n = self.n_step
        self.pending[:, self.written % n] = self.max_priority**self.alpha
        if n > 1:
            kernels.set_priorities(self.sums, self.mins, start + self.env_slots, self.no_priority)
        ready = self.written - (n - 1)  # the stream row whose window this step completes
        if ready >= 0:
            at = ready % self.rows * self.e
            kernels.set_priorities(
                self.sums, self.mins, at + self.env_slots, self.pending[:, ready % n]
            )

    def flush(self) -> None:
        """A device buffer: send the rows add() staged since the last flush to the device, and
        give them the highest priority seen (as the CPU's buffer does when it stores them; that
        priority changes only in update_priorities, which flushes first). Every read of the
        buffer flushes first; nothing to do on the CPU."""
        if self.staging is None or self.flushed == self.written:
            return
        first = max(self.flushed, self.written - self.rows)  # older staged rows are overwritten
        start, count = first % self.rows, self.written - first
        width = self.staging.shape[-1]
        for a, b in ((start, min(start + count, self.rows)), (0, start + count - self.rows)):
            if b > a:  # the ring's rows a..b-1, as slots
                slots = slice(a * self.e, b * self.e)
                self.data[:, slots, :width].copy_(self.staging[:, slots])
                if self.prioritized:
                    self.priority[:, slots] = self.max_priority**self.alpha
        self.flushed = self.written

    @property
    def sampleable(self) -> int:
        """Slots whose whole n-step lookahead is already stored (the newest n-1 rows are not)."""
        return max(self.size - (self.n_step - 1), 0) * self.e

    def sample(self, batch_size: int, count: int = 1, beta: float = 0.4) -> Batch:
        """`count` independent batches per seed, drawn with each seed's own randomness."""
        drawn, n, oldest = self._uniform_draws(count * batch_size)
        if self.host is not None:
            return self._sample_host(drawn, count, batch_size, n, oldest, beta)
        u = drawn.reshape(self.k, count, batch_size).transpose(1, 0, 2)  # [count, K, B]
        if self.prioritized:
            idx, weights = self._sample_prioritized(
                torch.from_numpy(u).to(self.device), n, oldest, beta
            )
        else:
            idx, weights = (oldest + np.minimum((u * n).astype(np.int64), n - 1)) % self.slots, None
            idx = torch.as_tensor(idx, device=self.device)
        return Batch(*self.transitions(idx), weights, idx)

    def _uniform_draws(self, rows: int) -> tuple[np.ndarray, int, int]:
        """A draw's uniform numbers [K, rows], the slots it may return (sampleable) and the
        oldest slot held; a device buffer's staged rows are sent over first."""
        n = self.sampleable
        if n == 0:
            raise ValueError("the replay buffer holds no complete transition yet")
        self.flush()
        return self.uniforms.next(rows)[..., 0], n, (self.pos - self.size) % self.rows * self.e

    def _sample_host(
        self, drawn: np.ndarray, count: int, batch_size: int, n: int, oldest: int, beta: float
    ) -> Batch:
        """sample() on the CPU: the arrays of draw_host as tensors (the same memory)."""
        k, b = self.k, batch_size
        o, actions, returns, discounts, weights, idx = self._draw_host(
            drawn, count, batch_size, n, oldest, beta
        )
        if weights is not None:
            weights = torch.from_numpy(weights).view(k, count, b).transpose(0, 1)
        pairs, actions, returns, discounts = map(torch.from_numpy, (o, actions, returns, discounts))
        indices = torch.from_numpy(idx).view(k, count, b).transpose(0, 1)
        obs, next_obs = pairs[:, 0], pairs[:, 1]
        pairs = pairs.view(count, 2 * k, b, self.d)
        return Batch(obs, actions, returns, next_obs, discounts, weights, indices, pairs)

    def draw_host(self, batch_size: int, beta: float = 0.4) -> HostBatch:
        """One batch per seed, as sample(batch_size, 1, beta) draws it from a CPU buffer, in
        numpy arrays: what tuner.dqn's compiled step reads, without the dozen torch calls that
        would wrap them as tensors (a third of a small network's update)."""
        drawn, n, oldest = self._uniform_draws(batch_size)
        o, actions, returns, discounts, weights, idx = self._draw_host(
            drawn, 1, batch_size, n, oldest, beta
        )
        return HostBatch(
            o[0].reshape(2 * self.k, batch_size, self.d),
            actions[0],
            returns[0],
            discounts[0],
            weights,
            idx,
        )

    def _draw_host(
        self, drawn: np.ndarray, count: int, batch_size: int, n: int, oldest: int, beta: float
    ) -> tuple[np.ndarray, ...]:
        """The draws, then every field gathered by one compiled call into new arrays (a dozen
        numpy calls otherwise, each costing more than its work here): obs and next obs of batch
        j as [count, 2, K, B, D]; actions, returns and discounts [count, K, B]; weights (None
        for uniform replay) and slots [K, count * B]."""
        k, b, d = self.k, batch_size, self.d
        self._fill_n_step_columns()
        idx = np.empty(drawn.shape, dtype=np.int64)  # [K, count * B]
        weights = None
        if self.prioritized:
            weights = np.empty(drawn.shape, dtype=np.float32)
            kernels.draw_proportional(self.sums, self.mins, drawn, beta, idx, weights)
        else:
            kernels.draw_uniform(drawn, oldest, n, self.slots, idx)
        # numpy allocates in a third of the time torch.empty takes at these sizes
        o = np.empty((count, 2, k, b, d), np.float32)
        actions, returns, discounts = (
            np.empty((count, k, b), t) for t in (np.int64, np.float32, np.float32)
        )
        kernels.gather_rows(
            self.host, idx, d, self.cols, o[:, 0], actions, returns, o[:, 1], discounts
        )
        return o, actions, returns, discounts, weights, idx

    def transitions(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(obs, actions, returns, next_obs, discounts) of slots idx [..., K, B], n-step included:
        the torch path (device buffers; on the CPU, tests check sample() against it)."""
        self.flush()
        self._fill_n_step_columns()
        d, (ret, nxt, disc) = self.d, self.cols
        rows = self._gather(torch.as_tensor(idx, device=self.device))
        actions = rows[..., 2 * d].long()
        return rows[..., :d], actions, rows[..., ret], rows[..., nxt : nxt + d], rows[..., disc]

    def _fill_n_step_columns(self) -> None:
        """Work out the n-step columns of every row whose n-step window has filled since the
        last call: m rows at once, from the m + n - 1 rows their windows cover."""
        n, d = self.n_step, self.d
        last = self.written - n  # the newest row with a complete window
        first = max(self.windows_done, self.written - self.size)  # older rows were overwritten
        if n == 1 or last < first:
            return
        if self.host is not None:
            view = self.host.reshape(self.k, self.rows, self.e, -1)
            kernels.fill_n_step(view, first, last, n, d, self.gamma_powers.numpy())
        else:
            m = last - first + 1
            ring = (first + np.arange(m + n - 1)) % self.rows
            targets = ring[:m]
            view = self.data.view(self.k, self.rows, self.e, -1)
            rows = view.index_select(1, torch.as_tensor(ring, device=self.device))
            window = rows.unfold(1, n, 1)  # [K, m, E, columns, n]
            done = window[..., 2 * d + 3, :]
            alive = torch.cumprod(
                torch.cat([torch.ones_like(done[..., :1]), 1.0 - done[..., :-1]], -1), -1
            )
            returns = (window[..., 2 * d + 1, :] * alive * self.gamma_powers).sum(-1)
            steps = alive.sum(-1).long()
            index = (steps - 1)[..., None, None].expand(*steps.shape, window.shape[-2], 1)
            end = window.gather(-1, index)[..., 0]
            columns = torch.cat(
                [
                    returns[..., None],
                    (self.gamma_powers[steps - 1] * end[..., 2 * d + 2])[..., None],
                    end[..., d : 2 * d],
                ],
                -1,
            )
            view[:, torch.as_tensor(targets, device=self.device), :, 2 * d + 4 :] = columns
        self.windows_done = last + 1

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        """indices, td_errors: [K, B], slots the last sample drew. Priority = (|td| + eps) ** alpha."""
        if self.host is not None:
            self.update_priorities_host(indices.numpy(), td_errors.numpy())
            return
        self.flush()
        p = td_errors.abs().double() + self.eps
        # a slot drawn twice in one batch gets the priority of its last draw, as on the CPU: a
        # CUDA scatter keeps an arbitrary one of duplicate writes (seen on an H200: draws drifted
        # from the CPU's within a few updates), so every duplicate writes that same value
        b = indices.shape[1]
        same = indices[:, :, None] == indices[:, None, :]  # [K, B, B], a batch is small
        last = torch.where(same, torch.arange(b, device=self.device), -1).amax(-1)
        self.priority.scatter_(1, indices, (p**self.alpha).gather(1, last))
        self.max_priority = torch.maximum(self.max_priority, p.max(1, keepdim=True).values)

    def update_priorities_host(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """update_priorities on a CPU buffer, from numpy arrays."""
        kernels.set_td_priorities(
            self.sums, self.mins, self.max_priority, indices, td_errors, self.eps, self.alpha
        )

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows of seed-local slots idx [..., K, B]."""
        flat = (idx + self.seed_offsets).reshape(-1)
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
