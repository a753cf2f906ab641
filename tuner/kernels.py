"""Loops compiled by numba: the replay buffer's rows, n-step columns, draws, batch gather and
priorities, a CPU gradient step's TD targets and loss gradient, and CartPole's physics.

Each of these is a few dozen numpy or torch calls when written with arrays, and on arrays this
small (K seeds x a batch of 64) every call costs a few microseconds whatever it computes: a
compiled loop does the same work in one call. The replay loops run on the buffer's own memory
(numpy views of its CPU tensors); device buffers use the torch code in tuner.replay instead, and
the tests check that both give the same rows, draws and weights. The CartPole loop serves
tuner.envs.CartPoleBatch on every device (envs live on the CPU).

Compiled on first use and cached beside this file (`cache=True`), so a new process loads them in
well under a second.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def fill_n_step(data, first, last, n, d, powers):  # pragma: no cover - compiled
    """n-step columns of stream rows first..last of data [K, rows, E, columns] (ring row r %
    rows): the discounted reward sum up to and including the first episode end in the window,
    its discount (gamma ** steps, times 0 where that step terminated) and the observation the
    target bootstraps from. The reward terms are added in the order numpy's sum adds them."""
    k_seeds, rows, e_envs, _ = data.shape
    reward, discount, done = 2 * d + 1, 2 * d + 2, 2 * d + 3
    for r in range(first, last + 1):
        row = r % rows
        for k in range(k_seeds):
            for e in range(e_envs):
                total = np.float32(0.0)
                steps = 0
                for j in range(n):
                    at = (r + j) % rows
                    total += data[k, at, e, reward] * powers[j]
                    steps = j + 1
                    if data[k, at, e, done] != 0.0:
                        break
                end = (r + steps - 1) % rows
                data[k, row, e, 2 * d + 4] = total
                data[k, row, e, 2 * d + 5] = powers[steps - 1] * data[k, end, e, discount]
                for i in range(d):
                    data[k, row, e, 2 * d + 6 + i] = data[k, end, e, d + i]


@njit(cache=True, nogil=True)
def _set_leaf(sums, mins, i, p):  # pragma: no cover - compiled
    """Node i of one seed's trees (a leaf) gets priority p; then every node above it."""
    sums[i] = p
    mins[i] = p if p > 0.0 else np.inf
    i //= 2
    while i >= 1:
        sums[i] = sums[2 * i] + sums[2 * i + 1]
        mins[i] = min(mins[2 * i], mins[2 * i + 1])
        i //= 2


@njit(cache=True, nogil=True)
def set_priorities(sums, mins, idx, p):  # pragma: no cover - compiled
    """Leaf idx[k, j] of seed k's trees gets priority p[k, j]; the sums and minima above it
    are recomputed from their children (never adjusted by a difference, so no error builds up).

    sums, mins: [K, 2L], a complete binary tree per seed with its root at 1, node i's children at
    2i and 2i + 1 and slot s at leaf L + s. A priority of 0 marks a slot that cannot be drawn
    (nothing stored yet, or its n-step window incomplete): it adds nothing to the sums and is
    +inf to the minima."""
    leaves = sums.shape[1] // 2
    for k in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            _set_leaf(sums[k], mins[k], idx[k, j] + leaves, p[k, j])


@njit(cache=True, nogil=True)
def draw_proportional(sums, mins, u, beta, idx, weights):  # pragma: no cover - compiled
    """For u [K, m] in [0, 1): the slot whose share of the running sum of priorities holds
    u * total (slot i with probability p_i / sum(p)) into idx [K, m], and its importance weight
    (p_i / p_min) ** -beta, the largest possible weight being 1, into weights [K, m].

    Ties go right, as searchsorted(..., right=True) over the running sum breaks them. Where
    rounding carries the search past the last slot with any priority, it stays on that slot."""
    leaves = sums.shape[1] // 2
    for k in range(u.shape[0]):
        p_min = mins[k, 1]
        for j in range(u.shape[1]):
            x = u[k, j] * sums[k, 1]
            i = 1
            while i < leaves:
                left = sums[k, 2 * i]
                if x < left or sums[k, 2 * i + 1] <= 0.0:
                    i = 2 * i
                else:
                    x -= left
                    i = 2 * i + 1
            idx[k, j] = i - leaves
            weights[k, j] = (sums[k, i] / p_min) ** -beta


