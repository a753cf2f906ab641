"""python -m tuner.run: tune DQN hyperparameters with Optuna, every trial kept in a database."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import multiprocessing as mp
import os
import shlex
import signal
import sys
import threading
import time
import types
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.pool
import torch
import yaml
from optuna.trial import TrialState
from tqdm import tqdm

from tuner.cli import children_start_deaf_to_ctrl_c, run_main, stop_signals_as_ctrl_c
from tuner.dqn import resolve_device
from tuner.envs import check_env
from tuner.errors import TunerError
from tuner.objective import FIXED_OUTSIDE_SPACE, objective
from tuner.study import (
    TIE,
    StudySpec,
    close_to_best,
    default_storage,
    few_ties,
    load_study_spec,
    percent,
    study_dir,
)

DEFAULT_STUDY = Path("studies/cartpole.yaml")
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKERS_JOINED = "workers_joined"


def read_study(path: Path | None) -> StudySpec:
    """The study file at `path`, or the default one, looked up in the current folder."""
    if path is None:
        if not DEFAULT_STUDY.is_file():
            raise TunerError(
                f"no --study given, and the default study file {DEFAULT_STUDY} is not in "
                f"{Path.cwd()}: run from the project's root folder, or pass --study FILE"
            )
        path = DEFAULT_STUDY
    return load_study_spec(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.run", description=__doc__)
    p.add_argument("--study", type=Path, default=None, help=f"study file (default {DEFAULT_STUDY})")
    p.add_argument(
        "--trials",
        type=int,
        default=100,
        help="run until the study holds this many finished (complete + pruned) trials",
    )
    p.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)"
    )
    p.add_argument(
        "--storage", default=None, help="SQLAlchemy URL (default sqlite:///studies/<name>.db)"
    )
    p.add_argument(
        "--study-name", default=None, help="study name in the storage (default: file name)"
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="stop starting trials after this many seconds"
    )
    p.add_argument(
        "--sampler-seed",
        type=int,
        default=None,
        help="the sampler's seed instead of the study file's sampler.seed (a new study: a study "
        "keeps the seed it was started with)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where trials train: cpu (default; a trial's few seeds of a small network run "
        "faster on a CPU core than on a GPU, and workers sharing one GPU take turns), cuda or auto",
    )
    return p.parse_args(argv)


def open_storage(url: str, *, existing: bool = False) -> optuna.storages.RDBStorage:
    """The RDB storage at `url`. Workers get heartbeats, so a worker killed mid-trial has its trial
    failed and retried. Readers (export, dashboard) pass existing=True: nothing is created or
    written (see schema_ready), and a missing SQLite file or a database without a study is a
    TunerError. SQLite connections wait up to 60 s for a write lock."""
    path = url.removeprefix("sqlite:///")
    if existing and url.startswith("sqlite:///") and not Path(path).is_file():
        raise TunerError(
            f"no study database at {path}; run python -m tuner.run first, or give --storage"
        )
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if existing and not schema_ready(url, engine_kwargs):
        raise TunerError(
            f"{url} holds no Optuna study yet (its tables are missing or still being created); "
            "run python -m tuner.run first"
        )
    try:
        with warnings.catch_warnings():  # Optuna marks heartbeat retries experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if existing:
                options: dict = {"skip_table_creation": True}
            else:
                options = {
                    "heartbeat_interval": HEARTBEAT_SECONDS,
                    "grace_period": GRACE_SECONDS,
                    "heartbeat_stale_trial_callback": (
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
                    ),
                }
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **options)
    except STORAGE_ERRORS as exc:
        raise storage_error(url, exc) from None


def schema_ready(url: str, engine_kwargs: dict) -> bool:
    """Whether the storage's Optuna tables exist and their version rows are written.

    Opening an RDBStorage writes those rows when it finds them missing, even with
    skip_table_creation; a reader opening it while `tuner.run` is creating the database would
    race the creator's own writes (and make it fail). Readers check first and create nothing.
    """
    conn = connect(url, **engine_kwargs)
    try:
        return all(
            conn.execute(sqlalchemy.text(f"SELECT 1 FROM {table}")).first() is not None
            for table in ("version_info", "alembic_version")
        )
    except sqlalchemy.exc.DBAPIError:  # no such table
        return False
    finally:
        conn.close()


def connect(url: str, **engine_kwargs) -> sqlalchemy.Connection:
    """One connection of its own (no pool: closing it closes it), or a TunerError."""
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
        return engine.connect()
    except STORAGE_ERRORS as exc:
        raise storage_error(url, exc) from None


STORAGE_ERRORS = (
    sqlalchemy.exc.SQLAlchemyError,
    optuna.exceptions.StorageInternalError,  # wraps the driver's error; say that one
    ValueError,
    ImportError,
)


def storage_error(url: str, exc: BaseException) -> TunerError:
    reason = str(exc.__cause__ or exc).strip().splitlines()[0][:200]
    return TunerError(f"cannot open storage {url!r}: {reason}")


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


SERVER_LOCKS = {  # session-level lock statements: (take, release)
    "postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
    "mysql": ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)"),
}


class ClaimLock:
    """Serialises 'count, then ask' among all workers of one study, so exactly N trials finish.

    SQLite: an flock on a file beside the database (workers share this machine). PostgreSQL and
    MySQL: a session-level advisory lock on the server, so workers on many machines take turns;
    it is released by the server if the worker dies.
    """

    def __init__(self, url: str, name: str) -> None:
        self.conn, self.file = None, None
        self.statements = next((v for k, v in SERVER_LOCKS.items() if url.startswith(k)), None)
        self.key = zlib.crc32(f"tuner:{name}".encode())  # fits PostgreSQL's bigint lock key
        self.name = f"tuner:{name}"[:64]
        if url.startswith("sqlite:///"):
            try:
                self.file = open(url.removeprefix("sqlite:///") + ".lock", "w")  # noqa: SIM115
            except OSError as exc:
                raise storage_error(url, exc) from None
        elif self.statements:
            self.conn = connect(url)

    def _sql(self, statement: str) -> None:
        self.conn.execute(sqlalchemy.text(statement), {"key": self.key, "name": self.name})
        self.conn.commit()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_EX)
        elif self.conn is not None:
            self._sql(self.statements[0])
        try:
            yield
        finally:
            if self.file is not None:
                fcntl.flock(self.file, fcntl.LOCK_UN)
            elif self.conn is not None:
                self._sql(self.statements[1])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.conn is not None:
            self.conn.close()


class Heartbeat(threading.Thread):
    """Record a running trial's heartbeat until stopped (what study.optimize does for its trials)."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        super().__init__(daemon=True)
        self.storage, self.trial_id, self.done = storage, trial_id, threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join()


