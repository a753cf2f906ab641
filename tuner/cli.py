"""What every `python -m tuner.*` command shares: user errors are one line and exit code 2."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator

from tuner.errors import TunerError


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main; a TunerError prints its sentence and exits 2, Ctrl-C exits 130."""
    try:
        return main(argv)
    except TunerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_signals_as_ctrl_c() -> None:
    """Treat SIGTERM (a scheduler or `kill` stopping the job) exactly like Ctrl-C, and make SIGINT
    Ctrl-C even where the process started with it ignored: a script's background job (`cmd &`)
    inherits SIGINT ignored, and Python would keep ignoring `kill -INT`."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


@contextlib.contextmanager
def children_start_deaf_to_ctrl_c() -> Iterator[None]:
    """Start worker processes inside this block: they begin with SIGINT ignored, which Python
    keeps until the worker installs its own handlers. A spawned worker spends its first seconds
    importing torch, and Ctrl-C reaches the whole process group: there it printed a traceback
    per worker. The parent stops its workers with SIGTERM, which also ends one still importing.
    (A Ctrl-C in the few milliseconds the block lasts is lost; pressing it again works.)"""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