@njit(cache=True, nogil=True)
def set_td_priorities(sums, mins, max_priority, idx, td, eps, alpha):  # pragma: no cover
    """Prioritized replay's update after a gradient step, as set_priorities: slot idx[k, j] of
    seed k gets priority (|td[k, j]| + eps) ** alpha (td float32, the rest float64), and
    max_priority[k, 0] becomes the largest |td| + eps seen."""
    leaves = sums.shape[1] // 2
    for k in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            p = np.float64(abs(td[k, j])) + eps
            if p > max_priority[k, 0] or np.isnan(p):  # NaN spreads, as np.maximum spreads it
                max_priority[k, 0] = p
            _set_leaf(sums[k], mins[k], idx[k, j] + leaves, p**alpha)


@njit(cache=True, nogil=True)
def draw_uniform(u, oldest, n, slots, idx):  # pragma: no cover - compiled
    """For u [K, m] in [0, 1): one of the n sampleable slots from `oldest` on (ring of `slots`),
    each with probability 1 / n, into idx [K, m]."""
    for k in range(u.shape[0]):
        for j in range(u.shape[1]):
            i = np.int64(u[k, j] * n)
            idx[k, j] = (oldest + min(i, n - 1)) % slots


@njit(cache=True, nogil=True)
def gather_rows(
    data, idx, d, cols, obs, actions, returns, next_obs, discounts
):  # pragma: no cover - compiled
    """The transitions in slots idx [K, count * B] of data [K, slots, columns] into [count, K, B]
    outputs (obs and next_obs [count, K, B, d]): columns 0..d-1, the action (column 2d, as
    int64), and the (return, bootstrap observation, discount) columns `cols` names."""
    count, k_seeds, b_size = actions.shape
    ret, nxt, disc = cols
    for k in range(k_seeds):
        for c in range(count):
            for b in range(b_size):
                s = idx[k, c * b_size + b]
                for i in range(d):
                    obs[c, k, b, i] = data[k, s, i]
                    next_obs[c, k, b, i] = data[k, s, nxt + i]
                actions[c, k, b] = np.int64(data[k, s, 2 * d])
                returns[c, k, b] = data[k, s, ret]
                discounts[c, k, b] = data[k, s, disc]


@njit(cache=True, nogil=True)
def paired_td(
    q_both, online_next, actions, returns, discounts, weights, huber, td, grad_q
):  # pragma: no cover - compiled
    """A CPU gradient step's TD targets, TD errors and d loss / d Q in one call, operation for
    operation as tuner.dqn's td_targets and gradient_step work them out with torch (so to the
    bit). q_both [2K, B, A]: the online network's Q-values at s, then the target network's at
    s'; online_next [K, B, A] the online network's at s' with Double DQN, else [0, B, A];
    weights [K, B], or [K, 0] without importance weights. Each seed as td_row."""
    k_seeds = td.shape[0]
    for k in range(k_seeds):
        q_next = q_both[k_seeds + k]
        pick = online_next[k] if online_next.shape[0] else q_next
        td_row(
            q_both[k],
            q_next,
            pick,
            actions[k],
            returns[k],
            discounts[k],
            weights[k],
            huber,
            td[k],
            grad_q[k],
        )


@njit(cache=True, nogil=True)
def td_row(
    q, q_next, pick, actions, returns, discounts, weights, huber, td, grad_q
):  # pragma: no cover - compiled
    """One seed's TD errors td [B] and d loss / d Q grad_q [B, A] from its Q-values q [B, A] at
    s: target = return + discount * q_next(s', a*), a* the argmax of `pick` at s' (q_next, or
    the online network's with Double DQN): the first of equal values, a NaN counting as the
    largest, as torch's argmax and max take them. td = Q(s, action) - target; grad_q is zero
    but at the action, where it is td clamped to [-1, 1] and divided by B (huber) or td times
    2 / B (mse), times the importance weight where `weights` [B] is not empty."""
    b_size, n_actions = q.shape
    size, scale = np.float32(b_size), np.float32(2.0 / b_size)
    for b in range(b_size):
        best = 0
        for i in range(1, n_actions):
            if pick[b, i] > pick[b, best] or (np.isnan(pick[b, i]) and not np.isnan(pick[b, best])):
                best = i
        target = returns[b] + discounts[b] * q_next[b, best]
        a = actions[b]
        d = q[b, a] - target
        td[b] = d
        if huber:
            if d > 1.0:
                d = np.float32(1.0)
            elif d < -1.0:
                d = np.float32(-1.0)
            d = d / size
        else:
            d = d * scale
        if weights.shape[0]:
            d = d * weights[b]
        for i in range(n_actions):
            grad_q[b, i] = 0.0
        grad_q[b, a] = d


