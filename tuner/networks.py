"""Q-networks for K independent seeds at once, with their gradients written out by hand.

All weights live in one flat tensor `params` [K, P]; each layer's weight [K, in, out] and bias
[K, 1, out] are views into it, so a layer is one `baddbmm` for every seed (except large products
on Zen 5 and later AMD CPUs, one oneDNN call per seed: see ONEDNN), the optimizer and the per-seed
gradient clip each touch one tensor, and copying the target network is one copy.
The output layer's weight is stored out-major ([K, out, in], nn.Linear's order) and shown as a
transposed view: with only n_actions outputs, the CPU's matrix products run 2-5x faster that way
round (its forward and weight gradient; the hidden layers are no faster either way).
Each seed's row is padded with zeros to a multiple of ROW_ALIGN floats, so every weight, in every
row, goes through the same vectorised code in elementwise kernels: PyTorch's fused Adam (and any
contiguous elementwise op) runs the last `numel % vector width` elements of a tensor through
scalar code that rounds differently, which made the batch's last seed drift from the same seed
trained alone or elsewhere in a batch. The padding's gradient is zero, so it stays zero.
The backward pass is the chain rule over those layers (no autograd graph: on small networks
the graph costs more than the arithmetic); tests check it against autograd.
"""

from __future__ import annotations

import itertools
import math
import platform

import numpy as np
import torch
import torch.nn.functional as F

from tuner import fused
from tuner.errors import TunerError

