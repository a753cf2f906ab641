"""Real tuning runs: worker processes, one SQLite file, real training."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tests.processes import running, worker_pids
from tests.test_study import TINY, load_study_spec_text
from tuner.errors import TunerError
from tuner.run import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    REPEAT,
    Interrupts,
    open_storage,
    summary,
)
from tuner.study import FEW_TIES, few_ties, load_study_spec


def run(tmp_path, *args: str, wait: bool = True, sigint_ignored: bool = False):
    """tuner.run on tmp_path/tiny.yaml; sigint_ignored starts it with SIGINT ignored, as a
    script's background job (`cmd &`) starts."""
    cmd = [sys.executable, "-m", "tuner.run", "--study", str(tmp_path / "tiny.yaml"), *args]
    if not wait:
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore
        )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


READERS: dict[str, optuna.storages.RDBStorage] = {}


def reader(url: str) -> optuna.storages.RDBStorage:
    """One reader storage per database, reused while polling (a new one per poll would open new
    connections faster than they close). It creates no tables, so it cannot race tuner.run."""
    if url not in READERS:
        READERS[url] = open_storage(url, existing=True)
    return READERS[url]


def trials(root: Path) -> list[optuna.trial.FrozenTrial]:
    """The study's trials; none while the database or the study is still being created."""
    try:
        study = optuna.load_study(
            study_name="tiny", storage=reader(f"sqlite:///{root / 'tiny.db'}")
        )
        return study.get_trials(deepcopy=False)
    except (TunerError, KeyError, sqlalchemy.exc.OperationalError):  # not all there yet
        return []


def states(root: Path) -> list[TrialState]:
    return [t.state for t in trials(root)]


def final_states(root: Path) -> list[TrialState]:
    """The trials' states once the run has ended, through a fresh storage; unlike `trials` it
    hides no error, so a failing assertion shows what the database said."""
    storage = open_storage(f"sqlite:///{root / 'tiny.db'}", existing=True)
    return [t.state for t in optuna.load_study(study_name="tiny", storage=storage).get_trials()]