@njit(cache=True, nogil=True)
def cartpole_step(state, cos, sin, actions, physics, after, terminated):  # pragma: no cover
    """CartPoleEnv.step's arithmetic for N envs, operation for operation in gymnasium's order.

    state, after: [4, N] float64 (x, x_dot, theta, theta_dot); cos, sin: [N] of theta, worked
    out by numpy as gymnasium does (numba's own would call another library); actions: [N] in
    {0, 1}; physics: force_mag, polemass_length, total_mass, gravity, length, masspole, tau,
    euler (1.0 or 0.0), x_threshold, theta_threshold. Writes after and terminated [N]."""
    force_mag, polemass_length, total_mass, gravity = physics[0], physics[1], physics[2], physics[3]
    length, masspole, tau, euler = physics[4], physics[5], physics[6], physics[7]
    x_threshold, theta_threshold = physics[8], physics[9]
    for i in range(state.shape[1]):
        x, x_dot, theta, theta_dot = state[0, i], state[1, i], state[2, i], state[3, i]
        force = force_mag if actions[i] == 1 else -force_mag
        costheta, sintheta = cos[i], sin[i]
        temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass
        thetaacc = (gravity * sintheta - costheta * temp) / (
            length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        if euler != 0.0:
            x = x + tau * x_dot
            x_dot = x_dot + tau * xacc
            theta = theta + tau * theta_dot
            theta_dot = theta_dot + tau * thetaacc
        else:  # semi-implicit Euler
            x_dot = x_dot + tau * xacc
            x = x + tau * x_dot
            theta_dot = theta_dot + tau * thetaacc
            theta = theta + tau * theta_dot
        after[0, i], after[1, i], after[2, i], after[3, i] = x, x_dot, theta, theta_dot
        terminated[i] = (
            x < -x_threshold
            or x > x_threshold
            or theta < -theta_threshold
            or theta > theta_threshold
        )


@njit(cache=True, nogil=True)
def cartpole_train_step(
    state, cos, sin, actions, physics, elapsed, max_steps, after, obs, terminated, done
):  # pragma: no cover - compiled
    """cartpole_step for training envs, plus the rest of a step in the same call: each env's
    step count (elapsed [N], int64) goes up by one, done [N] is terminated or elapsed >=
    max_steps (the time limit), and obs [N, 4] float32 is `after` as the env returns it. Returns
    whether any env is done (those the caller resets)."""
    cartpole_step(state, cos, sin, actions, physics, after, terminated)
    any_done = False
    for i in range(state.shape[1]):
        elapsed[i] += 1
        done[i] = terminated[i] or elapsed[i] >= max_steps
        any_done |= done[i]
        for j in range(4):
            obs[i, j] = np.float32(after[j, i])
    return any_done


@njit(cache=True, nogil=True)
def store_rows(
    rows, obs, next_obs, actions, rewards, terminated, done, gamma
):  # pragma: no cover - compiled
    """One vector step into replay rows [K, E, >= 2D + 4] (float32): obs, next_obs, action,
    reward, gamma * (1 - terminated) and done, each cast to float32 as numpy's assignment casts
    it."""
    k_seeds, e_envs, d = obs.shape
    for k in range(k_seeds):
        for e in range(e_envs):
            for j in range(d):
                rows[k, e, j] = obs[k, e, j]
                rows[k, e, d + j] = next_obs[k, e, j]
            rows[k, e, 2 * d] = np.float32(actions[k, e])
            rows[k, e, 2 * d + 1] = np.float32(rewards[k, e])
            rows[k, e, 2 * d + 2] = np.float32(0.0 if terminated[k, e] else gamma)
            rows[k, e, 2 * d + 3] = np.float32(1.0 if done[k, e] else 0.0)
