"""Q-networks for K independent seeds at once: weights are [K, in, out], inputs [K, batch, in]."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tuner.errors import TunerError

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "elu": nn.functional.elu,
               "gelu": nn.functional.gelu, "silu": nn.functional.silu}


class BatchedQNetwork(nn.Module):
    """K separate MLPs evaluated with one `baddbmm` per layer.

    Seed k's slice of every parameter is initialised from seed k's own generator exactly as
    `nn.Linear` would be, so a seed starts from the same weights whatever else is in the batch.
    With `dueling`, the last layer has one value unit and `n_actions` advantage units:
    Q = V + A - mean(A).
    """

    def __init__(self, seeds: list[int], obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...],
                 activation: str = "relu", dueling: bool = False) -> None:
        super().__init__()
        self.seeds = list(seeds)
        self.dueling = dueling
        self.act = ACTIVATIONS[activation]
        sizes = [obs_dim, *hidden_sizes, n_actions + int(dueling)]
        k = len(seeds)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(k, i, o)) for i, o in zip(sizes[:-1], sizes[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(k, 1, o)) for o in sizes[1:])
        self.layers = list(zip(self.weights, self.biases))  # ParameterList indexing is slow
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for k, seed in enumerate(self.seeds):
                gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
                for w, b in zip(self.weights, self.biases):
                    bound = 1.0 / math.sqrt(w.shape[1])
                    w[k].copy_(torch.empty(w.shape[1:]).uniform_(-bound, bound, generator=gen))
                    b[k].copy_(torch.empty(b.shape[1:]).uniform_(-bound, bound, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K, batch, obs_dim] -> Q-values [K, batch, n_actions]."""
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        if self.dueling:
            value, adv = x[..., :1], x[..., 1:]
            return value + adv - adv.mean(-1, keepdim=True)
        return x

    def seed_state(self, k: int) -> dict[str, torch.Tensor]:
        """Seed k's weights alone (no batch dimension), on the CPU."""
        return {name: p[k].detach().cpu().clone() for name, p in self.named_parameters()}

    def load_seed_state(self, state: dict[str, torch.Tensor], k: int | None = None) -> None:
        """Load one seed's weights into slice k, or into every slice when k is None."""
        own = dict(self.named_parameters())
        if set(state) != set(own) or any(state[n].shape != own[n].shape[1:] for n in own):
            raise TunerError("the checkpoint's network does not match this config's "
                             "(hidden_sizes, dueling, env); train with the config it was saved with")
        with torch.no_grad():
            for name, p in own.items():
                src = state[name].to(p.device, p.dtype)
                if k is None:
                    p.copy_(src.expand_as(p))
                else:
                    p[k].copy_(src)
