"""What every `python -m tuner.*` command shares: user errors are one line and exit code 2."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

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