class ParentWatch(threading.Thread):
    """Send this worker SIGTERM when the process that started it dies: tuner.run's workers take it
    as Ctrl-C (they fail the trial they own and stop), tuner.export's die of it.

    A parent killed with SIGKILL (or by the OOM killer) cannot stop its workers; without this they
    would tune on unseen, with no progress bar and no summary, until the study was full.

    The parent's pid comes from multiprocessing, which the parent wrote into the spawn data, not
    from os.getppid() at this point: a worker still importing torch when its parent died already
    has a new parent here, and watched that one, training on to the study's end (tuner.run killed
    1 s after it started its workers left two so; the likely cause of a CI run's hang).
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.parent = mp.parent_process().pid  # only ever started in a spawned worker

    def run(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)


REPEAT = signal.SIGUSR1
"""The signal `Interrupts.insist_inside` repeats a swallowed interrupt with."""


class Interrupts:
    """Ctrl-C and SIGTERM in a worker, held back while the trial it owns changes hands.

    `study.ask()` creates the RUNNING trial before it returns, and `study.tell()` finishes it
    before the worker forgets it: an interrupt between the two halves would leave a trial that
    nobody marks failed. Inside `held()` a signal is only noted; it is raised as
    KeyboardInterrupt when the block ends. (Blocking the signal with pthread_sigmask would not
    do: the kernel may hand it to another thread, whose handler flag the main thread still sees.)
    """

    def __init__(self) -> None:
        self.holding = self.pending = self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def insist_inside(self, code: types.CodeType, every: float = 0.5) -> None:
        """Repeat an interrupt that was swallowed while the main thread still runs `code`.

        Python runs a signal handler between any two bytecodes, also inside a weakref callback
        or a `__del__` (SQLAlchemy's registry has such callbacks), and there an exception is
        printed as "Exception ignored" and dropped: the worker trained on until tuner.run gave
        up on it 15 s later. A thread checks every `every` seconds whether an interrupt came
        and the main thread is still inside `code` (the trial's objective, which an interrupt
        that got through leaves at once), and if so signals again. The swallowed interrupt's
        "Exception ignored" traceback is not printed: it told a user who pressed Ctrl-C that
        something broke. Other exceptions in finalisers still are.

        The repeat is its own signal, SIGUSR1, whose handler raises only while the main thread is
        still inside `code`: the thread's check and its signal are not one step, and a repeated
        SIGINT that arrived just after the objective was left could land in the worker's
        clean-up before `ignore()` and end the worker with its trial RUNNING (the likely cause of
        the one CI run that left a killed tuner.run's trial RUNNING; not reproduced since)."""
        main = threading.main_thread().ident
        passed_on = sys.unraisablehook

        def quiet(unraisable: sys.UnraisableHookArgs) -> None:
            if not issubclass(unraisable.exc_type, KeyboardInterrupt):
                passed_on(unraisable)

        sys.unraisablehook = quiet

        def inside(frame: types.FrameType | None) -> bool:
            while frame is not None and frame.f_code is not code:
                frame = frame.f_back
            return frame is not None

        def repeated(signum: int, frame: types.FrameType | None) -> None:
            if inside(frame):
                raise KeyboardInterrupt

        signal.signal(REPEAT, repeated)

        def repeat() -> None:
            while True:
                time.sleep(every)
                if self.requested and inside(sys._current_frames().get(main)):
                    os.kill(os.getpid(), REPEAT)

        threading.Thread(target=repeat, daemon=True).start()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending:
                self.pending = False
                raise KeyboardInterrupt

    @staticmethod
    def ignore() -> None:
        """From here on, signals cannot cut the clean-up short."""
        for sig in (signal.SIGINT, signal.SIGTERM, REPEAT):
            signal.signal(sig, signal.SIG_IGN)


def join(study: optuna.Study) -> int:
    """How many workers joined this study before this one (run under the claim lock).

    Each worker's sampler takes the study's sampler seed plus this number: workers of one run,
    of a resumed run and of other machines each draw their own suggestions, where seeds from
    a worker's index would repeat the first run's draws in a resumed one, and on every machine.
    """
    joined = study.user_attrs.get(WORKERS_JOINED, 0)
    study.set_user_attr(WORKERS_JOINED, joined + 1)
    return joined


def worker(
    study_path: str,
    url: str,
    name: str,
    target: int,
    deadline: float | None,
    threads: int,
    device: str = "cpu",
    sampler_seed: int | None = None,
) -> None:
    """Ask, train and tell trials until the study holds `target` finished ones; `sampler_seed`
    (the study's, which --sampler-seed may have set) replaces the study file's."""
    interrupts = Interrupts()
    interrupts.insist_inside(objective.__code__)
    current = None  # the trial this worker owns, failed if anything interrupts it
    lock = None
    try:  # an interrupt during the set-up (a parent that died at once) ends it as quietly
        ParentWatch().start()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # this loop records heartbeats itself (class Heartbeat), which Optuna warns about
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        torch.set_num_threads(threads)
        spec = load_study_spec(study_path)
        storage = open_storage(url)
        study = optuna.load_study(study_name=name, storage=storage, pruner=spec.make_pruner())
        lock = ClaimLock(url, name)
        options = dict(spec.sampler_options)
        if sampler_seed is not None:
            options["seed"] = sampler_seed
        with lock.held():
            stream = join(study)
        if options.get("seed") is not None:
            options["seed"] = (options["seed"] + stream) % 2**32
        study.sampler = type(spec.make_sampler())(**options)
        while deadline is None or time.time() < deadline:
            if interrupts.requested:  # one swallowed by a finaliser between trials
                raise KeyboardInterrupt
            with lock.held():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                if count(study, (*FINISHED, TrialState.RUNNING)) >= target:
                    return
                with interrupts.held():
                    current = study.ask()
                    current.set_user_attr("sampler_seed", options.get("seed"))
            with Heartbeat(storage, current._trial_id):
                try:
                    value = objective(current, spec, device=device)
                except optuna.TrialPruned:
                    value = None
            with interrupts.held():
                if value is None:
                    study.tell(current, state=TrialState.PRUNED)
                else:
                    study.tell(current, value)
                current = None
    except BaseException as exc:  # Ctrl-C, or a bug: never leave the trial RUNNING
        interrupts.ignore()  # a second Ctrl-C must not cut this
        if current is not None:
            current.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            study.tell(current, state=TrialState.FAIL)
        if not isinstance(exc, KeyboardInterrupt):
            raise  # a bug: its traceback belongs on screen
    finally:
        if lock is not None:
            lock.close()


def prepare_study(spec: StudySpec, url: str, name: str, command: str) -> optuna.Study:
    """Create the study, or load it to resume; a new study gets the known configs enqueued.

    Machines started together on one empty database take turns under the claim lock, so the
    tables and the study are created once and the others join it.
    """
    lock = ClaimLock(url, name)
    try:
        with lock.held():
            return create_or_load_study(spec, url, name, command)
    finally:
        lock.close()


def create_or_load_study(spec: StudySpec, url: str, name: str, command: str) -> optuna.Study:
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        pass
    if url.startswith("sqlite:///"):
        # WAL lets readers (optuna-dashboard, tuner.export) read while a worker writes, and is
        # kept in the database file, so every later connection uses it too
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["return"])
    study.set_user_attr("study_file", spec.path.read_text())
    study.set_user_attr("command", command)
    study.set_user_attr("sampler_seed", spec.sampler_options.get("seed"))
    for known in spec.enqueue:
        fixed = {FIXED_OUTSIDE_SPACE: known.fixed} if known.fixed else None
        study.enqueue_trial(known.params, user_attrs=fixed)
    return study


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_signals_as_ctrl_c()
    spec = read_study(args.study)
    if args.trials < 1 or args.jobs < 1:
        raise TunerError("--trials and --jobs must be at least 1")
    if args.sampler_seed is not None and not 0 <= args.sampler_seed < 2**32:
        raise TunerError(f"--sampler-seed must be from 0 to {2**32 - 1}")
    device = resolve_device(args.device)  # --device cuda without a GPU fails before writing
    url = args.storage or spec.default_storage
    name = args.study_name or spec.name
    if args.sampler_seed is not None:
        options = {**spec.sampler_options, "seed": args.sampler_seed}
        spec = dataclasses.replace(spec, sampler_options=options)
    command = shlex.join(
        ["python", "-m", "tuner.run", *(argv if argv is not None else sys.argv[1:])]
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = prepare_study(spec, url, name, command)
    seed = spec.sampler_options.get("seed")
    started = study.user_attrs.get("sampler_seed", seed)
    if seed != started:
        # TPE goes on from every trial the study holds: its search would be neither seed's
        was = "without a sampler seed" if started is None else f"with sampler seed {started}"
        raise TunerError(
            f"study {name!r} in {url} was started {was}, not {seed}; to search with seed "
            f"{seed}, start a new study: --study-name {name}-seed{seed}"
        )
    done = count(study, FINISHED)
    if done >= args.trials:
        print(
            f"study {name!r} already holds {done} finished trials; "
            f"run with --trials {done + 50} (or more) to extend it"
        )
        return 0

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    deadline = time.time() + args.timeout if args.timeout else None
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=worker,
            args=(str(spec.path), url, name, args.trials, deadline, threads, str(device), seed),
        )
        for _ in range(args.jobs)
    ]
    print(
        f"tuning {spec.env} in study {name!r} ({url}): {args.jobs} worker(s), until "
        f"{args.trials} finished trials; {spec.seeds} seeds x {spec.steps:,} steps per trial"
        + (f", on {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
        + (
            f", {spec.confirm} more for a trial whose own seeds score within "
            f"{percent(spec.tie)} of the best"
            if spec.confirm
            else ""
        )
    )
    with children_start_deaf_to_ctrl_c():
        for p in procs:
            p.start()
    try:
        watch(study, procs, done, args.trials)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)  # a worker takes it as Ctrl-C
        for p in procs:
            p.join(timeout=15)
            if p.is_alive():
                p.terminate()
        print(
            "interrupted: running trials were marked failed; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    failed = [p.exitcode for p in procs if p.exitcode]
    summary(study, name, url, spec, args.storage is None and args.study_name is None)
    if failed:
        print(
            f"{len(failed)} worker(s) stopped with an error; see the failed trials' 'error' attribute",
            file=sys.stderr,
        )
        return 1
    return 0


def watch(study: optuna.Study, procs: list, start: int, target: int) -> None:
    """A progress bar over finished trials until every worker has exited."""
    # closed on the way out of a Ctrl-C too, so it is not drawn again after the message that follows
    with tqdm(total=target, initial=start, unit="trial", dynamic_ncols=True) as bar:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            trials = study.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in FINISHED]
            pruned = sum(t.state == TrialState.PRUNED for t in trials)
            best = max((t.value for t in trials if t.state == TrialState.COMPLETE), default=None)
            best = "-" if best is None else f"{best:.1f}"
            bar.set_postfix(pruned=pruned, best=best, refresh=False)
            bar.update(min(len(finished), target) - bar.n)