aten = torch.ops.aten
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "elu": F.elu, "gelu": F.gelu, "silu": F.silu}
ROW_ALIGN = 64
"""Floats per row multiple: 256 bytes, four AVX-512 vectors, so also whole cache lines."""
IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "elu": F.elu_}
"""Activations whose backward needs only their output: applied in place, no pre-activation kept
(at 10 seeds of a 256-256 network, a gradient step took 4-8% less time than with a new tensor per
activation)."""
NUMPY_ACTIVATIONS = {  # in place where numpy allows; gelu needs erf, which numpy lacks
    "relu": lambda x: np.maximum(x, 0.0, out=x),
    "tanh": lambda x: np.tanh(x, out=x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}


def _cpu_id() -> tuple[str, int]:
    """(vendor, family) from /proc/cpuinfo, e.g. ("AuthenticAMD", 26); family -1 where unknown."""
    vendor, family = platform.processor(), -1
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    vendor = value.strip()
                elif key.strip() == "cpu family":
                    family = int(value)
                    break
    except (OSError, ValueError):
        pass
    return vendor, family


def _onednn_linear() -> torch._ops.OpOverloadPacket | None:
    """oneDNN's fused linear (x @ w.T + bias, then an activation), where this torch has it."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


LINEAR = _onednn_linear()


def onednn_pays(vendor: str, family: int, capability: str) -> bool:
    """Whether oneDNN's large products beat MKL's on this CPU (measured: see ONEDNN)."""
    return vendor == "AuthenticAMD" and family >= 26 and capability == "AVX512"


ONEDNN = LINEAR is not None and onednn_pays(*_cpu_id(), torch.backends.cpu.get_cpu_capability())
"""Run a CPU network's large matrix products through oneDNN, one call per seed, instead of
torch's batched MKL call. MKL runs its AVX2 code on AMD processors, oneDNN its AVX-512 code.
That pays only where a core executes 512-bit instructions at full width: on Zen 5 (family 26)
a [64, 256] @ [256, 256] product took 46-57 us against MKL's 83-85 (one thread), and the
8192-row products of a phase's TD targets less than half MKL's time. Zen 4 (family 25) splits
each 512-bit instruction in two: there oneDNN took 97-110 us against MKL's 88-91, and a seed of
RL Zoo's CartPole config 17.4 s against 14.9 (`benchmarks/products.py`, results/
products_zen4.txt), so it is off on Zen 4. A oneDNN call costs 12-20 us more, so products under
ONEDNN_MIN_MACS multiply-adds stay batched. On Intel processors MKL runs AVX-512 itself and this
is off: on a Xeon with AMX (family 6 model 207) oneDNN lost at every shape the trainer uses
below 8192 rows, and RL Zoo's config took 23.1 s a seed with it against 17.2 (results/
products_intel_amx.txt). Read when a network is built; a test sets it to check both paths
wherever torch has oneDNN."""
ONEDNN_MIN_MACS = 2_000_000
"""The smallest product (rows x inputs x outputs) sent to oneDNN. On the Zen 5 core
(`benchmarks/products.py`, results/products_zen5.json) the two broke even at [64, 128] @
[128, 128] (1.05M: the three products of a step 68 us with MKL, 74 with oneDNN), oneDNN won from
[128, 128] @ [128, 128] (2.1M: 129 against 106) and lost below ([64, 64] @ [64, 64]: 7 against
18)."""


def activation_backward(
    name: str, grad: torch.Tensor, pre: torch.Tensor | None, post: torch.Tensor
) -> torch.Tensor:
    """d loss / d pre-activation, from d loss / d post-activation (the kernels autograd uses)."""
    if name == "relu":
        return aten.threshold_backward(grad, post, 0.0)
    if name == "tanh":
        return aten.tanh_backward(grad, post)
    if name == "elu":
        return aten.elu_backward(grad, 1.0, 1, 1, True, post)
    if name == "gelu":
        return aten.gelu_backward(grad, pre)
    return aten.silu_backward(grad, pre)


class BatchedQNetwork:
    """K separate MLPs, seed k in slice [k] of every tensor.

    Seed k's weights are initialised from seed k's own generator exactly as `nn.Linear` would
    (uniform in +-1/sqrt(fan_in)), so a seed starts from the same weights whatever else is in the
    batch. With `dueling`, the last layer has one value unit and `n_actions` advantage units:
    Q = V + A - mean(A).
    """

    def __init__(
        self,
        seeds: list[int],
        obs_dim: int,
        n_actions: int,
        hidden_sizes: tuple[int, ...],
        activation: str = "relu",
        dueling: bool = False,
        device: torch.device | str = "cpu",
        numpy_paths: bool | None = None,
    ) -> None:
        """numpy_paths: act (`greedy`) with numpy on the weights' own memory, the default on the
        CPU for the activations numpy has; False takes the torch code a device network runs
        (a test trains through it on the CPU and requires the same weights to the bit)."""
        self.seeds = list(seeds)
        self.numpy_paths = numpy_paths
        self.k = len(self.seeds)
        self.arch = (obs_dim, n_actions, tuple(hidden_sizes), activation, dueling)
        self.activation, self.act, self.dueling = activation, ACTIVATIONS[activation], dueling
        self.act_ = IN_PLACE.get(activation)
        self.shapes = list(itertools.pairwise([obs_dim, *hidden_sizes, n_actions + int(dueling)]))
        size = sum(i * o + o for i, o in self.shapes)
        self.padding = -size % ROW_ALIGN
        self.params = torch.zeros(self.k, size + self.padding, device=device)
        self.onednn = ONEDNN and self.params.device.type == "cpu"
        self.padding_grad = torch.zeros(self.k, self.padding, device=device)  # always zero
        self._set_views()
        self.reset_parameters()

    def _set_views(self) -> None:
        self.layers = self._views(self.params)
        self.transposed = [w.transpose(1, 2) for w, _ in self.layers]  # for backward
        # numpy views of the same memory: acting with numpy costs a third of torch's dispatch
        on_cpu = self.params.device.type == "cpu" and self.activation in NUMPY_ACTIVATIONS
        use = on_cpu and self.numpy_paths is not False
        self.host_layers = [(w.numpy(), b.numpy()) for w, b in self.layers] if use else None
        # acting on one observation a seed (training with one env a seed): one compiled call
        # where tuner.fused has the activation, 2.8 us against numpy's 9.9 for 3 seeds of a
        # 64x64 network; numpy's batched products win from 5 rows a seed (evaluations)
        compiled = use and self.activation in fused.ACTIVATIONS
        self.host_params = self.params.numpy() if compiled else None
        self.compiled_layout = fused.layout(self.shapes) if compiled else None

    def _views(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        views, at = [], 0
        for n, (i, o) in enumerate(self.shapes):
            if n == len(self.shapes) - 1:  # the output layer: stored out-major, see above
                w = flat[:, at : at + i * o].view(self.k, o, i).transpose(1, 2)
            else:
                w = flat[:, at : at + i * o].view(self.k, i, o)
            b = flat[:, at + i * o : at + i * o + o].view(self.k, 1, o)
            views.append((w, b))
            at += i * o + o
        return views

    @property
    def weights(self) -> list[torch.Tensor]:
        return [w for w, _ in self.layers]

    @property
    def biases(self) -> list[torch.Tensor]:
        return [b for _, b in self.layers]

    def reset_parameters(self) -> None:
        for k, seed in enumerate(self.seeds):
            gen = torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
            )
            for w, b in self.layers:
                bound = 1.0 / math.sqrt(w.shape[1])
                w[k].copy_(torch.empty(w.shape[1:]).uniform_(-bound, bound, generator=gen))
                b[k].copy_(torch.empty(b.shape[1:]).uniform_(-bound, bound, generator=gen))

    def __getstate__(self) -> dict:
        """Pickled as what builds it plus its weights, in numpy (worker processes send trained
        networks back this way); unpickling rebuilds the views onto the weights."""
        return {
            "seeds": self.seeds,
            "arch": self.arch,
            "numpy_paths": self.numpy_paths,
            "params": self.params.cpu().numpy(),
            "device": str(self.params.device),
        }

    def __setstate__(self, state: dict) -> None:
        obs_dim, n_actions, hidden_sizes, activation, dueling = state["arch"]
        self.__init__(  # type: ignore[misc]
            state["seeds"],
            obs_dim,
            n_actions,
            hidden_sizes,
            activation,
            dueling,
            device=state["device"],
            numpy_paths=state["numpy_paths"],
        )
        self.params.copy_(torch.from_numpy(state["params"]))

    @staticmethod
    def gather(rows: list[tuple[BatchedQNetwork, int]]) -> BatchedQNetwork:
        """One network of the given seeds, each with its own weights: (network, k) is seed k of
        that network. The networks must share their shape, device and acting path."""
        first = rows[0][0]
        obs_dim, n_actions, hidden_sizes, activation, dueling = first.arch
        out = BatchedQNetwork(
            [net.seeds[k] for net, k in rows],
            obs_dim,
            n_actions,
            hidden_sizes,
            activation,
            dueling,
            device=first.params.device,
            numpy_paths=first.numpy_paths,
        )
        out.params.copy_(torch.stack([net.params[k] for net, k in rows]))
        return out

    @property
    def macs(self) -> int:
        """Multiply-adds that one observation costs one seed's network."""
        return sum(i * o for i, o in self.shapes)

    def host_copy(self) -> BatchedQNetwork:
        """The same seeds and weights in CPU memory, acting with numpy (for a device network:
        see tuner.dqn.acts_on_host). Independent of this network: `refresh` copies its weights
        over again."""
        other = BatchedQNetwork.__new__(BatchedQNetwork)
        other.__dict__.update(self.__dict__)
        other.numpy_paths = None
        other.params = self.params.cpu().clone()
        other.padding_grad = self.padding_grad.cpu()
        other._set_views()
        return other

    def rows(self, first: int, stop: int) -> BatchedQNetwork:
        """Seeds first..stop-1 as a network of their own that shares this one's weights: a view,
        so an update through either is seen by both (train() keeps its online and target
        networks as the two halves of one, which a forward then runs together)."""
        other = BatchedQNetwork.__new__(BatchedQNetwork)
        other.__dict__.update(self.__dict__)
        other.seeds, other.k = self.seeds[first:stop], stop - first
        other.params = self.params[first:stop]
        other.padding_grad = self.padding_grad[first:stop]
        other._set_views()
        return other

    def refresh(self, source: BatchedQNetwork) -> None:
        """Copy `source`'s weights into this network, in place (numpy views stay valid)."""
        self.params.copy_(source.params)

    def clone(self) -> BatchedQNetwork:
        """An independent copy (the target network)."""
        other = BatchedQNetwork.__new__(BatchedQNetwork)
        other.__dict__.update(self.__dict__)
        other.params = self.params.clone()
        other._set_views()
        return other

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(obs, a) for numpy obs [K, n, obs_dim] -> actions [K, n]."""
        if self.host_layers is None:
            with torch.no_grad():
                return (
                    self(torch.as_tensor(obs, device=self.params.device)).argmax(-1).cpu().numpy()
                )
        if self.compiled_layout is not None and obs.shape[1] == 1:
            actions = np.empty(obs.shape[:2], np.int64)
            fused.greedy(
                self.host_params,
                self.compiled_layout,
                np.ascontiguousarray(obs, np.float32),
                fused.ACTIVATIONS[self.activation],
                self.dueling,
                actions,
            )
            return actions
        x = obs
        act = NUMPY_ACTIVATIONS[self.activation]
        for i, (w, b) in enumerate(self.host_layers):
            x = x @ w
            x += b
            if i < len(self.host_layers) - 1:
                x = act(x)
        # dueling: V and mean(A) are the same for every action, so the argmax is A's
        return (x[..., 1:] if self.dueling else x).argmax(-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K, batch, obs_dim] -> Q-values [K, batch, n_actions]."""
        return self.forward(x)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Q-values and what `backward` needs: each layer's input, then each hidden pre-activation
        (none for the activations in IN_PLACE)."""
        inputs, pres = [], []
        for i, (w, b) in enumerate(self.layers):
            inputs.append(x)
            x = self._matmul(x, w, b)
            if i < len(self.layers) - 1:
                if self.act_ is not None:
                    x = self.act_(x)
                else:
                    pres.append(x)
                    x = self.act(x)
        if self.dueling:
            value, adv = x[..., :1], x[..., 1:]
            x = value + adv - adv.mean(-1, keepdim=True)
        return x, inputs + pres

    def _matmul(
        self, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each seed's a[k] @ b[k] (+ bias[k]): [K, M, D] @ [K, D, N] -> [K, M, N].

        With `onednn` (see ONEDNN), a product of at least ONEDNN_MIN_MACS multiply-adds is one
        oneDNN call per seed; otherwise all seeds' are one batched call. The choice depends on
        the shapes alone, never on K, so a seed's arithmetic is the same alone or in a batch.
        (oneDNN's fused relu is not used: it turns NaN into 0, which would hide a divergence.)
        """
        if self.onednn:  # the shapes are looked at on this path only (a call per product)
            k, m, d = a.shape
            if m * d * b.shape[2] >= ONEDNN_MIN_MACS:
                out = [
                    LINEAR(a[j], b[j].t(), None if bias is None else bias[j, 0], "none", [], "")
                    for j in range(k)
                ]
                return out[0].unsqueeze(0) if k == 1 else torch.stack(out)
        if a.shape[1] == 1:
            # one row per seed (the first layer's weight gradient of a 1-dim observation): torch
            # hands K = 1 to MKL's gemv and K > 1 to its gemm, which round differently on Intel
            # CPUs, so a seed's bits would depend on the batch; a product and a sum do not
            out = (a.transpose(1, 2) * b).sum(1, keepdim=True)
            return out if bias is None else out + bias
        return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)

    def backward(self, cache: list[torch.Tensor], grad_q: torch.Tensor) -> torch.Tensor:
        """d loss / d params [K, P] (zero on the padding), given d loss / d Q [K, batch, n_actions]."""
        n = len(self.layers)
        inputs, pres = cache[:n], cache[n:]
        grad = grad_q
        if self.dueling:
            grad = torch.cat([grad.sum(-1, keepdim=True), grad - grad.mean(-1, keepdim=True)], -1)
        parts = []
        for i in reversed(range(n)):
            parts.append(grad.sum(1))  # bias
            if i == n - 1:  # the weight's gradient in the layer's storage order
                parts.append(self._matmul(grad.transpose(1, 2), inputs[i]).view(self.k, -1))
            else:
                parts.append(self._matmul(inputs[i].transpose(1, 2), grad).view(self.k, -1))
            if i > 0:
                grad = self._matmul(grad, self.transposed[i])
                pre = pres[i - 1] if pres else None
                grad = activation_backward(self.activation, grad, pre, inputs[i])
        parts.reverse()
        if self.padding:
            parts.append(self.padding_grad)
        return torch.cat(parts, 1)

    def seed_state(self, k: int) -> dict[str, torch.Tensor]:
        """Seed k's weights alone (no batch dimension), on the CPU."""
        state = {}
        for i, (w, b) in enumerate(self.layers):
            state[f"layers.{i}.weight"] = (
                w[k].detach().cpu().clone(memory_format=torch.contiguous_format)
            )
            state[f"layers.{i}.bias"] = b[k].detach().cpu().clone()
        return state

    def load_seed_state(self, state: dict[str, torch.Tensor], k: int | None = None) -> None:
        """Load one seed's weights into slice k, or into every slice when k is None."""
        own = {
            f"layers.{i}.{kind}": t
            for i, (w, b) in enumerate(self.layers)
            for kind, t in (("weight", w), ("bias", b))
        }
        if set(state) != set(own) or any(state[n].shape != own[n].shape[1:] for n in own):
            raise TunerError(
                "the checkpoint's network does not match this config's "
                "(hidden_sizes, dueling, env); train with the config it was saved with"
            )
        for name, t in own.items():
            src = state[name].to(t.device, t.dtype)
            if k is None:
                t.copy_(src.expand_as(t))
            else:
                t[k].copy_(src)
