from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from tests.commands import in_process
from tests.toy_envs import FORK
from tuner.config import DQNConfig, load_config, save_config
from tuner.dqn import train
from tuner.train import main as train_main

TINY = DQNConfig(
    total_steps=400,
    learning_starts=100,
    batch_size=16,
    hidden_sizes=(16,),
    replay_size=1000,
    eval_every=200,
    eval_episodes=2,
)


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_train_writes_checkpoints_curve_and_plot(tmp_path):
    save_config(TINY, tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    done = run(
        str(tmp_path / "tiny.yaml"),
        "--seeds",
        "2",
        "--steps",
        "400",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "seed" in done.stdout and "mean" in done.stdout and "env steps/s" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml",
        "curve.csv",
        "curve.png",
        "seed-0.pt",
        "seed-1.pt",
    ]
    assert load_config(out / "config.yaml") == TINY
    rows = list(csv.reader((out / "curve.csv").read_text().splitlines()))
    assert rows[0] == ["step", "seed_0", "seed_1", "mean"] and [r[0] for r in rows[1:]] == [
        "200",
        "400",
    ]
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    warm = run(
        str(tmp_path / "tiny.yaml"),
        "--steps",
        "200",
        "--init-from",
        str(out / "seed-1.pt"),
        "--out",
        str(tmp_path / "warm"),
    )
    assert warm.returncode == 0, warm.stderr


def test_keep_best_says_where_each_checkpoints_weights_are_from(tmp_path):
    """With keep_weights: best the command names, per seed, the env step of the evaluation its
    checkpoint's weights come from: the latest step with that seed's best return in curve.csv,
    and the step saved in the checkpoint."""
    # seed 3 peaks at env step 300 (172 over 2 episodes) and ends at 9.5: its checkpoint is not
    # its last step's
    config = TINY.replace(
        keep_weights="best", total_steps=600, eval_every=100, learning_rate=3e-3, seed=2
    )
    save_config(config, tmp_path / "best.yaml")
    out = tmp_path / "out"
    done = run(str(tmp_path / "best.yaml"), "--seeds", "2", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [
        [float(x) for x in r] for r in csv.reader((out / "curve.csv").read_text().splitlines()[1:])
    ]
    steps = []
    for column, seed in ((1, 2), (2, 3)):
        best = max(r[column] for r in rows)
        steps.append(int(max(r[0] for r in rows if r[column] == best)))
        assert torch.load(out / f"seed-{seed}.pt", weights_only=True)["step"] == steps[-1]
    assert min(steps) < 600
    said = f"best evaluation (env steps {steps[0]:,}, {steps[1]:,})"
    assert said in done.stdout
    # with a recheck of ties at the best, the same training (the same curve) and it says so
    save_config(config.replace(recheck_episodes=3), tmp_path / "rechecked.yaml")
    again = run(
        str(tmp_path / "rechecked.yaml"), "--seeds", "2", "--device", "cpu", "--out", str(out / "r")
    )
    assert again.returncode == 0, again.stderr
    assert (out / "r" / "curve.csv").read_text() == (out / "curve.csv").read_text()
    assert "; ties rechecked on 3 more episodes)" in again.stdout


def test_a_seed_that_diverges_is_reported_and_the_other_seeds_keep_their_results(tmp_path):
    """Unstable's observations overflow the network on seeds 1,000,002 and 1,000,003 (MSE, so the
    updates turn non-finite at env step 133): the run goes on without them, their rows say where
    they diverged, they get no checkpoint, and the others are the seeds trained alone, to the bit."""
    config = FORK.replace(
        env="tests.toy_envs:Unstable-v0",
        total_steps=1000,
        learning_rate=1e-2,
        batch_size=32,
        eval_episodes=2,
        eval_every=500,
        loss="mse",
        seed=1_000_000,
    )
    save_config(config, tmp_path / "unstable.yaml")
    out = tmp_path / "out"
    done = run(
        str(tmp_path / "unstable.yaml"), "--seeds", "4", "--device", "cpu", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "1000002  diverged at env step 133" in done.stdout
    assert "1000003  diverged at env step 133" in done.stdout
    assert "(of the 2 seeds that trained)" in done.stdout
    assert "training diverged on 2 of 4 seeds" in done.stdout
    kept = sorted(p.name for p in out.glob("seed-*.pt"))
    assert kept == ["seed-1000000.pt", "seed-1000001.pt"]
    alone = train(config.replace(seed=1_000_001), seeds=1, device="cpu").network.seed_state(0)
    saved = torch.load(out / "seed-1000001.pt", weights_only=True)["weights"]
    assert all(torch.equal(saved[name], alone[name]) for name in alone)
    with open(out / "curve.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == [f"seed_{s}" for s in range(1_000_000, 1_000_004)] + ["mean"]
    for row in rows[1:]:  # evaluations at 500 and 1000: after the two diverged
        assert row[3:5] == ["nan", "nan"]
        assert float(row[5]) == pytest.approx((float(row[1]) + float(row[2])) / 2, abs=0.01)

    every = config.replace(seed=1_000_002)  # seeds 1,000,002 and 1,000,003 alone
    save_config(every, tmp_path / "every.yaml")
    failed = run(
        str(tmp_path / "every.yaml"), "--seeds", "2", "--device", "cpu", "--out", str(out / "x")
    )
    assert failed.returncode == 2 and not (out / "x").exists()
    assert "training diverged on every seed (seed 1000002 at env step 133, seed 1000003" in (
        failed.stderr
    )


@pytest.mark.parametrize(
    ("content", "extra", "says"),
    [
        (None, [], "no such file"),
        ("env: CartPole-v1\nbatch_size: [3\n", [], "not valid YAML"),
        ("env: Pendulum-v1\n", [], "needs Discrete actions"),
        ("env: NoSuchEnv-v0\n", [], "cannot make environment"),
        ("learnin_rate: 0.1\n", [], "did you mean 'learning_rate'"),
        ("gamma: 3\n", [], "gamma=3.0 is out of range"),
        ("env: CartPole-v1\n", ["--steps", "0"], "--steps: total_steps=0 is out of range"),
        ("env: CartPole-v1\n", ["--init-from", "nope.pt"], "no such checkpoint"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(
    tmp_path, monkeypatch, capsys, content, extra, says
):
    config = tmp_path / "c.yaml"
    if content is not None:
        config.write_text(content)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    code, err = in_process(train_main, [str(config), "--out", str(out), *extra], capsys)
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_python_m_tuner_train_on_bad_input_says_one_sentence_and_exits_2(tmp_path):
    done = run(str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert "no such file" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
