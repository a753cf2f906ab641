"""The hand-written backward and optimizers against autograd and torch.optim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tuner import networks
from tuner.config import DQNConfig
from tuner.dqn import gradient_step, make_optimizer, update_target
from tuner.networks import BatchedQNetwork
from tuner.optim import FlatOptimizer, clip_gradients, flush_tiny


def autograd_reference(net: BatchedQNetwork, obs, actions, targets, weights, loss: str):
    """Each seed's loss with autograd, through plain torch ops on a copy of the weights."""
    params = net.params.clone().double().requires_grad_(True)
    x = obs.double()
    views = net._views(params)  # the network's own layout of the flat weights
    for n, (w, b) in enumerate(views):
        x = x @ w + b
        if n < len(views) - 1:
            x = net.act(x)
    if net.dueling:
        x = x[..., :1] + x[..., 1:] - x[..., 1:].mean(-1, keepdim=True)
    q = x.gather(-1, actions[..., None]).squeeze(-1)
    per = (
        F.smooth_l1_loss(q, targets.double(), reduction="none")
        if loss == "huber"
        else F.mse_loss(q, targets.double(), reduction="none")
    )
    per_seed = (per * weights.double()).mean(1)
    per_seed.sum().backward()
    return per_seed.detach(), params.grad


def check_gradients_against_autograd(activation: str, dueling: bool, loss: str) -> BatchedQNetwork:
    gen = torch.Generator().manual_seed(1)
    net = BatchedQNetwork(
        [3, 4], obs_dim=5, n_actions=3, hidden_sizes=(7, 6), activation=activation, dueling=dueling
    )
    net.params.copy_(net.params.double().float())
    obs, targets = torch.randn(2, 9, 5, generator=gen), 3 * torch.randn(2, 9, generator=gen)
    actions, weights = torch.randint(0, 3, (2, 9), generator=gen), torch.rand(2, 9, generator=gen)
    expected_loss, expected_grad = autograd_reference(net, obs, actions, targets, weights, loss)

    captured = {}

    class Capture(FlatOptimizer):
        def step(self, grad):
            captured["grad"] = grad.clone()

    config = DQNConfig(loss=loss, grad_clip_norm=None)
    td = gradient_step(
        net, Capture("adam", net.params, lr=1e-3), config, obs, actions, targets, weights
    )
    assert torch.isfinite(expected_loss).all() and td.shape == (2, 9)
    assert torch.allclose(captured["grad"].double(), expected_grad, rtol=1e-4, atol=1e-6)
    return net


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "gelu", "silu"])
@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_manual_gradients_match_autograd(monkeypatch, activation, dueling, loss):
    monkeypatch.setattr(networks, "ONEDNN", False)  # every product one batched torch call
    assert not check_gradients_against_autograd(activation, dueling, loss).onednn


@pytest.mark.skipif(networks.LINEAR is None, reason="this torch has no oneDNN")
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("dueling", [False, True])
def test_manual_gradients_match_autograd_with_every_product_a_onednn_call_per_seed(
    monkeypatch, activation, dueling
):
    """The path Zen 5 and later AMD processors take for large products (networks.ONEDNN), here for
    all of them: each layer's forward, weight gradient and input gradient, with the transposed
    operands the batched path takes."""
    monkeypatch.setattr(networks, "ONEDNN", True)
    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 0)
    assert check_gradients_against_autograd(activation, dueling, "huber").onednn


@pytest.mark.parametrize(
    ("vendor", "family", "capability", "pays"),
    [
        ("AuthenticAMD", 26, "AVX512", True),  # Zen 5: oneDNN 46-57 us, MKL 83-85
        ("AuthenticAMD", 25, "AVX512", False),  # Zen 4 splits 512-bit ops: 97-110 us, MKL 88-91
        ("AuthenticAMD", 26, "AVX2", False),  # AVX-512 hidden from torch: oneDNN has no edge
        ("GenuineIntel", 6, "AVX512", False),  # MKL runs AVX-512 itself
        ("AuthenticAMD", -1, "AVX512", False),  # family unreadable: stay on the measured path
    ],
)
def test_onednn_only_where_it_was_measured_faster(vendor, family, capability, pays):
    assert networks.onednn_pays(vendor, family, capability) is pays


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="no /proc/cpuinfo")
def test_cpu_id_reads_the_first_cores_vendor_and_family():
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    assert networks._cpu_id() == (fields["vendor_id"], int(fields["cpu family"]))


