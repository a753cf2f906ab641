"""The trainer on a CUDA GPU, against the same code on the CPU.

Skipped where there is no GPU (this project's CI). `benchmarks/gpu/check.sh` runs them on a lent
GPU machine. TUNER_TEST_DEVICE=cpu runs them with the "GPU" side on the CPU too, which checks
the tests themselves (every comparison then holds trivially or to the bit) where no GPU is.
"""

from __future__ import annotations

import json
import os

import numpy as np
import optuna
import pytest
import torch

from tests.test_dqn import DEVICE_PATH_MIXES, FAST, LEARNS
from tests.test_replay import prioritized_for_random_steps, random_steps
from tuner import dqn
from tuner.dqn import evaluate, load_checkpoint, save_checkpoints, train
from tuner.networks import BatchedQNetwork

DEVICE = os.environ.get("TUNER_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"
)

# the mixes whose torch paths tests/test_dqn.py checks on the CPU, and the fused AdamW kernel
MIXES = {
    **DEVICE_PATH_MIXES,
    "adamw-amsgrad-clamp": {
        "optimizer": "adamw",
        "amsgrad": True,
        "weight_decay": 0.01,
        "grad_clip_value": 1.0,
    },
}
FEATURES = pytest.mark.parametrize("extra", MIXES.values(), ids=MIXES.keys())


@FEATURES
def test_every_feature_trains_on_the_device_on_the_cpus_schedule(extra):
    """Each feature runs on the device with its tensors there, makes as many gradient steps and
    evaluations as on the CPU, and stays finite."""
    config = FAST.replace(total_steps=2000, eval_every=1000, hidden_sizes=(32, 32), **extra)
    cpu = train(config, seeds=2, device="cpu")
    dev = train(config, seeds=2, device=DEVICE)
    assert dev.network.params.device.type == torch.device(DEVICE).type
    assert dev.gradient_steps == cpu.gradient_steps > 0 and dev.eval_steps == cpu.eval_steps
    assert dev.eval_returns.shape == cpu.eval_returns.shape
    assert np.isfinite(dev.eval_returns).all() and torch.isfinite(dev.network.params).all()


@FEATURES
def test_the_device_follows_the_cpu_until_rounding_sets_them_apart(extra):
    """100 gradient steps from the same weights on the same data: float rounding differs between
    the device's kernels and the CPU's, and nothing else may (the two runs later part, as two CPU
    builds do, once a greedy action flips)."""
    config = FAST.replace(total_steps=300, eval_every=300, **extra)  # learns from step 100
    cpu = train(config, seeds=2, device="cpu")
    dev = train(config, seeds=2, device=DEVICE)
    assert cpu.gradient_steps == dev.gradient_steps == 100
    scale = cpu.network.params.abs().max().item()
    torch.testing.assert_close(
        dev.network.params.cpu(), cpu.network.params, rtol=0, atol=1e-4 * scale
    )


def test_a_checkpoint_saved_on_the_device_plays_the_same_on_the_cpu(tmp_path):
    trained = train(FAST, seeds=2, device=DEVICE)
    paths = save_checkpoints(trained, tmp_path)
    config, state = load_checkpoint(paths[1])
    assert all(t.device.type == "cpu" for t in state.values())
    on_cpu = BatchedQNetwork([config.seed], 4, 2, config.hidden_sizes, config.activation)
    on_cpu.load_seed_state(state)
    torch.testing.assert_close(on_cpu.params[0], trained.network.params[1].cpu())
    on_dev = evaluate(trained.network, config.env, 3)[1]
    assert np.array_equal(evaluate(on_cpu, config.env, 3)[0], on_dev)


def test_a_device_buffer_gives_a_slot_drawn_many_times_the_priority_of_its_last_draw():
    """A CUDA scatter keeps an arbitrary one of duplicate writes; the buffer must not (before the
    fix, the H200 kept another draw's priority and the draws below drifted from the CPU's)."""
    buf = prioritized_for_random_steps(64, 1, device=DEVICE)
    for step in random_steps(64):
        buf.add(*step)
    slots = torch.tensor([[5, 9] * 128, [3] * 256], device=DEVICE)  # [K=2, B=256]
    td = torch.arange(1.0, 513.0, device=DEVICE).view(2, 256)
    buf.update_priorities(slots, td)
    p = buf.priority.cpu() ** (1 / buf.alpha) - buf.eps
    torch.testing.assert_close(p[0, [5, 9]], torch.tensor([255.0, 256.0], dtype=p.dtype))
    torch.testing.assert_close(p[1, 3], torch.tensor(512.0, dtype=p.dtype))


@pytest.mark.parametrize("n_step", [1, 3])
def test_a_device_buffer_stores_and_draws_what_a_cpu_buffer_does(n_step):
    """Rows, n-step columns, prioritized draws and their weights: a buffer on the device against
    the CPU's numpy and compiled paths, from the same random numbers, over several ring wraps."""
    cpu, dev = (prioritized_for_random_steps(64, n_step, device=d) for d in ("cpu", DEVICE))
    gen = np.random.default_rng(1)
    for t, step in enumerate(random_steps(200), 1):
        cpu.add(*step)
        dev.add(*step)
        if t % 3 == 0 and cpu.sampleable:
            td = torch.from_numpy(gen.lognormal(0.0, 2.0, (2, 2, 16)).astype(np.float32))
            a, b = (buf.sample(batch_size=16, count=2, beta=0.5) for buf in (cpu, dev))
            assert torch.equal(a.indices.cpu(), b.indices.cpu())
            torch.testing.assert_close(a.weights, b.weights.cpu(), rtol=1e-6, atol=0)
            for field in ("obs", "actions", "returns", "next_obs", "discounts"):
                torch.testing.assert_close(getattr(a, field), getattr(b, field).cpu())
            for j in range(2):
                cpu.update_priorities(a.indices[j], td[j])
                dev.update_priorities(b.indices[j], td[j].to(dev.device))


