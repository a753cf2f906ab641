"""python -m tuner.export on a small real study: files, verification counts, artifacts, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from tests.commands import in_process
from tests.processes import running
from tests.test_study import TINY
from tests.toy_envs import FORK
from tuner.config import DQNConfig, load_config
from tuner.dqn import retrain, train
from tuner.export import (
    FRESH_SEEDS,
    Verified,
    choose_trials,
    contenders,
    expected_aggregate,
    find_study,
    parse_args,
    pick_best,
    seed_curves,
    split,
    success_interval,
)
from tuner.export import main as export_main
from tuner.study import TIE

PNG = b"\x89PNG\r\n\x1a\n"
QUICK_FORK = FORK.replace(total_steps=1000, learning_rate=1e-2, batch_size=32, eval_episodes=2)
"""Learns Fork's 3-step policy in about a second."""


def export(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuner.export", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """A finished 6-trial study, made once by tuner.run; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("study")
    (root / "tiny.yaml").write_text(TINY)
    study = str(root / "tiny.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "tuner.run", "--study", study, "--trials", "6", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def copy(study_dir, tmp_path) -> Path:
    shutil.copy(study_dir / "tiny.yaml", tmp_path / "tiny.yaml")
    shutil.copy(study_dir / "tiny.db", tmp_path / "tiny.db")
    return tmp_path


def load(root: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{root / 'tiny.db'}")


def snapshot(root: Path) -> list[tuple]:
    """Everything about the trials except their system attrs (where artifacts are listed)."""
    return [
        (t.number, t.state, t.value, t.params, t.user_attrs, t.intermediate_values)
        for t in load(root).get_trials()
    ]


def test_export_writes_a_trainable_best_config_verified_on_fresh_seeds(copy):
    before = snapshot(copy)
    done = export("--study", str(copy / "tiny.yaml"), "--seeds", "3", "--contenders", "1")
    assert done.returncode == 0, done.stderr
    out = copy / "tiny"
    best = max(
        (t for t in load(copy).get_trials() if t.state == TrialState.COMPLETE),
        key=lambda t: t.value,
    )
    if not torch.cuda.is_available():
        assert "no CUDA GPU found; retraining on the CPU" in done.stdout

    config = load_config(out / "best.yaml")
    assert config.learning_rate == best.params["learning_rate"]
    assert config.total_steps == 1500 and config.seed == FRESH_SEEDS

    summary = json.loads((out / "best" / "verification.json").read_text())
    assert summary["trial"] == best.number and summary["episodes_per_seed"] == 100
    assert summary["seeds"] == [FRESH_SEEDS, FRESH_SEEDS + 1, FRESH_SEEDS + 2]
    assert len(summary["per_seed_mean"]) == 3 and summary["study_score"] == best.value
    assert summary["successes"] == sum(r >= 475 for r in summary["per_seed_mean"])
    low, high = summary["success_rate_95"]
    assert [low, high] == [round(x, 3) for x in success_interval(summary["successes"], 3)]
    # each fresh seed's learning curve, as curve.csv holds it: one row per seed
    rows = list(csv.reader((out / "best" / "curve.csv").open()))[1:]
    assert summary["eval_steps"] == [int(row[0]) for row in rows] and len(rows) >= 2
    assert summary["eval_curve"] == [[float(row[1 + k]) for row in rows] for k in range(3)]
    assert f"solves with probability {low:.2f}-{high:.2f}, 95% Wilson interval" in done.stdout
    for seed in summary["seeds"]:
        assert (out / "best" / f"seed-{seed}.pt").is_file()

    report = (out / "report.md").read_text()
    assert f"trial {best.number}" in report and "| seed | mean return |" in report
    assert report.count(f"| {FRESH_SEEDS}") == 1 and "learning_rate:" in report
    pngs = [out / "best" / "curve.png", *sorted((out / "plots").glob("*.png"))]
    assert {p.stem for p in pngs} >= {"curve", "history", "importances", "slices", "intermediate"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG and matplotlib.image.imread(png).shape[0] > 100
        assert f"]({png.relative_to(out)})" in report

    study = load(copy)
    trial = study.trials[best.number]
    names = {
        m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    }
    assert {"report.md", "curve.png", "verification.json", "history.png"} <= names
    study_names = {m.filename for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert {"report.md", "history.png"} <= study_names
    assert snapshot(copy) == before  # only artifacts were added

    config_file, retrain_dir = str(out / "best.yaml"), str(copy / "retrain")
    retrain = subprocess.run(
        [sys.executable, "-m", "tuner.train", config_file, "--steps", "500", "--out", retrain_dir],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retrain.returncode == 0, retrain.stderr


def test_keep_best_plays_and_saves_each_seeds_weights_from_its_best_evaluation(copy):
    trial = max(
        (t for t in load(copy).get_trials() if t.state == TrialState.COMPLETE),
        key=lambda t: t.value,
    )
    args = ["--study", str(copy / "tiny.yaml"), "--trial", str(trial.number), "--seeds", "2"]
    done = export(*args, "--keep", "best", "--out", str(copy / "best"))
    assert done.returncode == 0, done.stderr
    folder = copy / "best" / f"trial-{trial.number}"
    summary = json.loads((folder / "verification.json").read_text())
    assert summary["keep_weights"] == "best"
    for k, curve in enumerate(summary["eval_curve"]):
        latest_best = max(i for i, r in enumerate(curve) if r == max(curve))
        assert summary["kept_steps"][k] == summary["eval_steps"][latest_best]
    # the config written keeps the best weights too, so tuner.train reproduces the export
    config = load_config(copy / "best" / f"trial-{trial.number}.yaml")
    assert config.keep_weights == "best"
    again = retrain(config, summary["seeds"], "cpu", episodes=100, progress=False)
    assert again.returns.mean(1).round(2).tolist() == summary["per_seed_mean"]
    state = torch.load(folder / f"seed-{summary['seeds'][1]}.pt", weights_only=True)
    assert state["step"] == summary["kept_steps"][1]
    assert torch.equal(state["weights"]["layers.0.weight"], again.result.kept.weights[0][1])
    report = (copy / "best" / "report.md").read_text()
    assert "with the weights of its best training evaluation" in report
    assert "weights from step |" in report
    # --recheck: ties at a seed's best told apart by more episodes; the config written says so
    rechecked = export(*args, "--keep", "best", "--recheck", "3", "--out", str(copy / "re"))
    assert rechecked.returncode == 0, rechecked.stderr
    config = load_config(copy / "re" / f"trial-{trial.number}.yaml")
    assert config.recheck_episodes == 3
    summary = json.loads((copy / "re" / f"trial-{trial.number}" / "verification.json").read_text())
    again = retrain(config, summary["seeds"], "cpu", episodes=100, progress=False)
    assert again.returns.mean(1).round(2).tolist() == summary["per_seed_mean"]
    for k, curve in enumerate(summary["eval_curve"]):  # still one of the seed's best
        assert curve[summary["eval_steps"].index(summary["kept_steps"][k])] == max(curve)
    assert "rechecked on 3 more episodes" in (copy / "re" / "report.md").read_text()
    # the default keeps the trial's own choice: final weights, judged on the same seeds
    final = export(*args, "--out", str(copy / "final"))
    assert final.returncode == 0, final.stderr
    summary = json.loads(
        (copy / "final" / f"trial-{trial.number}" / "verification.json").read_text()
    )
    assert summary["keep_weights"] == "final" and set(summary["kept_steps"]) == {1500}
    # a study file without export_recheck leaves each trial's own (the trials did not recheck)
    assert load_config(copy / "final" / f"trial-{trial.number}.yaml").recheck_episodes == 0


def test_steps_retrains_longer_than_the_trial_and_says_so(copy):
    trial = max(
        (t for t in load(copy).get_trials() if t.state == TrialState.COMPLETE),
        key=lambda t: t.value,
    )
    out = copy / "longer"
    args = ["--study", str(copy / "tiny.yaml"), "--trial", str(trial.number), "--seeds", "2"]
    done = export(*args, "--steps", "2500", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 fresh seeds x 2,500 steps" in done.stdout
    summary = json.loads((out / f"trial-{trial.number}" / "verification.json").read_text())
    assert summary["eval_steps"] == [500, 1000, 1500, 2000, 2500]
    # the config written trains as long, so tuner.train reproduces the export
    config = load_config(out / f"trial-{trial.number}.yaml")
    assert config.total_steps == 2500 and trial.user_attrs["config"]["total_steps"] == 1500
    report = (out / "report.md").read_text()
    assert "2,500 env steps each (--steps; the trial trained 1,500)" in report


def test_the_study_files_export_steps_and_recheck_are_the_defaults_and_flags_override_them(
    copy,
):
    study = load(copy)
    trial = next(t for t in study.get_trials() if t.state == TrialState.COMPLETE)
    assert trial.user_attrs["config"]["recheck_episodes"] == 0  # the trials did not recheck
    # as a study created from a file with budget.export_steps and export_recheck records them
    recorded = TINY.replace(
        "eval_episodes: 2}", "eval_episodes: 2, export_steps: 2000, export_recheck: 3}"
    )
    study.set_user_attr("study_file", recorded)
    url = ["--storage", f"sqlite:///{copy / 'tiny.db'}", "--study-name", "tiny"]
    args = [*url, "--trial", str(trial.number), "--seeds", "2", "--episodes", "5"]
    done = export(*args, "--out", str(copy / "file"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(
        (copy / "file" / f"trial-{trial.number}" / "verification.json").read_text()
    )
    assert summary["eval_steps"][-1] == 2000 and summary["recheck_episodes"] == 3
    assert (
        "(the study file's budget.export_steps; the trial trained 1,500)"
        in (copy / "file" / "report.md").read_text()
    )
    assert load_config(copy / "file" / f"trial-{trial.number}.yaml").recheck_episodes == 3
    # a study recorded before the key existed takes it from the study file given
    study.set_user_attr("study_file", TINY)
    (copy / "tiny.yaml").write_text(
        recorded.replace("2000, export_recheck: 3}", "2500, export_recheck: 4}")
    )
    mine = ["--study", str(copy / "tiny.yaml"), *args[4:]]
    done = export(*mine, "--out", str(copy / "given"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(
        (copy / "given" / f"trial-{trial.number}" / "verification.json").read_text()
    )
    assert summary["eval_steps"][-1] == 2500 and summary["recheck_episodes"] == 4
    assert load_config(copy / "given" / f"trial-{trial.number}.yaml").recheck_episodes == 4
    done = export(*args, "--steps", "1500", "--recheck", "5", "--out", str(copy / "flag"))
    assert done.returncode == 0, done.stderr
    summary = json.loads(
        (copy / "flag" / f"trial-{trial.number}" / "verification.json").read_text()
    )
    assert summary["eval_steps"][-1] == 1500 and summary["recheck_episodes"] == 5
    assert "env steps each, in one batched run" in (copy / "flag" / "report.md").read_text()
    assert load_config(copy / "flag" / f"trial-{trial.number}.yaml").recheck_episodes == 5


def test_top_k_and_a_chosen_trial(copy):
    done = export("--study", str(copy / "tiny.yaml"), "--top", "2", "--seeds", "2")
    assert done.returncode == 0, done.stderr
    ranked = sorted(
        (t for t in load(copy).get_trials() if t.state == TrialState.COMPLETE),
        key=lambda t: (-t.value, t.number),
    )
    out = copy / "tiny"
    for rank, trial in enumerate(ranked[:2], start=1):
        summary = json.loads((out / f"top-{rank}" / "verification.json").read_text())
        assert summary["trial"] == trial.number
        assert load_config(out / f"top-{rank}.yaml").batch_size == trial.params["batch_size"]
    assert "| top-2 |" in (out / "report.md").read_text()

    chosen = ranked[-1].number
    done = export(
        "--study",
        str(copy / "tiny.yaml"),
        "--trial",
        str(chosen),
        "--seeds",
        "1",
        "--out",
        str(copy / "chosen"),
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((copy / "chosen" / f"trial-{chosen}" / "verification.json").read_text())["trial"]
        == chosen
    )
    assert (copy / "chosen" / f"trial-{chosen}.yaml").is_file()


def finished_study(
    url: str, name: str, param: str, distribution, trials: list[tuple[DQNConfig, float]]
) -> None:
    """A study of complete trials with these configs and values (trained on seeds 0 and 1);
    `param` is the config field they differ in, recorded as the trial's one param."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    for config, value in trials:
        study.add_trial(
            optuna.trial.create_trial(
                params={param: getattr(config, param)},
                distributions={param: distribution},
                value=value,
                user_attrs={"config": config.to_dict(), "seeds": [0, 1]},
            )
        )


def test_trials_tied_at_the_top_are_all_verified_and_the_best_verified_is_exported(tmp_path):
    """Two trials on the Fork toy env: the one the study ranked first rewards termination, so
    it learns to end every episode at once (return 1); the runner-up penalises it and learns to
    last the 3 steps. They are within 1%, so both are verified and the runner-up is exported."""
    good = QUICK_FORK
    lucky = good.replace(termination_penalty=10.0)
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    penalty = optuna.distributions.FloatDistribution(-10.0, 10.0)
    trials = [(lucky, 3.0), (good, 3.0 * (1 - TIE / 2))]
    finished_study(url, "fork", "termination_penalty", penalty, trials)
    out = tmp_path / "out"
    done = export(
        "--storage",
        url,
        "--study-name",
        "fork",
        "--seeds",
        "2",
        "--episodes",
        "5",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "2 trials are within 1% of the best score (trial 0: 3.0, trial 1: 3.0)" in done.stdout

    kept = json.loads((out / "best" / "verification.json").read_text())
    dropped = json.loads((out / "trial-0" / "verification.json").read_text())
    assert kept["trial"] == 1 and kept["per_seed_mean"] == [3.0, 3.0]
    assert dropped["trial"] == 0 and dropped["per_seed_mean"] == [1.0, 1.0]
    assert dropped["likely_false_positive"] and not kept["likely_false_positive"]
    assert kept["seeds"] == dropped["seeds"]  # compared on the same fresh seeds
    assert load_config(out / "best.yaml").termination_penalty == -5.0
    assert load_config(out / "trial-0.yaml").termination_penalty == 10.0
    report = (out / "report.md").read_text()
    assert "trial 1, the best verified of the 2 trials that tied" in report
    assert "| best | 1 | 3.0 | 3.0 |" in report and "| trial-0 | 0 | 3.0 | 1.0 |" in report
    assert "best.yaml is trial 1" in done.stdout
    # the runner-up's table and its false-positive warning come first, the best's right before
    # the verdict
    runner_up, best = done.stdout.index("trial-0 (trial 0)"), done.stdout.index("best (trial 1)")
    assert runner_up < best < done.stdout.index("best.yaml is trial 1")
    # two ties are few (tuner.study.FEW_TIES): the study itself is in doubt, whatever verified;
    # named by its storage, its file is unknown to the export
    rerun = (
        f"python -m tuner.run --study FILE --storage {url} --study-name fork-seed100 "
        "--sampler-seed 100 --trials 2"
    )
    assert "only 2 trials tie at the best score: of the CartPole studies measured" in done.stdout
    assert done.stdout.rstrip().endswith(f"the better next step: {rerun}")
    assert "**Caution:** Only 2 trials tie at the best score" in report
    assert f"the better next step: `{rerun}`" in report

    one = export(
        "--storage",
        url,
        "--study-name",
        "fork",
        "--seeds",
        "1",
        "--episodes",
        "5",
        "--contenders",
        "1",
        "--out",
        str(tmp_path / "one"),
    )
    assert one.returncode == 0, one.stderr
    assert json.loads((tmp_path / "one" / "best" / "verification.json").read_text())["trial"] == 0


def test_more_ties_than_finalists_race_on_seeds_of_their_own_first(tmp_path):
    """Four tied trials on Fork, the two the study ranked first rewarding termination (they learn
    to end every episode at once, return 1). With 2 finalists the race, on its own fresh seeds,
    sends the two that last the 3 steps on, and only they are verified in full."""
    good = QUICK_FORK
    lucky = good.replace(termination_penalty=10.0)
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    penalty = optuna.distributions.FloatDistribution(-10.0, 10.0)
    trials = [(c, 3.0) for c in (lucky, lucky, good, good)]
    finished_study(url, "fork", "termination_penalty", penalty, trials)
    out = tmp_path / "out"
    args = ["--storage", url, "--study-name", "fork", "--episodes", "5", "--out", str(out)]
    done = export(*args, "--seeds", "2", "--race-seeds", "2", "--finalists", "2")
    assert done.returncode == 0, done.stderr
    assert "racing them first" in done.stdout and "each retrained on 2 fresh seeds" in done.stdout

    raced = json.loads((out / "race.json").read_text())
    assert [r["trial"] for r in raced] == [2, 3, 0, 1]  # the study's order breaks race ties
    assert [r["per_seed_mean"] for r in raced] == [[3.0, 3.0]] * 2 + [[1.0, 1.0]] * 2
    final = json.loads((out / "best" / "verification.json").read_text())
    assert final["trial"] == 2 and final["per_seed_mean"] == [3.0, 3.0]
    assert not set(final["seeds"]) & set(raced[0]["seeds"])  # the race's seeds are its own
    assert min(final["seeds"] + raced[0]["seeds"]) >= FRESH_SEEDS
    assert (out / "trial-3" / "verification.json").is_file()
    assert not (out / "trial-0").exists() and not (out / "trial-1").exists()
    assert load_config(out / "best.yaml").termination_penalty == -5.0
    report = (out / "report.md").read_text()
    assert "the best verified of the 4 trials that tied in the study" in report
    assert "## The race" in report and "| 3 | 0 | 1.0 | 1.0 | 1.0 | - | no |" in report
    assert "of the 4 trials that tied in the study, 2 went on from the race," in done.stdout

    no_race = export(*args, "--seeds", "1", "--race-seeds", "0", "--out", str(tmp_path / "all"))
    assert no_race.returncode == 0, no_race.stderr
    assert "racing" not in no_race.stdout and not (tmp_path / "all" / "race.json").exists()
    assert all((tmp_path / "all" / name).is_dir() for name in ("trial-0", "trial-1", "trial-3"))


def test_worker_processes_verify_to_the_same_bits_as_one_at_a_time(tmp_path):
    """Three tied CartPole trials (learning rates 1e-3, 3e-3, 1e-2), raced and verified with
    --jobs 1 and with --jobs 2: every return and every checkpoint's weights are equal."""
    base = DQNConfig(
        total_steps=1500, learning_starts=200, batch_size=32, hidden_sizes=(32,), eval_every=750,
        eval_episodes=2, epsilon_decay_steps=800, target_update_interval=100,
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    configs = [base.replace(learning_rate=x) for x in (1e-3, 3e-3, 1e-2)]
    finished_study(url, "cp", "learning_rate", lr, [(c, 100.0) for c in configs])
    args = ["--storage", url, "--study-name", "cp", "--episodes", "3", "--seeds", "2"]
    race = ["--race-seeds", "2", "--finalists", "2"]
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}"
        done = export(*args, *race, "--jobs", jobs, "--out", str(out))
        assert done.returncode == 0, done.stderr
        runs[jobs] = out
    assert "3 configs x 2 fresh seeds x 1,500 steps, 2 at a time" in done.stdout
    assert "the seeds of the last config are split across the workers" in done.stdout  # the race
    one, two = runs["1"], runs["2"]

    def summaries(path: Path) -> list[dict]:  # race.json's rows, or one verification.json
        data = json.loads(path.read_text())
        rows = data if isinstance(data, list) else [data]
        return [{k: v for k, v in r.items() if k != "retrain_seconds"} for r in rows]

    assert summaries(one / "race.json") == summaries(two / "race.json")
    checkpoints = sorted(p.relative_to(one) for p in one.rglob("seed-*.pt"))
    assert len(checkpoints) >= 4 and checkpoints == sorted(
        p.relative_to(two) for p in two.rglob("seed-*.pt")
    )
    for path in checkpoints:
        a, b = (torch.load(root / path, weights_only=True)["weights"] for root in (one, two))
        assert all(torch.equal(a[name], b[name]) for name in a)
    verifications = sorted(p.relative_to(one) for p in one.rglob("verification.json"))
    assert len(verifications) >= 2
    for path in verifications:
        a, b = (summaries(root / path) for root in (one, two))
        assert a == b


def test_configs_left_over_after_the_last_full_round_of_workers_share_them():
    ten = list(range(100, 110))
    # 3 finalists on 2 cores: the costliest first, the cheapest in two runs of 5 seeds
    assert split([20.0, 5.0, 30.0], ten, jobs=2) == [(2, ten), (0, ten), (1, ten[:5]), (1, ten[5:])]
    assert split([1.0] * 4, ten, jobs=2) == [(i, ten) for i in range(4)]  # equal: as given
    assert split([1.0], [7, 8, 9], jobs=4) == [(0, [7]), (0, [8]), (0, [9])]  # a seed a run
    many = split([1.0] * 3, ten, jobs=16)  # 5 runs of 2 seeds a config
    assert [len(seeds) for _, seeds in many] == [2] * 15
    assert [sorted(s for i, seeds in many if i == c for s in seeds) for c in range(3)] == [ten] * 3


def racing_export(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """tuner.export racing three long configs on 2 workers, started as a script's background job
    starts (SIGINT ignored); returns it and its workers, once they train."""
    long = DQNConfig(total_steps=500_000, learning_starts=200, hidden_sizes=(32,), eval_every=0)
    url = f"sqlite:///{tmp_path / 'long.db'}"
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    configs = [long.replace(learning_rate=x) for x in (1e-3, 2e-3, 3e-3)]
    finished_study(url, "long", "learning_rate", lr, [(c, 100.0) for c in configs])
    cmd = [sys.executable, "-m", "tuner.export", "--storage", url, "--study-name", "long"]
    cmd += ["--finalists", "2", "--jobs", "2", "--out", str(tmp_path / "out")]
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore
    )
    for line in proc.stdout:
        if "2 at a time" in line:
            break
    time.sleep(3)  # the workers are training
    workers = [int(p) for p in subprocess.check_output(["pgrep", "-P", str(proc.pid)]).split()]
    assert len(workers) >= 2
    return proc, workers


def test_interrupting_workers_mid_race_exits_130_stops_them_and_writes_nothing(tmp_path):
    proc, workers = racing_export(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert "interrupted" in proc.stderr.read()
    assert not (tmp_path / "out").exists()
    time.sleep(1)
    assert not [pid for pid in workers if running(pid)]


def test_workers_of_a_killed_export_stop_mid_race(tmp_path):
    proc, workers = racing_export(tmp_path)
    proc.kill()  # SIGKILL: the parent cannot stop its workers; they must notice it is gone
    proc.wait(timeout=20)
    deadline = time.time() + 30
    while time.time() < deadline and any(map(running, workers)):
        time.sleep(0.5)
    left = [pid for pid in workers if running(pid)]
    for pid in left:  # they would train on through the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} still trained 30 s after their tuner.export was killed"
    assert not (tmp_path / "out").exists()


def test_when_no_finalist_solves_every_fresh_seed_reserves_from_the_race_are_verified(tmp_path):
    """Two tied trials on ForkGoal (solved at return 3). Trial 0 never learns (learning starts
    after its budget), so each seed plays whatever its initial weights prefer: with these
    fresh seeds it lasts the 3 steps on both race seeds and on neither verification seed.
    Trial 1 learns to last them on every seed. The race ties them and the study's order sends
    trial 0 on as the one finalist; it solves 0/2, so trial 1 is verified as a reserve, solves
    2/2 and becomes best.yaml. Without reserves trial 0 would have been exported."""
    good = QUICK_FORK.replace(env="tests.toy_envs:ForkGoal-v0")
    coin = good.replace(hidden_sizes=(8,), learning_starts=1000)
    url = f"sqlite:///{tmp_path / 'goal.db'}"
    starts = optuna.distributions.IntDistribution(0, 1000)
    finished_study(url, "goal", "learning_starts", starts, [(coin, 3.0), (good, 3.0)])
    args = ["--storage", url, "--study-name", "goal", "--episodes", "2", "--seeds", "2"]
    args += ["--race-seeds", "2", "--finalists", "1"]
    out = tmp_path / "out"
    done = export(*args, "--out", str(out))
    assert done.returncode == 0, done.stderr

    raced = json.loads((out / "race.json").read_text())
    assert [(r["trial"], r["per_seed_mean"]) for r in raced] == [(0, [3.0, 3.0]), (1, [3.0, 3.0])]
    dropped = json.loads((out / "trial-0" / "verification.json").read_text())
    assert dropped["per_seed_mean"] == [1.0, 1.0] and dropped["successes"] == 0
    best = json.loads((out / "best" / "verification.json").read_text())
    assert best["trial"] == 1 and best["successes"] == 2 and best["seeds"] == dropped["seeds"]
    assert "verifying reserve 1 of 1, the next from the race" in done.stdout
    assert "1 went on from the race, 1 more as reserves," in done.stdout
    report = (out / "report.md").read_text()
    assert "| 2 | 1 | 3.0 | 3.0 | 3.0 | 2/2 | as a reserve |" in report

    alone = export(*args, "--reserves", "0", "--out", str(tmp_path / "alone"))
    assert alone.returncode == 0, alone.stderr
    assert "reserve" not in alone.stdout
    kept = json.loads((tmp_path / "alone" / "best" / "verification.json").read_text())
    assert kept["trial"] == 0 and kept["successes"] == 0


def test_a_seed_that_diverges_fails_its_config_and_the_export_goes_on(tmp_path):
    """Two tied trials: trial 0 on Unstable, whose observations overflow a network on fresh
    seeds 1,000,002 and 1,000,003 (MSE, so the updates turn non-finite), and trial 1 on ForkGoal.
    Trial 0's other seeds train again without them, to the same weights as alone; the two count
    as failed, get no checkpoint, and trial 1 is exported."""
    good = QUICK_FORK.replace(env="tests.toy_envs:ForkGoal-v0", loss="mse")
    unstable = good.replace(env="tests.toy_envs:Unstable-v0")
    url = f"sqlite:///{tmp_path / 'unstable.db'}"
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    finished_study(url, "unstable", "learning_rate", lr, [(unstable, 3.0), (good, 3.0)])
    out = tmp_path / "out"
    done = export(
        "--storage", url, "--study-name", "unstable", "--seeds", "4", "--episodes", "2",
        "--race-seeds", "0", "--jobs", "1", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = FRESH_SEEDS
    again = "training its run's other 3 seed(s) again"
    assert f"seed {first + 2} diverged at env step 133; {again}" in done.stdout
    assert f"seed {first + 3} diverged at env step 133\n" in done.stdout

    failed = json.loads((out / "trial-0" / "verification.json").read_text())
    assert failed["diverged"] == {str(first + 2): 133, str(first + 3): 133}
    assert failed["successes"] == 2 and failed["seeds"] == list(range(first, first + 4))
    best = json.loads((out / "best" / "verification.json").read_text())
    assert best["trial"] == 1 and best["successes"] == 4 and best["diverged"] == {}
    kept = sorted(p.name for p in (out / "trial-0").glob("seed-*.pt"))
    assert kept == [f"seed-{first}.pt", f"seed-{first + 1}.pt"]
    alone = train(unstable.replace(seed=first + 1), seeds=1, device="cpu").network.seed_state(0)
    saved = torch.load(out / "trial-0" / kept[1], weights_only=True)["weights"]
    assert all(torch.equal(saved[name], alone[name]) for name in alone)
    report = (out / "report.md").read_text()
    assert f"| {first + 2} |" in report and "diverged at env step 133 |" in report
    assert "(2 diverged)" in report and "training diverged on 2 of them" in report
    curve = (out / "trial-0" / "curve.csv").read_text().splitlines()
    row = curve[1].split(",")  # step, the 4 seeds, their mean: no evaluation before step 133
    assert len(curve) == 2 and row[3:5] == ["nan", "nan"]
    assert float(row[5]) == pytest.approx((float(row[1]) + float(row[2])) / 2, abs=0.01)

    workers = export(
        "--storage", url, "--study-name", "unstable", "--seeds", "4", "--episodes", "2",
        "--race-seeds", "0", "--jobs", "2", "--out", str(tmp_path / "workers"),
    )  # fmt: skip
    assert workers.returncode == 0, workers.stderr
    assert "trial 0 (study score 3.0) trained in" in workers.stdout
    assert "solved 2/4 (2 diverged)" in workers.stdout
    for name in ("trial-0", "best"):
        a, b = (
            json.loads((root / name / "verification.json").read_text())
            for root in (out, tmp_path / "workers")
        )
        assert a.pop("retrain_seconds") >= 0 and b.pop("retrain_seconds") >= 0 and a == b


def test_storage_url_and_study_name_find_the_same_study(copy):
    done = export(
        "--storage",
        f"sqlite:///{copy / 'tiny.db'}",
        "--study-name",
        "tiny",
        "--seeds",
        "1",
        "--episodes",
        "5",
        "--out",
        str(copy / "byurl"),
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads((copy / "byurl" / "best" / "verification.json").read_text())["aggregate"]
        == "mean"
    )  # read from the study file the study recorded


def bad_cases(root: Path) -> list[tuple[list[str], str]]:
    study = str(root / "tiny.yaml")
    cases = [
        (["--study", study, "--trial", "99"], "has no trial 99"),
        (["--study", study, "--study-name", "nope"], "no study named 'nope'"),
        (["--study", str(root / "other.yaml")], "no such file"),
        (["--storage", f"sqlite:///{root / 'missing.db'}"], "no study database at"),
        (
            ["--storage", "postgresql://tuner@127.0.0.1:1/nothing", "--study-name", "tiny"],
            "cannot open storage",
        ),
        (["--study", study, "--seeds", "0"], "must be at least 1"),
        (["--study", study, "--race-seeds", "-1"], "must be 0 (none) or more"),
        (["--study", study, "--steps", "0"], "--steps=0 must be at least 1"),
        (["--study", study, "--reserves", "-1"], "--reserves=-1 must be 0 (none) or more"),
        (["--study", study, "--recheck", "-2"], "--recheck=-2 must be 0 (none) or more"),
        (["--study", study, "--device", "tpu"], "unknown device 'tpu'"),
        (["--study", study, "--tie", "1.5"], "--tie=1.5 must be a number in [0, 1)"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--study", study, "--device", "cuda"], "no CUDA GPU is available"))
    return cases


def test_bad_input_is_one_sentence_exit_2_and_changes_nothing(copy, capsys):
    before = snapshot(copy)
    files = sorted(p.name for p in copy.iterdir())
    for i, (args, says) in enumerate(bad_cases(copy)):
        args = [*args, "--out", str(copy / "out")]
        if i == 0:  # one case through a real `python -m tuner.export`
            done = export(*args)
            code, err = done.returncode, done.stderr
        else:
            code, err = in_process(export_main, args, capsys)
        assert code == 2, (args, err)
        assert says in err and err.count("\n") == 1, (args, err)
        assert not (copy / "out").exists()
    assert sorted(p.name for p in copy.iterdir()) == files
    assert snapshot(copy) == before


def test_a_study_without_a_complete_trial_and_a_pruned_trial_are_refused(copy):
    study = load(copy)
    pruned = [t.number for t in study.get_trials() if t.state != TrialState.COMPLETE]
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{copy / 'tiny.db'}")
    empty.enqueue_trial({"learning_rate": 1e-3})
    done = export("--storage", f"sqlite:///{copy / 'tiny.db'}", "--study-name", "empty")
    assert done.returncode == 2 and "has no complete trial yet" in done.stderr
    several = export("--storage", f"sqlite:///{copy / 'tiny.db'}")
    assert several.returncode == 2 and "holds 2 studies" in several.stderr
    if pruned:
        done = export("--study", str(copy / "tiny.yaml"), "--trial", str(pruned[0]))
        assert done.returncode == 2 and "not complete" in done.stderr
    assert yaml.safe_load((copy / "tiny.yaml").read_text())["env"] == "CartPole-v1"


def test_the_success_rate_interval_is_wilsons():
    # hand-computed with z = 1.96: 10/10 -> centre (1 + 0.19207) / 1.38415 = 0.86125, half
    # 1.41600 * sqrt(3.8415 / 400) = 0.13876; 8/10 -> 0.71674 -/+ 0.22658;
    # 0/5 -> 0.21724 -/+ 0.21724; 5/10 -> 0.5 -/+ 1.41600 * sqrt(0.025 + 0.0096037)
    # = 0.5 -/+ 0.26340
    for (k, n), want in {
        (10, 10): (0.7225, 1.0),
        (8, 10): (0.4902, 0.9433),
        (0, 5): (0.0, 0.4345),
        (5, 10): (0.2366, 0.7634),
    }.items():
        assert success_interval(k, n) == pytest.approx(want, abs=1e-4), (k, n)
    with pytest.raises(ValueError, match="n=0 seeds"):
        success_interval(0, 0)


def test_trials_within_one_percent_of_the_best_tie_with_it():
    study = optuna.create_study(direction="maximize")
    for value in (500.0, 496.0, 480.0, 500.0, 494.0):  # 1% below 500 is 495
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"config": {}}))
    assert [t.number for t in contenders(study)] == [0, 3, 1]
    assert [t.number for t in contenders(study, 2)] == [0, 3]


def test_a_wider_tie_takes_every_trial_within_that_fraction_also_at_negative_scores():
    """Acrobot's scores (steps to swing up, negated) have no cap to tie at: its study file widens
    the tie to 10%, which at a best of -87.3 reaches down to -96.03."""
    study = optuna.create_study(direction="maximize")
    for value in (-87.3, -96.1, -95.0, -87.9, -100.0):
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"config": {}}))
    assert [t.number for t in contenders(study)] == [0, 3]  # 1%: down to -88.17
    assert [t.number for t in contenders(study, tie=0.1)] == [0, 3, 2]
    assert [t.number for t in contenders(study, 2, tie=0.1)] == [0, 3]
    assert [t.number for t in contenders(study, tie=0.0)] == [0]


def test_the_tie_comes_from_the_study_file_the_study_recorded_unless_given(copy):
    study = load(copy)
    recorded = yaml.safe_load(study.user_attrs["study_file"])
    url = f"sqlite:///{copy / 'tiny.db'}"
    assert find_study(parse_args(["--storage", url]))[1].tie == TIE  # TINY says nothing
    recorded["objective"]["tie"] = 0.2
    study.set_user_attr("study_file", yaml.safe_dump(recorded))
    assert find_study(parse_args(["--storage", url]))[1].tie == 0.2
    assert find_study(parse_args(["--storage", url, "--tie", "0.05"]))[1].tie == 0.05
    assert find_study(parse_args(["--study", str(copy / "tiny.yaml")]))[1].tie == 0.2


def test_equal_scores_rank_the_trial_that_got_there_sooner_first():
    study = optuna.create_study(direction="maximize")
    curves = {  # trial number: its intermediate values at 4k, 8k, 12k
        0: (250.0, 480.0, 500.0),
        1: (500.0, 500.0, 500.0),  # held the top score from its first evaluation
        2: (300.0, 500.0, 500.0),
        3: (500.0, 500.0, 490.0),  # higher curve, lower score: the score still ranks first
    }
    for curve in curves.values():
        study.add_trial(
            optuna.trial.create_trial(
                value=curve[-1],
                intermediate_values=dict(zip((4000, 8000, 12000), curve)),
                user_attrs={"config": {}},
            )
        )
    assert [t.number for t in choose_trials(study, None, 4)] == [1, 2, 0, 3]
    assert [t.number for t in contenders(study, 2)] == [1, 2]


def test_a_tied_trial_without_evaluations_ranks_after_one_with_them_at_negative_rewards():
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=-100.0, user_attrs={"config": {}}))
    study.add_trial(
        optuna.trial.create_trial(
            value=-100.0,
            intermediate_values={4000: -300.0, 8000: -100.0},
            user_attrs={"config": {}},
        )
    )
    assert [t.number for t in choose_trials(study, None, 2)] == [1, 0]


def test_a_study_score_is_compared_with_what_a_trial_of_as_many_seeds_would_score():
    """The study's min came from 3 seeds, the verification's from 10: one weak seed in 10 lowers
    the min over all 10 to its score, but a 3-seed trial meets it in 3 of the 10 choose 3
    subsets only, so it would score 0.3 * 391.6 + 0.7 * 500 on average, within 10% of 500: not
    a false positive. Half the seeds failing is one."""
    assert expected_aggregate(np.array([500.0] * 9 + [391.6]), 3, "min") == pytest.approx(467.48)
    half = np.array([500.0] * 5 + [150.0] * 5)
    # all 3 seeds solve in C(5, 3) = 10 of the C(10, 3) = 120 subsets
    assert expected_aggregate(half, 3, "min") == pytest.approx((10 * 500 + 110 * 150) / 120)
    assert expected_aggregate(half, 3, "mean") == pytest.approx(325.0)
    many = np.arange(40.0)  # C(40, 3) = 9880 subsets: a fixed random 5000 of them
    assert expected_aggregate(many, 3, "min") == expected_aggregate(many, 3, "min")
    # the min of 3 of 1..40 averages 41 / 4: of 0..39, one less
    assert expected_aggregate(many, 3, "min") == pytest.approx(41 / 4 - 1, rel=0.05)

    def verified(per_seed: list[float]) -> Verified:
        trial = optuna.trial.create_trial(value=500.0, user_attrs={"seeds": [0, 1, 2]})
        returns = np.repeat(np.array(per_seed)[:, None], 100, axis=1)
        return Verified(trial, "best", None, list(range(10)), returns, 475.0, "min", None)

    one_weak, five_fail = verified([500.0] * 9 + [391.6]), verified(list(half))
    assert not one_weak.suspicious and five_fail.suspicious
    assert "a 3-seed trial would score 467.5 on these seeds" in one_weak.gap_line()
    assert "LIKELY FALSE POSITIVE" in five_fail.gap_line()
    assert "LIKELY FALSE POSITIVE" not in one_weak.gap_line()


def test_seed_curves_turn_evaluations_by_seed_and_write_null_after_a_seed_diverged():
    """Evaluations come as [evaluation, seed]; the JSON keeps [seed][evaluation], rounded to 0.01,
    and a diverged seed's NaN evaluations become null (JSON has no NaN)."""
    nan = float("nan")
    returns = np.array([[9.004, 21.5], [120.456, nan], [500.0, nan]])
    assert seed_curves(returns, 2) == [[9.0, 120.46, 500.0], [21.5, None, None]]
    assert seed_curves(returns.ravel(), 2) == seed_curves(returns, 2)  # flat input, same curves


def test_a_diverged_seed_never_counts_as_solved_and_ranks_its_config_below_any_without_one():
    """Scored by what its diverged network does, a seed could still reach the threshold (a
    constant action that happens to last): it is not a success, and a config with a diverged
    seed ranks below one without, whatever their scores."""
    trial = optuna.trial.create_trial(value=500.0, user_attrs={"seeds": [0, 1, 2]})

    def verified(per_seed: list[float], diverged: dict[int, int]) -> Verified:
        returns = np.repeat(np.array(per_seed)[:, None], 5, axis=1)
        # what summary() reads of the training run
        run = SimpleNamespace(wall_seconds=1.0, eval_steps=[], eval_returns=[], kept_steps=[0] * 3)
        return Verified(trial, "x", DQNConfig(), [7, 8, 9], returns, 475.0, "min", run, diverged)

    lucky = verified([500.0, 500.0, 500.0], {8: 1234})
    assert lucky.successes == 2 and lucky.solved == "2/3 (1 diverged)"
    assert "training diverged on 1 of them (8 at env step 1,234)" in lucky.headline()
    assert lucky.summary()["diverged"] == {"8": 1234}
    weaker = verified([480.0, 476.0, 490.0], {})
    assert pick_best([lucky, weaker]) == [weaker, lucky]
