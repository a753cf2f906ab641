"""tuner: find DQN hyperparameters that reliably solve a gymnasium task."""

from __future__ import annotations

from tuner.errors import Diverged, TunerError

__all__ = ["Diverged", "TunerError"]
__version__ = "0.1.0"
