"""Errors a user can cause. The CLIs print their one sentence and exit with code 2."""

from __future__ import annotations


class TunerError(Exception):
    """A problem with the user's input, stated in one sentence that says what to do."""


class Diverged(TunerError):
    """Training produced a non-finite loss or Q-value. Raised by training, it carries the run's
    network as it was then (`network`: every seed of the run, the diverged one included); a
    pickled copy carries none."""

    def __init__(self, step: int, seed: int, what: str = "loss") -> None:
        self.step, self.seed, self.what = step, seed, what
        self.network = None
        super().__init__(
            f"training diverged: non-finite {what} for seed {seed} at env step {step}; "
            "try a lower learning_rate or a gradient clamp"
        )

    def __reduce__(self) -> tuple:
        # pickled by its arguments, not its message, so it crosses from a worker process intact
        return (Diverged, (self.step, self.seed, self.what))
