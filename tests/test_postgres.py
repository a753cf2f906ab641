"""Several tuner.run processes, standing in for machines, sharing one study on PostgreSQL.

Each test gets a throwaway database on the server at 127.0.0.1:5432, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import warnings

import optuna
import psycopg
import pytest
import sqlalchemy
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tests.processes import worker_pids
from tests.test_run import reader, training
from tests.test_study import TINY
from tuner.errors import TunerError
from tuner.run import GRACE_SECONDS, HEARTBEAT_SECONDS

SERVER = os.environ.get("TUNER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture
def pg_url():
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server reachable at {SERVER}: {str(exc).strip()}")
    name = f"tuner_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def machine(tmp_path, url: str, trials: int, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner.run", "--study", str(tmp_path / "tiny.yaml")]
        + ["--storage", url, "--trials", str(trials), *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="tiny", storage=reader(url)).get_trials()
    except (TunerError, KeyError, sqlalchemy.exc.ProgrammingError):  # not created yet
        return []


def test_three_machines_reach_exactly_n_trials_without_duplicates(tmp_path, pg_url):
    (tmp_path / "tiny.yaml").write_text(TINY)
    # started together on an empty database: one creates the tables and the study, two join
    machines = [machine(tmp_path, pg_url, 7, "--jobs", "1") for _ in range(3)]
    for proc in machines:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    done = trials(pg_url)
    numbers = [t.number for t in done]
    assert sum(t.state in FINISHED for t in done) == 7 and len(done) == 7
    assert sorted(numbers) == list(range(7)) and len(set(numbers)) == 7
    assert done[0].params["learning_rate"] == 1e-3  # the enqueued config ran first, once
    seeds = [s for t in done for s in t.user_attrs["seeds"]]
    assert len(seeds) == len(set(seeds)) == 14
    # each machine's one worker samples with its own seed, so no two machines draw alike
    assert optuna.load_study(study_name="tiny", storage=pg_url).user_attrs["workers_joined"] == 3
    assert len({repr(sorted(t.params.items())) for t in done}) == 7
    assert {t.user_attrs["sampler_seed"] for t in done} <= {0, 1, 2}


def test_a_killed_machine_has_its_trial_failed_by_heartbeat_and_retried(tmp_path, pg_url):
    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 2000000"))
    doomed = machine(tmp_path, pg_url, 3, "--jobs", "1")
    deadline = time.time() + 120
    while time.time() < deadline and not training(trials(pg_url)):  # kill it mid-training
        time.sleep(0.5)
    for pid in worker_pids(doomed.pid):
        os.kill(pid, signal.SIGKILL)
    doomed.communicate(timeout=60)
    assert [t.state for t in trials(pg_url)] == [TrialState.RUNNING]
    time.sleep(GRACE_SECONDS + 2 * HEARTBEAT_SECONDS)

    (tmp_path / "tiny.yaml").write_text(TINY)  # the other machines train on a short budget
    survivors = [machine(tmp_path, pg_url, 3, "--jobs", "1") for _ in range(2)]
    for proc in survivors:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    done = trials(pg_url)
    assert done[0].state == TrialState.FAIL
    assert sum(t.state in FINISHED for t in done) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retries = [RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in done[1:]]
    assert retries.count(0) == 1  # exactly one retry of the killed trial, with its params
    retry = done[1 + retries.index(0)]
    assert retry.params == done[0].params
