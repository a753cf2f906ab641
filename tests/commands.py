"""Running a tuner command's main in the test process: what `python -m tuner.X` runs, without the
seconds a fresh interpreter spends importing torch (about 4 s a call on a slow 2-core CPU, which
added up to a minute over the bad-input cases). Each command keeps one case that goes through a
real `python -m` process."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tuner.cli import run_main


def in_process(
    main: Callable[[list[str] | None], int], args: list[str], capsys: pytest.CaptureFixture
) -> tuple[int, str]:
    """`run_main(main, args)`, as the command's `__main__` calls it: its exit code and what it
    wrote to stderr. The Ctrl-C and SIGTERM handlers a command installs are put back after."""
    capsys.readouterr()  # what the test printed before is not the command's
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = run_main(main, args)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return code, capsys.readouterr().err