@pytest.mark.parametrize("onednn", [False, True], ids=["batched", "onednn-per-seed"])
def test_a_nan_weight_in_the_first_layer_reaches_the_q_values(monkeypatch, onednn):
    """A divergence is caught from the TD errors, so a non-finite weight anywhere must show in Q
    (oneDNN's fused relu maps NaN to 0, which is why it is not used)."""
    if onednn and networks.LINEAR is None:
        pytest.skip("this torch has no oneDNN")
    monkeypatch.setattr(networks, "ONEDNN", onednn)
    monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 0)
    net = BatchedQNetwork([0, 1], obs_dim=4, n_actions=2, hidden_sizes=(8, 8))
    net.layers[0][0][1, 2, 3] = float("nan")
    q = net(torch.randn(2, 5, 4))
    assert torch.isfinite(q[0]).all() and torch.isnan(q[1]).all()


@pytest.mark.parametrize(
    ("kind", "decay", "amsgrad"),
    [
        ("adam", 0.0, False),
        ("adam", 0.1, True),
        ("adamw", 0.01, True),
        ("adamw", 0.05, False),
        ("rmsprop", 0.0, False),
        ("rmsprop", 0.1, False),
    ],
)
@pytest.mark.parametrize("compiled", [False, True], ids=["torch", "compiled"])
def test_flat_optimizers_match_torch_optim(kind, decay, amsgrad, compiled):
    """FlatOptimizer.step (torch's fused kernel or written out), and step_host (the CPU's compiled
    loop on the same memory), against torch.optim."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 20, generator=gen)
    ours, theirs = start.clone(), torch.nn.Parameter(start.clone())
    opt = FlatOptimizer(kind, ours, lr=0.01, weight_decay=decay, amsgrad=amsgrad)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}[
        kind
    ]
    extra = {"amsgrad": amsgrad} if kind != "rmsprop" else {}
    ref = cls([theirs], lr=0.01, weight_decay=decay, foreach=False, **extra)
    for _ in range(25):
        grad = torch.randn(3, 20, generator=gen)
        if compiled:
            opt.step_host(grad.clone().numpy())
        else:
            opt.step(grad.clone())
        theirs.grad = grad.clone()
        ref.step()
    assert torch.allclose(ours, theirs.detach(), rtol=1e-5, atol=1e-6)


def test_flush_tiny_zeroes_only_values_below_1e_20():
    t = torch.tensor([[1e-21, -1e-21, 1e-19, -3.0], [1e-39, 0.0, 2e-20, -1e-30]])
    flush_tiny(t)
    assert torch.equal(t, torch.tensor([[0.0, 0.0, 1e-19, -3.0], [0.0, 0.0, 2e-20, 0.0]]))


def denormals(t: torch.Tensor) -> int:
    return int(((t != 0) & (t.abs() < torch.finfo(torch.float32).tiny)).sum())


@pytest.mark.parametrize("flush", [False, True])
def test_dead_weights_under_weight_decay_stay_out_of_the_denormal_range(flush):
    """A dead ReLU unit's weights get only the decay term, so they shrink geometrically; amsgrad
    keeps the old, large denominator. Flushing as train() does keeps them normal floats."""
    params = torch.ones(2, 8)
    opt = FlatOptimizer("adam", params, lr=0.1, weight_decay=0.5, amsgrad=True)
    opt.step(torch.ones(2, 8))  # one real gradient, then the unit dies
    for step in range(1, 3000):
        opt.step(torch.zeros(2, 8))
        if flush and step % 32 == 0:
            flush_tiny(params, *opt.state)
    found = sum(denormals(t) for t in (params, *opt.state))
    assert (found == 0) if flush else (found > 0)


def test_gradient_clipping_is_per_seed():
    grad = torch.tensor([[3.0, 4.0], [0.3, 0.4], [-8.0, 0.0]])
    clip_gradients(grad, value=None, norm=1.0)
    # seed 0 has norm 5 -> scaled to 1; seed 1 (norm 0.5) untouched; seed 2 norm 8 -> 1
    assert torch.allclose(grad, torch.tensor([[0.6, 0.8], [0.3, 0.4], [-1.0, 0.0]]), atol=1e-6)
    grad = torch.tensor([[3.0, -0.5], [-2.0, 0.1]])
    clip_gradients(grad, value=1.0, norm=None)
    assert torch.equal(grad, torch.tensor([[1.0, -0.5], [-1.0, 0.1]]))


def test_target_copy_and_soft_update_touch_every_weight():
    online = BatchedQNetwork([0, 1], obs_dim=2, n_actions=2, hidden_sizes=(4,))
    target = online.clone()
    online.params.add_(1.0)
    update_target(target, online, DQNConfig(target_update="soft", tau=0.25))
    assert torch.allclose(target.params, online.params - 0.75)
    update_target(target, online, DQNConfig(target_update="hard"))
    assert torch.equal(target.params, online.params)
    # n soft updates owed while the online weights are fixed are applied as one
    soft = DQNConfig(target_update="soft", tau=0.05)
    stepwise, at_once = target.clone(), target.clone()
    online.params.mul_(-2.0)
    for _ in range(37):
        update_target(stepwise, online, soft)
    update_target(at_once, online, soft, times=37)
    assert torch.allclose(at_once.params, stepwise.params, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(at_once.params, online.params, atol=1e-2)
    update_target(at_once, online, soft, times=0)
    assert torch.allclose(at_once.params, stepwise.params, rtol=1e-5, atol=1e-6)
    update_target(at_once, online, DQNConfig(target_update="hard"), times=0)  # none owed
    assert torch.allclose(at_once.params, stepwise.params, rtol=1e-5, atol=1e-6)
    assert make_optimizer(DQNConfig(optimizer="rmsprop"), online).kind == "rmsprop"


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "gelu", "silu"])
@pytest.mark.parametrize("dueling", [False, True])
def test_greedy_actions_match_the_argmax_of_the_forward_pass(activation, dueling):
    net = BatchedQNetwork(
        [0, 1, 2],
        obs_dim=4,
        n_actions=5,
        hidden_sizes=(16, 8),
        activation=activation,
        dueling=dueling,
    )
    obs = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(2))
    expected = net(obs).argmax(-1).numpy()
    assert np.array_equal(net.greedy(obs.numpy()), expected)
    # one observation a seed, as training acts: tuner.fused's compiled loop where it has the
    # activation, numpy's products otherwise
    assert (net.compiled_layout is not None) == (activation in ("relu", "tanh", "elu"))
    one_by_one = [net.greedy(obs[:, i : i + 1].numpy())[:, 0] for i in range(50)]
    assert np.array_equal(np.stack(one_by_one, 1), expected)
    if not dueling:  # a NaN counts as the largest value, as in argmax
        net.biases[-1][1, 0, 3] = float("nan")
        assert np.array_equal(
            net.greedy(obs[:, :1].numpy())[:, 0], [expected[0, 0], 3, expected[2, 0]]
        )


def test_greedy_one_row_at_a_time_takes_observations_wider_than_every_layer():
    # three layers: the compiled loop's two buffers have swapped when the next seed's
    # observation is read in, so both must hold 40 values, not just the first
    net = BatchedQNetwork([0, 1, 2], obs_dim=40, n_actions=3, hidden_sizes=(16, 8))
    obs = torch.randn(3, 20, 40, generator=torch.Generator().manual_seed(2))
    one_by_one = [net.greedy(obs[:, i : i + 1].numpy())[:, 0] for i in range(20)]
    assert np.array_equal(np.stack(one_by_one, 1), net(obs).argmax(-1).numpy())
