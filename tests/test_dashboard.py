"""python -m tuner.dashboard in a real headless Chromium, on a study that 2 workers are tuning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.test_study import TINY
from tuner.errors import TunerError
from tuner.run import open_storage

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TUNER_TEST_ARTIFACTS", "test-artifacts"))

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install chromium"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except OSError as exc:
        return getattr(exc, "code", 0), str(exc)


def wait_for(check, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def complete_trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    try:  # a reader storage: a plain URL would write to a database tuner.run is still creating
        study = optuna.load_study(
            study_name="tiny", storage=open_storage(f"sqlite:///{db}", existing=True)
        )
    except (TunerError, KeyError):  # not there yet
        return []
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def test_dashboard_shows_a_live_study_and_an_exported_trial_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "tiny.yaml").write_text(TINY.replace("steps: 1500", "steps: 3000"))
    study, db = str(tmp_path / "tiny.yaml"), tmp_path / "tiny.db"
    tuning = subprocess.Popen(
        [sys.executable, "-m", "tuner.run", "--study", study, "--trials", "10", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dashboard = None
    try:
        wait_for(lambda: complete_trials(db), 180, "a first complete trial")
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "tuner.dashboard", "--study", study, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: get(f"{base}/api/studies")[0] == 200, 60, "the dashboard to answer")

        # poll the study the way the dashboard's live update does, while the workers write
        polls, stop = [], threading.Event()

        def poll() -> None:
            while not stop.is_set():
                polls.append(get(f"{base}/api/studies/1?after=0")[0])
                time.sleep(0.2)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/dashboard/")
            page.get_by_text("tiny", exact=False).first.click()
            page.wait_for_url("**/studies/1")
            page.goto(f"{base}/dashboard/studies/1/trials")
            page.get_by_text("Trial 0", exact=True).first.click()
            page.get_by_text("Intermediate Values").first.wait_for()
            body = page.inner_text("body")
            assert "Intermediate Values" in body and "User Attributes" in body
            assert '"env": "CartPole-v1"' in body  # the config user attr
            assert "learning_rate" in body and "0.001" in body  # the enqueued trial's params
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-trial.png"), full_page=True)

            _, err = tuning.communicate(timeout=300)
            stop.set()
            poller.join()
            assert tuning.returncode == 0, err
            trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").get_trials()
            assert [t.state for t in trials if t.state == TrialState.FAIL] == []
            assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 10
            assert polls and set(polls) == {200}, set(polls)

            quick = ["--seeds", "2", "--episodes", "5"]
            exported = subprocess.run(
                [sys.executable, "-m", "tuner.export", "--study", study, *quick],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert exported.returncode == 0, exported.stderr
            best = max(complete_trials(db), key=lambda t: t.value).number

            def served_artifacts() -> list[str]:
                detail = json.loads(get(f"{base}/api/studies/1?after=0")[1])
                trial = next(t for t in detail["trials"] if t["number"] == best)
                return [a["filename"] for a in trial["artifacts"]]

            # optuna-dashboard's server re-reads trials at most every 2 s, and its page never
            # re-fetches a finished trial: a page loaded in that window would show the trial
            # without the export's files until the next reload (CI caught it). Wait until the
            # server sees them, then load the page once.
            wait_for(
                lambda: "report.md" in served_artifacts(), 30, "the dashboard to see the export"
            )
            # open the exported trial by its number (the trial list's own ?numbers= link)
            page.goto(f"{base}/dashboard/studies/1/trials?numbers={best}")
            try:
                page.get_by_text("report.md").first.wait_for()
            except Exception:
                page.screenshot(
                    path=str(ARTIFACTS / "dashboard-export-missing.png"), full_page=True
                )
                raise AssertionError(
                    f"trial {best}'s page shows no report.md; the server serves "
                    f"{served_artifacts()}; the page says:\n{page.inner_text('body')[:2000]}"
                ) from None
            assert f"Trial {best} (trial_id=" in page.inner_text("body")
            assert "curve.png" in page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "dashboard-exported-trial.png"), full_page=True)
            browser.close()
    finally:
        for proc in (tuning, dashboard):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


def test_dashboard_bad_input_is_one_sentence(tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "tuner.dashboard", "--storage", f"sqlite:///{tmp_path}/none.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no study database at" in missing.stderr
    assert not (tmp_path / "none.db").exists()
