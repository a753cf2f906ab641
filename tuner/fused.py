"""A CPU gradient step in one compiled call: forward, TD targets, backward, clip; then the optimizer
in one more.

On the small networks a tuning study trains (64x64, a batch of 32 or 64, 3 seeds) a step of torch
calls is mostly their dispatch: some 25 calls of 2-5 microseconds each around products that take
2-5 microseconds apiece. Here the step is two numba calls. The matrix products are `np.dot`
compiled by numba, which calls the BLAS scipy ships (OpenBLAS), on one thread (`one_blas_thread`:
so a seed's bits never depend on how many threads a process has); the rest is written out as
loops.

Each seed is worked out in turn from its own rows alone, with the same calls whatever else is in
the batch, so a seed trains to the same bits alone or anywhere in a batch. The arithmetic is
tuner.dqn's torch step's (td_targets, gradient_step, clip_gradients, FlatOptimizer), and tests
compare the two to float precision; not to the bit, since OpenBLAS and torch's MKL sum a
product's terms in different orders.

`layout` [layers, 4] describes a BatchedQNetwork's flat row: per layer (weight offset, fan in,
fan out, bias offset); hidden weights are stored [in, out], the output layer's [out, in].
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

# numba's np.dot calls scipy's BLAS: loaded here, so that one_blas_thread finds it
import scipy.linalg.cython_blas  # noqa: F401
from numba import njit
from threadpoolctl import threadpool_limits

from tuner import kernels

RELU, TANH, ELU = 0, 1, 2
ACTIVATIONS = {"relu": RELU, "tanh": TANH, "elu": ELU}
"""The activations this step supports: each one's derivative is a function of its output."""
OPTIMIZERS = {"adam": 0, "adamw": 1, "rmsprop": 2}
ADAMW, RMSPROP = 1, 2


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the BLAS libraries loaded in this process on one thread inside the block. OpenBLAS
    splits a product of more than 262,144 multiply-adds (a batch of 64 through a 64x64 layer)
    over its threads, which on a study's busy cores cost more than it saved."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def layout(shapes: list[tuple[int, int]]) -> np.ndarray:
    """`layout` for a network of these (fan in, fan out) layers, as BatchedQNetwork lays out."""
    rows, at = [], 0
    for fan_in, fan_out in shapes:
        rows.append((at, fan_in, fan_out, at + fan_in * fan_out))
        at += fan_in * fan_out + fan_out
    return np.array(rows, dtype=np.int64)


@njit(cache=True, nogil=True, error_model="numpy")
def _forward(row, layout, x, act, dueling):  # pragma: no cover - compiled
    """One seed's Q-values [B, A] at x [B, D], and every layer's input (x, then each hidden
    layer's activated output)."""
    n = layout.shape[0]
    inputs = [x]
    for layer in range(n):
        w_at, fan_in, fan_out, b_at = layout[layer]
        w = row[w_at : w_at + fan_in * fan_out]
        if layer == n - 1:
            h = np.dot(x, w.reshape(fan_out, fan_in).T)
        else:
            h = np.dot(x, w.reshape(fan_in, fan_out))
        h += row[b_at : b_at + fan_out]
        if layer < n - 1:
            if act == RELU:
                np.maximum(h, np.float32(0.0), h)
            elif act == TANH:
                np.tanh(h, h)
            else:
                for i in range(h.shape[0]):
                    for j in range(h.shape[1]):
                        if h[i, j] <= 0.0:
                            h[i, j] = np.expm1(h[i, j])
            inputs.append(h)
        x = h
    if not dueling:
        return x, inputs
    # Q = V + A - mean(A)
    b_size, n_actions = x.shape[0], x.shape[1] - 1
    q = np.empty((b_size, n_actions), np.float32)
    for i in range(b_size):
        mean = np.float32(0.0)
        for a in range(n_actions):
            mean += x[i, a + 1]
        mean /= np.float32(n_actions)
        for a in range(n_actions):
            q[i, a] = x[i, 0] + x[i, a + 1] - mean
    return q, inputs


