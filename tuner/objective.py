"""The Optuna objective: sample a DQNConfig, train its seeds together, report every evaluation."""

from __future__ import annotations

import time

import numpy as np
import optuna

from tuner.dqn import train
from tuner.errors import Diverged
from tuner.space import suggest_config
from tuner.study import StudySpec, aggregate


def objective(trial: optuna.Trial, spec: StudySpec, *, device: str = "auto") -> float:
    """Train the trial's config on spec.seeds fresh seeds; its value is the objective's aggregate
    of the seeds' returns, averaged over the last evaluations. Pruned trials stop at once."""
    config = suggest_config(trial, spec.space, spec.fixed()).replace(seed=trial.number * spec.seeds)
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("seeds", [config.seed + k for k in range(spec.seeds)])
    curve: list[list[float]] = []  # [step, return of each seed]
    start = time.perf_counter()

    def record_speed(steps: int, seconds: float) -> None:
        trial.set_user_attr("wall_seconds", round(seconds, 2))
        trial.set_user_attr("steps_per_second", round(steps * spec.seeds / max(seconds, 1e-9), 1))

    def stopped(step: int) -> None:
        """What a trial that stops early records: where it stopped, and its speed until then."""
        trial.set_user_attr("pruned_at", step)
        record_speed(step, time.perf_counter() - start)

    def on_eval(step: int, returns: np.ndarray) -> None:
        curve.append([step, *returns.round(2).tolist()])
        trial.set_user_attr("curve", curve)
        trial.report(aggregate(returns, spec.aggregate), step)
        # at the last evaluation the budget is spent: pruning would save nothing and only drop
        # the trial's score from the study, so TPE would learn less from it
        if step < config.total_steps and trial.should_prune():
            stopped(step)
            raise optuna.TrialPruned(f"pruned at env step {step}")

    try:
        result = train(config, seeds=spec.seeds, device=device, on_eval=on_eval)
    except Diverged as exc:
        trial.set_user_attr("diverged", str(exc))
        stopped(exc.step)
        raise optuna.TrialPruned(str(exc)) from None
    trial.set_user_attr("final_returns", result.final_returns.round(2).tolist())
    record_speed(result.env_steps, result.wall_seconds)
    last = result.eval_returns[-spec.last_evals :]
    return float(np.mean([aggregate(returns, spec.aggregate) for returns in last]))
