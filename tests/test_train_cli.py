from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from tuner.config import DQNConfig, load_config, save_config

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


@pytest.mark.parametrize(
    ("content", "extra", "says"),
    [
        (None, [], "no such file"),
        ("env: CartPole-v1\nbatch_size: [3\n", [], "not valid YAML"),
        ("env: Pendulum-v1\n", [], "needs Discrete actions"),
        ("env: NoSuchEnv-v0\n", [], "cannot make environment"),
        ("learnin_rate: 0.1\n", [], "did you mean 'learning_rate'"),
        ("gamma: 3\n", [], "gamma=3.0 is out of range"),
        ("env: CartPole-v1\n", ["--steps", "0"], "total_steps=0"),
        ("env: CartPole-v1\n", ["--init-from", "nope.pt"], "no such checkpoint"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(tmp_path, content, extra, says):
    config = tmp_path / "c.yaml"
    if content is not None:
        config.write_text(content)
    out = tmp_path / "out"
    done = run(str(config), "--out", str(out), *extra, cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()