def another_seed(study: optuna.Study, name: str, url: str, study_file: Path | None) -> str:
    """The command that starts a study like this one, on the same storage, with another sampler
    seed and the same number of finished trials. Each worker samples with the seed plus the number
    of workers that joined before it (`join`), so the new seed skips past every seed this study's
    workers took (100 on, or more), lest the new study repeat some of this one's draws."""
    skip = max(100, study.user_attrs.get(WORKERS_JOINED, 0))
    seed = ((study.user_attrs.get("sampler_seed") or 0) + skip) % 2**32
    where = ["--study", str(study_file) if study_file is not None else "FILE"]
    if study_file is None or url != default_storage(study_file):
        where += ["--storage", url]
    trials = str(count(study, FINISHED))
    return shlex.join(
        ["python", "-m", "tuner.run", *where, "--study-name", f"{name}-seed{seed}"]
        + ["--sampler-seed", str(seed), "--trials", trials]
    )


def as_yaml(value: object) -> str:
    """One value as YAML writes it on one line (null, false, [256, 256])."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()


def summary(
    study: optuna.Study, name: str, url: str, spec: StudySpec | None, default: bool
) -> None:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    print(f"{len(complete) + pruned} finished trials ({pruned} pruned) in study {name!r}")
    where = f"--study {spec.path}" if default else f"--storage {url} --study-name {name}"
    if complete:
        tie = spec.tie if spec else TIE
        best, *ties = close_to_best(complete, tie)  # tuner.export's contenders, in its order
        tied = (
            f" (tied with {len(ties)} more within {percent(tie)}, ranked first by its whole "
            "curve; tuner.export races the ties on fresh seeds)"
            if ties
            else ""
        )
        print(
            f"best: trial {best.number}, value {best.value:.1f}{tied}, seeds' final returns "
            f"{best.user_attrs.get('final_returns')}"
        )
        # as YAML, so a line can be pasted into a study or config file; an enqueued trial's
        # values outside the space are not params, but they are part of its config
        for key, value in best.params.items():
            print(f"  {key}: {as_yaml(value)}")
        for key, value in (best.user_attrs.get(FIXED_OUTSIDE_SPACE) or {}).items():
            print(f"  {key}: {as_yaml(value)}  # fixed for this trial, outside the study's space")
        threshold = check_env(spec.env).reward_threshold if spec else None
        if threshold is not None and best.value < threshold:
            print(
                f"no trial reached {spec.env}'s reward threshold of {threshold:g} (the best "
                f"{spec.aggregate} over a trial's seeds is {best.value:.1f}): nothing here solves "
                f"the task yet. Run more trials (python -m tuner.run {where} --trials "
                f"{2 * (len(complete) + pruned)} resumes this study), start a new search with "
                f"another sampler seed ({another_seed(study, name, url, spec and spec.path)}), "
                "or give each trial more steps (budget.steps) or another space in the study file"
            )
        elif advice := few_ties(1 + len(ties), best.value, threshold):
            print(f"{advice}: {another_seed(study, name, url, spec and spec.path)}")
    artifacts = study_dir(name, spec.path if default else None) / "artifacts"
    print(f"watch it: optuna-dashboard {url} --artifact-dir {artifacts}")
    if complete:
        print(f"export and verify the best: python -m tuner.export {where}")


if __name__ == "__main__":
    sys.exit(run_main(main))