def test_an_export_on_the_device_races_on_the_cpu_and_verifies_on_the_device(tmp_path):
    """Four tied Fork trials, 2 finalists: with --device DEVICE the race runs on the CPU (a few
    seeds of a small network are faster there) and gives exactly the race a CPU export gives;
    the finalists are verified on the device."""
    from tests.test_export import QUICK_FORK, export, finished_study

    lucky = QUICK_FORK.replace(termination_penalty=10.0)
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    penalty = optuna.distributions.FloatDistribution(-10.0, 10.0)
    trials = [(c, 3.0) for c in (lucky, lucky, QUICK_FORK, QUICK_FORK)]
    finished_study(url, "fork", "termination_penalty", penalty, trials)
    args = ["--storage", url, "--study-name", "fork", "--episodes", "5", "--seeds", "2"]
    args += ["--race-seeds", "2", "--finalists", "2"]
    races, outputs = [], []
    for i, device in enumerate(("cpu", DEVICE)):
        out = tmp_path / f"{i}-{device}"
        done = export(*args, "--device", device, "--out", str(out))
        assert done.returncode == 0, done.stderr
        race = json.loads((out / "race.json").read_text())
        for row in race:  # everything but how long each retrain took
            assert row.pop("retrain_seconds") > 0
        races.append(race)
        outputs.append(done.stdout)
    assert races[0] == races[1]
    if DEVICE == "cuda":
        assert "retraining on CUDA" in outputs[1]
        assert "racing them first on the CPU" in outputs[1]
        final = json.loads((out / "best" / "verification.json").read_text())
        assert final["per_seed_mean"] == [3.0, 3.0]


def test_train_on_a_gpu_by_default_says_when_the_cpu_is_likely_faster(tmp_path):
    """tuner.train with --device auto takes CUDA where there is one; for a few seeds it adds that
    the CPU is often faster (one seed of the default pick: 6.8 s on an H200, 3.5 s on 2 cores)."""
    import subprocess
    import sys

    from tuner.config import save_config

    save_config(FAST.replace(total_steps=300, eval_every=300), tmp_path / "fast.yaml")
    cmd = [sys.executable, "-m", "tuner.train", str(tmp_path / "fast.yaml"), "--out", str(tmp_path)]
    few = subprocess.run([*cmd, "--seeds", "2"], capture_output=True, text=True, timeout=300)
    many = subprocess.run([*cmd, "--seeds", "8"], capture_output=True, text=True, timeout=300)
    assert few.returncode == many.returncode == 0, few.stderr + many.stderr
    hint = "often train faster on the CPU: --device cpu"
    assert (hint in few.stdout) == torch.cuda.is_available()
    assert hint not in many.stdout


@FEATURES
def test_gradient_steps_replayed_as_a_cuda_graph_train_the_same_weights_as_op_by_op(
    monkeypatch, extra
):
    """The captured graph runs the same kernels on the same inputs: the same weights, TD errors
    (prioritized replay's priorities) and evaluations, to the bit, as steps run op by op."""
    made = []

    class Recorded(dqn.GradientStepGraph):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dqn, "GradientStepGraph", Recorded)
    config = FAST.replace(total_steps=1500, eval_every=500, hidden_sizes=(32, 32), **extra)
    graphed = train(config, seeds=2, device=DEVICE)
    monkeypatch.setattr(dqn, "CUDA_GRAPHS", False)
    eager = train(config, seeds=2, device=DEVICE)
    if DEVICE == "cuda":
        assert len(made) == 1 and made[0].graph is not None  # captured once, then replayed
        assert made[0].calls == graphed.gradient_steps > made[0].WARM_UP
    assert graphed.gradient_steps == eager.gradient_steps > 0
    assert torch.equal(graphed.network.params, eager.network.params)
    assert np.array_equal(graphed.eval_returns, eager.eval_returns)


def test_a_small_device_network_acts_from_a_host_copy_and_a_large_one_on_the_device():
    small = BatchedQNetwork([0, 1], 4, 2, (32, 32), device=DEVICE)
    large = BatchedQNetwork(list(range(64)), 4, 2, (256, 256), device=DEVICE)
    assert dqn.acts_on_host(small, rows=1) == (DEVICE == "cuda")
    assert not dqn.acts_on_host(large, rows=1)
    obs = np.random.default_rng(0).normal(size=(2, 100, 4)).astype(np.float32)
    assert np.array_equal(small.host_copy().greedy(obs), small.greedy(obs))


def test_the_best_evaluations_weights_are_kept_on_the_device_and_saved_from_there(tmp_path):
    """keep_weights: best copies a seed's rows on the device at each evaluation that matches or
    beats its best; the checkpoint holds those rows, and the step they are from."""
    trained = train(LEARNS.replace(keep_weights="best"), seeds=3, device=DEVICE)
    assert trained.best_network.params.device.type == torch.device(DEVICE).type
    curves = trained.eval_returns.T
    latest = [max(i for i, r in enumerate(c) if r == c.max()) for c in curves]
    assert trained.best_steps == [trained.eval_steps[i] for i in latest]
    paths = save_checkpoints(trained, tmp_path)
    for k, path in enumerate(paths):
        data = torch.load(path, map_location="cpu", weights_only=True)
        assert data["step"] == trained.best_steps[k]
        kept = trained.best_network.weights[0][k].cpu()
        assert torch.equal(data["weights"]["layers.0.weight"], kept)
