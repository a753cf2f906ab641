"""Optimizers and gradient clipping on one flat [K, P] parameter tensor.

Adam and AdamW call torch.optim's fused kernel directly and RMSprop is written out; tests compare
all three with torch.optim. Working on one tensor skips the per-step bookkeeping of
torch.optim, which dominates small networks.
Every operation is elementwise or per row, so seed k's update depends on seed k alone.
"""

from __future__ import annotations

import numpy as np
import torch

from tuner import fused


class FlatOptimizer:
    """adam, adamw or rmsprop with PyTorch's defaults (betas 0.9/0.999, eps 1e-8; alpha 0.99).

    Adam and AdamW run torch.optim's own fused kernel on the one flat tensor: one call per step.
    """

    def __init__(
        self,
        kind: str,
        params: torch.Tensor,
        *,
        lr: float,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        self.kind, self.params = kind, params
        self.lr, self.weight_decay, self.amsgrad = lr, weight_decay, amsgrad
        self.step_count = torch.zeros((), device=params.device)
        self.avg = torch.zeros_like(params)  # adam: first moment
        self.avg_sq = torch.zeros_like(params)  # adam: second moment; rmsprop: square average
        self.max_avg_sq = [torch.zeros_like(params)] if amsgrad else []
        self.host: tuple[np.ndarray, ...] | None = None  # numpy views, for step_host

    def step_host(self, grad: np.ndarray) -> None:
        """`step` on a CPU network, in one compiled call (tuner.fused.optimize) on numpy views of
        the same memory: the same rule, rounded its own way."""
        if self.host is None:
            self.host = (
                self.params.numpy(),
                self.avg.numpy(),
                self.avg_sq.numpy(),
                self.max_avg_sq[0].numpy() if self.amsgrad else np.zeros((1, 0), np.float32),
                self.step_count.numpy(),
            )
        params, avg, avg_sq, max_avg_sq, count = self.host
        count += 1
        fused.optimize(
            fused.OPTIMIZERS[self.kind],
            params,
            grad,
            avg,
            avg_sq,
            max_avg_sq,
            float(count),
            self.lr,
            self.weight_decay,
        )

    @property
    def state(self) -> list[torch.Tensor]:
        return [self.avg, self.avg_sq, *self.max_avg_sq]

    def step(self, grad: torch.Tensor) -> None:
        p, lr = self.params, self.lr
        if self.kind == "rmsprop":
            if self.weight_decay:
                grad = grad.add(p, alpha=self.weight_decay)
            self.avg_sq.mul_(0.99).addcmul_(grad, grad, value=0.01)
            p.addcdiv_(grad, self.avg_sq.sqrt().add_(1e-8), value=-lr)
            return
        self.step_count += 1
        fused = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
        fused(
            [p],
            [grad],
            [self.avg],
            [self.avg_sq],
            self.max_avg_sq,
            [self.step_count],
            amsgrad=self.amsgrad,
            lr=lr,
            beta1=0.9,
            beta2=0.999,
            weight_decay=self.weight_decay,
            eps=1e-8,
            maximize=False,
        )


TINY = 1e-20


def flush_tiny(*tensors: torch.Tensor) -> None:
    """Set elements smaller than 1e-20 in magnitude to exactly zero, in place.

    Left alone, weights of dead ReLU units shrink geometrically under weight decay (and their
    Adam moments, and the target weights that follow them, too) until they are denormal floats,
    which make every matmul and optimizer step on the CPU several times slower.
    `torch.set_flush_denormal` covers only the thread that calls it, not torch's worker threads,
    so the trainer clears these values itself. At 1e-20 they are far below anything that moves
    a Q-value, and far enough above the denormal range (1e-38) that none gets there between
    two calls.
    """
    for t in tensors:
        t.masked_fill_(t.abs() < TINY, 0.0)


def clip_gradients(grad: torch.Tensor, value: float | None, norm: float | None) -> torch.Tensor:
    """Clamp every element to [-value, value], then scale each seed's row to L2 norm <= norm."""
    if value is not None:
        grad.clamp_(-value, value)
    if norm is not None:
        # one kernel: rows with an L2 norm above `norm` are scaled by norm / (their norm + 1e-7),
        # which is clip_grad_norm_'s rule up to its epsilon (1e-6), row by row
        grad.renorm_(2, 0, norm)
    return grad