@njit(cache=True, nogil=True, error_model="numpy")
def _backward(row, layout, inputs, grad_out, act, grow):  # pragma: no cover - compiled
    """d loss / d (one seed's row) into grow, from d loss / d (the last layer's output)."""
    n = layout.shape[0]
    g = grad_out
    for layer in range(n - 1, -1, -1):
        w_at, fan_in, fan_out, b_at = layout[layer]
        x = inputs[layer]
        bias = grow[b_at : b_at + fan_out]
        bias[:] = 0.0
        for i in range(g.shape[0]):
            for j in range(fan_out):
                bias[j] += g[i, j]
        w = row[w_at : w_at + fan_in * fan_out]
        dw = grow[w_at : w_at + fan_in * fan_out]
        if layer == n - 1:
            np.dot(g.T, x, dw.reshape(fan_out, fan_in))
        else:
            np.dot(x.T, g, dw.reshape(fan_in, fan_out))
        if layer == 0:
            break
        if layer == n - 1:
            g = np.dot(g, w.reshape(fan_out, fan_in))
        else:
            g = np.dot(g, w.reshape(fan_in, fan_out).T)
        for i in range(g.shape[0]):  # through the activation, from its output x
            for j in range(fan_in):
                if act == RELU:
                    if x[i, j] <= 0.0:
                        g[i, j] = 0.0
                elif act == TANH:
                    g[i, j] *= np.float32(1.0) - x[i, j] * x[i, j]
                elif x[i, j] <= 0.0:
                    g[i, j] *= x[i, j] + np.float32(1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def gradients(
    params,
    layout,
    pairs,
    actions,
    returns,
    discounts,
    weights,
    double_dqn,
    dueling,
    huber,
    act,
    clip_value,
    clip_norm,
    grad,
    td,
):  # pragma: no cover - compiled
    """d loss / d params of K seeds into grad [K, P] (its padding untouched) and their TD errors
    into td [K, B], clipped as tuner.optim.clip_gradients clips.

    params [2K, P]: the online network's rows, then the target network's (BatchedQNetwork `both`
    in tuner.dqn.train); pairs [2K, B, D]: the batch's observations, then its next observations.
    actions, returns, discounts [K, B]; weights [K, B], or [K, 0] without prioritized replay.
    clip_value, clip_norm: 0 for none."""
    k_seeds, b_size = td.shape
    for k in range(k_seeds):
        row, target_row = params[k], params[k_seeds + k]
        q, inputs = _forward(row, layout, pairs[k], act, dueling)
        q_next, _ = _forward(target_row, layout, pairs[k_seeds + k], act, dueling)
        pick = _forward(row, layout, pairs[k_seeds + k], act, dueling)[0] if double_dqn else q_next
        n_actions = q.shape[1]
        grad_q = np.empty((b_size, n_actions), np.float32)
        kernels.td_row(
            q, q_next, pick, actions[k], returns[k], discounts[k], weights[k], huber, td[k], grad_q
        )
        if dueling:  # back through Q = V + A - mean(A)
            grad_out = np.empty((b_size, n_actions + 1), np.float32)
            for i in range(b_size):
                total = np.float32(0.0)
                for a in range(n_actions):
                    total += grad_q[i, a]
                grad_out[i, 0] = total
                mean = total / np.float32(n_actions)
                for a in range(n_actions):
                    grad_out[i, a + 1] = grad_q[i, a] - mean
        else:
            grad_out = grad_q
        grow = grad[k]
        _backward(row, layout, inputs, grad_out, act, grow)
        if clip_value > 0:
            low, high = np.float32(-clip_value), np.float32(clip_value)
            for j in range(grow.shape[0]):
                grow[j] = min(max(grow[j], low), high)
        if clip_norm > 0:  # torch's renorm: rows over the norm scaled by norm / (their norm + 1e-7)
            total = np.float32(0.0)
            for j in range(grow.shape[0]):
                total += grow[j] * grow[j]
            norm = np.sqrt(total)
            if norm > clip_norm:
                grow *= np.float32(clip_norm / (norm + 1e-7))


@njit(cache=True, nogil=True, error_model="numpy")
def optimize(
    kind, params, grad, avg, avg_sq, max_avg_sq, step, lr, weight_decay
):  # pragma: no cover
    """One optimizer step on params [K, P] (contiguous), as tuner.optim.FlatOptimizer.step:
    adam/adamw (betas 0.9, 0.999, eps 1e-8) or rmsprop (alpha 0.99, eps 1e-8). max_avg_sq has
    no columns without amsgrad; `step` counts this one."""
    f32 = np.float32
    p, g, m, v = params.ravel(), grad.ravel(), avg.ravel(), avg_sq.ravel()
    size = p.shape[0]
    rate, decay, eps = f32(lr), f32(weight_decay), f32(1e-8)
    if kind != ADAMW and weight_decay:
        g = g + decay * p
    if kind == RMSPROP:
        for j in range(size):
            v[j] = v[j] * f32(0.99) + f32(0.01) * g[j] * g[j]
            p[j] -= rate * g[j] / (np.sqrt(v[j]) + eps)
        return
    if kind == ADAMW:
        shrink = f32(1.0 - lr * weight_decay)
        for j in range(size):
            p[j] *= shrink
    step_size = f32(lr / (1.0 - 0.9**step))
    bias2_sqrt = f32(np.sqrt(1.0 - 0.999**step))
    for j in range(size):
        m[j] += (g[j] - m[j]) * f32(0.1)
        v[j] = v[j] * f32(0.999) + f32(0.001) * g[j] * g[j]
    if max_avg_sq.shape[1]:
        top = max_avg_sq.ravel()
        for j in range(size):
            top[j] = max(top[j], v[j])
        v = top
    for j in range(size):
        p[j] -= step_size * m[j] / (np.sqrt(v[j]) / bias2_sqrt + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def greedy(params, layout, obs, act, dueling, actions):  # pragma: no cover - compiled
    """argmax_a Q(obs, a) into actions [K, n] for obs [K, n, D] and params [K, P], one
    observation at a time (acting sees one or a few a seed): the first of equal values, as
    numpy's argmax. With dueling, the advantages' argmax (V and mean(A) are the same for every
    action)."""
    n = layout.shape[0]
    widest = 0
    for layer in range(n):
        widest = max(widest, layout[layer, 2])
    # the two swap roles layer by layer, and either may hold the next observation
    x = np.empty(max(widest, obs.shape[2]), np.float32)
    h = np.empty_like(x)
    for k in range(obs.shape[0]):
        row = params[k]
        for i in range(obs.shape[1]):
            width = obs.shape[2]
            x[:width] = obs[k, i]
            for layer in range(n):
                w_at, fan_in, fan_out, b_at = layout[layer]
                h[:fan_out] = row[b_at : b_at + fan_out]
                if layer == n - 1:  # stored out-major
                    for o in range(fan_out):
                        total = np.float32(0.0)
                        for j in range(fan_in):
                            total += x[j] * row[w_at + o * fan_in + j]
                        h[o] += total
                else:
                    for j in range(fan_in):
                        xj = x[j]
                        w = row[w_at + j * fan_out : w_at + (j + 1) * fan_out]
                        for o in range(fan_out):
                            h[o] += xj * w[o]
                    for o in range(fan_out):
                        if act == RELU:
                            h[o] = max(h[o], np.float32(0.0))
                        elif act == TANH:
                            h[o] = np.tanh(h[o])
                        elif h[o] <= 0.0:
                            h[o] = np.expm1(h[o])
                x, h = h, x
                width = fan_out
            first = 1 if dueling else 0
            best = first
            for a in range(first + 1, width):  # a NaN counts as the largest, as in argmax
                if x[a] > x[best] or (np.isnan(x[a]) and not np.isnan(x[best])):
                    best = a
            actions[k, i] = best - first