def test_two_workers_reach_exactly_n_finished_trials_and_resume_adds_more(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    first = run(tmp_path, "--trials", "5", "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "5 finished trials" in first.stdout and "optuna-dashboard sqlite:///" in first.stdout
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    trials = study.get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 5
    assert trials[0].params == {"learning_rate": 1e-3, "batch_size": 32, "target_update": "hard"}
    assert "tau" not in trials[0].params  # hard updates: tau never sampled
    assert trials[0].user_attrs["config"]["learning_rate"] == 1e-3
    assert trials[0].user_attrs["seeds"] == [0, 1] and trials[1].user_attrs["seeds"] == [2, 3]
    assert study.user_attrs["study_file"] == TINY and "--trials 5" in study.user_attrs["command"]
    assert study.metric_names == ["return"]

    again = run(tmp_path, "--trials", "8", "--jobs", "2")
    assert again.returncode == 0, again.stderr
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states(tmp_path)) == 8
    full = run(tmp_path, "--trials", "8")
    assert full.returncode == 0 and "already holds 8 finished trials" in full.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_while_a_trial_changes_hands_waits_until_the_worker_holds_it(sig):
    # Ctrl-C inside study.ask() (the trial exists, the worker has not yet got it) or between
    # tell() and forgetting the trial: the worker must see it only once it can act on it
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupts = Interrupts()
        owned = None
        with pytest.raises(KeyboardInterrupt), interrupts.held():
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # the handler runs here, and must not raise
            owned = "trial"
        assert owned == "trial"
        with pytest.raises(KeyboardInterrupt):  # outside held(), at once
            os.kill(os.getpid(), sig)
            time.sleep(1)
        with interrupts.held():  # nothing pending any more
            owned = None
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class SignalsInDel:
    """An object whose finaliser takes a signal: the handler runs inside __del__, where Python
    prints the handler's exception as "Exception ignored" and drops it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside __del__


def busy_trial(seconds: float) -> str:
    """Stands in for the objective: works until the time is up unless interrupted."""
    SignalsInDel()  # collected at once: the first interrupt is swallowed
    end = time.time() + seconds
    while time.time() < end:
        sum(range(1000))
    return "ran to the end"


class RaisesInDel:
    def __del__(self) -> None:
        raise ValueError("a finaliser's own bug")


def test_an_interrupt_swallowed_inside_a_finaliser_is_repeated_while_the_trial_runs():
    # seen in CI-like runs: SIGINT landed in SQLAlchemy's weakref callback, and the worker
    # trained on until tuner.run terminated it 15 s later. The swallowed one is not reported
    # (its "Exception ignored" traceback greeted a user's Ctrl-C); other finaliser errors are
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, REPEAT)}
    hook = sys.unraisablehook
    reported: list[type[BaseException]] = []
    sys.unraisablehook = lambda unraisable: reported.append(unraisable.exc_type)
    try:
        interrupts = Interrupts()
        interrupts.insist_inside(busy_trial.__code__, every=0.2)
        start = time.time()
        with pytest.raises(KeyboardInterrupt):
            busy_trial(10.0)
        assert time.time() - start < 3.0
        assert interrupts.requested
        assert reported == []
        RaisesInDel()
        assert reported == [ValueError]
        # a repeat that lands once the trial is left (the worker's clean-up, failing the trial)
        # must not cut that short; while the trial runs, it interrupts
        os.kill(os.getpid(), REPEAT)
        time.sleep(0.05)  # the handler runs here, and must not raise
        with pytest.raises(KeyboardInterrupt):
            busy_trial(10.0)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        sys.unraisablehook = hook


@pytest.mark.parametrize(
    ("sig", "ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["ctrl-c", "sigterm", "kill-int-on-a-background-job"],
)
def test_ctrl_c_or_sigterm_stops_workers_and_leaves_no_trial_running(tmp_path, sig, ignored):
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 2000000"))
    proc = run(tmp_path, "--trials", "4", "--jobs", "2", wait=False, sigint_ignored=ignored)
    deadline = time.time() + 120  # 2,000,000 steps a trial: the run cannot end in this time
    while time.time() < deadline and not training(trials(tmp_path)):
        time.sleep(1)
    started = training(trials(tmp_path))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert started, f"no trial started training within 120 s; tuner.run said: {err[-1500:]}"
    assert proc.returncode == 130 and "run the same command to resume" in err
    # the progress bar closed before the message: nothing is drawn after it
    assert err.rstrip().endswith("run the same command to resume"), err[-300:]
    after = final_states(tmp_path)
    assert after and TrialState.RUNNING not in after and TrialState.FAIL in after


def test_ctrl_c_while_workers_start_stops_them_without_a_traceback(tmp_path):
    # a terminal's Ctrl-C reaches the whole process group, also workers still importing torch
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 2000000"))
    cmd = [sys.executable, "-m", "tuner.run", "--study", str(tmp_path / "tiny.yaml")]
    proc = subprocess.Popen(
        [*cmd, "--trials", "4", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(worker_pids(proc.pid)) < 2:
        time.sleep(0.05)
    workers = worker_pids(proc.pid)
    assert len(workers) == 2, f"tuner.run started {len(workers)} of its 2 workers in 120 s"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command to resume" in err
    assert "Traceback" not in err, err[-3000:]
    assert not [pid for pid in workers if running(pid)]
    assert TrialState.RUNNING not in final_states(tmp_path)


def training(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """A trial is running with all its params sampled (its config and seeds are recorded just
    before training starts); a kill while params are still being written leaves fewer of them."""
    return any(t.state == TrialState.RUNNING and "seeds" in t.user_attrs for t in trials)


def test_a_worker_killed_mid_trial_has_its_trial_failed_and_retried(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 2000000"))
    proc = run(tmp_path, "--trials", "1", "--jobs", "1", wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not training(trials(tmp_path)):  # kill mid-training
        time.sleep(1)
    started = training(trials(tmp_path))
    for pid in worker_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert started, f"no trial started training within 120 s; tuner.run said: {err[-1500:]}"
    assert final_states(tmp_path) == [TrialState.RUNNING]  # nobody has noticed yet
    time.sleep(GRACE_SECONDS + 2 * HEARTBEAT_SECONDS)
    (tmp_path / "tiny.yaml").write_text(TINY)  # the retry trains on a short budget
    resumed = run(tmp_path, "--trials", "1", "--jobs", "1")
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    killed, retry = study.get_trials()
    assert killed.state == TrialState.FAIL and retry.state in (
        TrialState.COMPLETE,
        TrialState.PRUNED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == killed.number
    assert retry.params == killed.params


@pytest.mark.parametrize("when", ["training", "starting"])
def test_workers_of_a_killed_tuner_run_fail_their_trials_and_stop(tmp_path, when):
    # "starting": killed as soon as its workers exist, while they still import torch (such
    # workers once took their new parent for the one to watch, and trained on)
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 2000000"))
    proc = run(tmp_path, "--trials", "4", "--jobs", "2", wait=False)
    deadline = time.time() + 120
    if when == "training":
        while time.time() < deadline and not training(trials(tmp_path)):
            time.sleep(1)
        assert training(trials(tmp_path)), "no trial started training within 120 s"
    while time.time() < deadline and len(worker_pids(proc.pid)) < 2:
        time.sleep(0.05)
    workers = worker_pids(proc.pid)
    assert len(workers) == 2, f"tuner.run started {len(workers)} of its 2 workers in 120 s"
    proc.kill()  # SIGKILL: the parent cannot pass anything on to its workers
    err = ""
    with contextlib.suppress(subprocess.TimeoutExpired):
        # returns once every process holding its output has exited (the workers' stderr too)
        err = proc.communicate(timeout=90)[1]
    alive = [pid for pid in workers if running(pid)]
    for pid in alive:  # they would train on through the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} still ran 90 s after their tuner.run was killed"
    after = final_states(tmp_path)
    assert TrialState.RUNNING not in after, f"after: {after}; the workers said: {err[-3000:]}"
    assert (TrialState.FAIL in after) == (when == "training")


def test_a_reader_never_writes_to_a_database_that_is_still_being_created(tmp_path):
    # what tuner.run leaves between creating Optuna's tables and writing their version rows: a
    # reader (export, dashboard, a poller) that opened it then would write those rows itself
    # and race the creator (CI caught the creator failing so)
    from optuna.storages._rdb import models

    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = sqlalchemy.create_engine(url)
    models.BaseModel.metadata.create_all(engine)
    with pytest.raises(TunerError, match="holds no Optuna study yet"):
        open_storage(url, existing=True)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM version_info")).scalar() == 0
    engine.dispose()
    (tmp_path / "empty.db").touch()
    with pytest.raises(TunerError, match="holds no Optuna study yet"):
        open_storage(f"sqlite:///{tmp_path / 'empty.db'}", existing=True)
    open_storage(url)  # the creator finishes the job; readers can open it from then on
    assert open_storage(url, existing=True).get_all_studies() == []


def test_unreachable_database_is_one_sentence_and_exit_2(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    done = run(tmp_path, "--storage", "postgresql://nobody@127.0.0.1:9/none", "--trials", "1")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "cannot open storage" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_device_cuda_without_a_gpu_is_one_sentence_and_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    done = run(tmp_path, "--trials", "1", "--device", "cuda")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no CUDA GPU is available" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]


@pytest.mark.parametrize("tool", ["tuner.run", "tuner.export", "tuner.dashboard"])
def test_no_study_file_outside_the_project_is_one_sentence_and_exit_2(tmp_path, tool):
    done = subprocess.run(
        [sys.executable, "-m", tool], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no --study given" in done.stderr and "--study FILE" in done.stderr
    assert not any(tmp_path.iterdir())


def test_a_diverging_trial_is_pruned_with_its_reason_and_the_study_goes_on(tmp_path):
    blowup = TINY.replace("env: CartPole-v1", "env: tests.toy_envs:Blowup-v0").replace(
        "base: {", "base: {loss: mse, grad_clip_norm: null, "
    )
    (tmp_path / "tiny.yaml").write_text(blowup)
    done = run(tmp_path, "--trials", "2", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all("training diverged" in t.user_attrs["diverged"] for t in trials)
    assert all(t.user_attrs["pruned_at"] > 0 and t.user_attrs["wall_seconds"] > 0 for t in trials)


def test_the_summary_names_the_trial_the_export_ranks_first(capsys):
    """Two trials tie at the capped score and a third is within 1% of it: the summary must name
    the one whose curve got there sooner (the one tuner.export ranks first), not simply the first
    to reach it, and count the ties as the export does."""
    study = optuna.create_study(direction="maximize")
    curves = ([10.0, 200.0, 500.0], [300.0, 500.0, 500.0], [5.0, 8.0, 9.0], [400.0, 496.0])
    for curve in curves:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
        study.tell(trial, curve[-1])
    summary(study, "tied", "sqlite:///tied.db", None, default=False)
    out = capsys.readouterr().out
    assert "best: trial 1, value 500.0 (tied with 2 more within 1%" in out
    assert "python -m tuner.export --storage sqlite:///tied.db --study-name tied" in out


def test_the_summary_counts_ties_with_the_study_files_tolerance(capsys):
    """studies/acrobot.yaml ties trials within 10%: at a best of -87.0 that reaches -95.7."""
    spec = load_study_spec("studies/acrobot.yaml")
    study = optuna.create_study(direction="maximize")
    for value in (-95.0, -87.0, -96.0):
        trial = study.ask()
        trial.report(value, 0)
        study.tell(trial, value)
    summary(study, "acro", "sqlite:///acro.db", spec, default=False)
    assert "best: trial 1, value -87.0 (tied with 1 more within 10%" in capsys.readouterr().out


def test_the_summary_shows_the_best_config_as_yaml_with_its_values_outside_the_space(capsys):
    """An enqueued config can hold values the space cannot (RL Zoo's gamma 0.99 and 256x256 net):
    they are not params, but the summary's config must show them, and every line must read as
    the YAML a config file holds (null and false, not Python's None and False)."""
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(
        {"learning_rate": 2.3e-3, "grad_clip_value": None, "dueling": False},
        user_attrs={"fixed_outside_space": {"gamma": 0.99, "hidden_sizes": [256, 256]}},
    )
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    trial.suggest_categorical("grad_clip_value", [None, 1.0])
    trial.suggest_categorical("dueling", [False, True])
    study.tell(trial, 500.0)
    summary(study, "zoo", "sqlite:///zoo.db", None, default=False)
    out = capsys.readouterr().out
    # the config, then (one trial alone at the best) the few-ties advice
    config = out.split("seeds' final returns None\n")[1].split("only 1 trial ties")[0]
    assert config.splitlines() == [
        "  learning_rate: 0.0023",
        "  grad_clip_value: null",
        "  dueling: false",
        "  gamma: 0.99  # fixed for this trial, outside the study's space",
        "  hidden_sizes: [256, 256]  # fixed for this trial, outside the study's space",
    ]


@pytest.mark.parametrize("best", [500.0, 474.9])
def test_the_summary_says_when_no_trial_reached_the_envs_reward_threshold(capsys, best):
    """A study whose best trial is still below the env's reward threshold (CartPole-v1: 475)
    has found nothing that solves the task, and the summary must say so rather than present
    its best as a result; a study at or above it says nothing of the kind."""
    study = optuna.create_study(direction="maximize")
    for value in (best, 12.0):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2)
        study.tell(trial, value)
    spec = load_study_spec_text(TINY)
    summary(study, "tiny", "sqlite:///tiny.db", spec, default=False)
    out = capsys.readouterr().out
    said = "no trial reached CartPole-v1's reward threshold of 475 (the best mean over a trial's"
    assert (said in out) == (best < 475)
    assert ("only 1 trial ties at the best score" in out) == (best >= 475)
    if best < 475:  # after the best trial's config, which it speaks of, with what to do next
        assert out.index("learning_rate") < out.index(said) < out.index("watch it:")
        resume = "python -m tuner.run --storage sqlite:///tiny.db --study-name tiny --trials 4"
        assert f"Run more trials ({resume} resumes this study)" in out
        # a search that missed may have gone down a bad path: a new one is a new draw
        another = (
            f"python -m tuner.run --study {spec.path} --storage sqlite:///tiny.db --study-name "
            "tiny-seed100 --sampler-seed 100 --trials 2"
        )
        assert f"start a new search with another sampler seed ({another})" in out


@pytest.mark.parametrize("ties", [3, FEW_TIES])
def test_the_summary_says_when_few_trials_tie_and_how_to_start_another_search(capsys, ties):
    """A solved study whose best score fewer than FEW_TIES trials share has seldom held a config
    that solves every fresh seed (tuner.study.FEW_TIES): the summary says so and gives the
    command that starts a new study with another sampler seed, 100 on from this study's (its
    workers sample with the seed plus their index), on the same storage and trial budget."""
    spec = load_study_spec_text(TINY)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("sampler_seed", 4)
    for value in [500.0] * ties + [12.0]:
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2)
        study.tell(trial, value)
    summary(study, "tiny", spec.default_storage, spec, default=True)
    out = capsys.readouterr().out
    said = f"only {ties} trials tie at the best score: of the CartPole studies measured, those"
    assert (said in out) == (ties < FEW_TIES)
    command = (
        f"python -m tuner.run --study {spec.path} --study-name tiny-seed104 --sampler-seed 104 "
        f"--trials {ties + 1}"
    )
    assert (f"the better next step: {command}\n" in out) == (ties < FEW_TIES)
    assert few_ties(1, 500.0, 475.0).startswith("only 1 trial ties at")
    assert few_ties(FEW_TIES, 500.0, 475.0) is None
    assert few_ties(1, 474.9, 475.0) is None  # not solved: that, not the ties, is the news
    assert few_ties(1, -3.0, None) is not None  # an env without a threshold


def test_a_resumed_run_samples_new_configs_and_each_trial_records_its_sampler_seed(tmp_path):
    """Workers take the study's sampler seed plus the number of workers that joined before them:
    a resumed run draws its own suggestions, where one that reused the first run's seeds would
    repeat its first draws (TPE samples at random for the study's first 10 trials)."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    for trials in ("3", "5"):
        done = run(tmp_path, "--trials", trials, "--jobs", "1")
        assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    first, resumed = study.trials[1:3], study.trials[3:5]
    assert [t.params for t in first] != [t.params for t in resumed]
    assert len({t.params["learning_rate"] for t in study.trials}) == 5
    assert [t.user_attrs["sampler_seed"] for t in study.trials] == [0, 0, 0, 1, 1]
    assert study.user_attrs["workers_joined"] == 2


def test_sampler_seed_replaces_the_files_and_a_study_keeps_the_seed_it_started_with(tmp_path):
    """--sampler-seed 7 samples what `sampler: {seed: 7}` in the file samples (the first trial
    after the enqueued one, one worker), and is recorded; resuming that study with the file's
    seed 0 is refused (its search would be neither seed's) and adds nothing."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    flagged = run(tmp_path, "--trials", "2", "--jobs", "1", "--sampler-seed", "7")
    assert flagged.returncode == 0, flagged.stderr
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    study = optuna.load_study(study_name="tiny", storage=url)
    assert (
        study.user_attrs["sampler_seed"] == 7 and "--sampler-seed 7" in study.user_attrs["command"]
    )

    other = tmp_path / "file"
    other.mkdir()
    (other / "tiny.yaml").write_text(TINY.replace("seed: 0}", "seed: 7}"))
    in_file = run(other, "--trials", "2", "--jobs", "1")
    assert in_file.returncode == 0, in_file.stderr
    same = optuna.load_study(study_name="tiny", storage=f"sqlite:///{other / 'tiny.db'}")
    assert same.trials[1].params == study.trials[1].params

    resumed = run(tmp_path, "--trials", "3", "--jobs", "1")
    assert resumed.returncode == 2 and len(resumed.stderr.strip().splitlines()) == 1
    assert "'tiny'" in resumed.stderr and "was started with sampler seed 7, not 0" in resumed.stderr
    assert "--study-name tiny-seed0" in resumed.stderr
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 2
