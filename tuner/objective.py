"""The Optuna objective: sample a DQNConfig, train its seeds together, report every evaluation."""

from __future__ import annotations

import time

import numpy as np
import optuna
from optuna.trial import TrialState

from tuner.config import DQNConfig
from tuner.dqn import train
from tuner.errors import Diverged
from tuner.space import suggest_config
from tuner.study import StudySpec, aggregate, ties_with

FIXED_OUTSIDE_SPACE = "fixed_outside_space"
"""The user attribute of an enqueued trial that holds the fields it fixes outside the space."""


def objective(trial: optuna.Trial, spec: StudySpec, *, device: str = "auto") -> float:
    """Train the trial's config on spec.seeds fresh seeds; its value is the objective's aggregate
    of the seeds' returns, averaged over the last evaluations. Pruned trials stop at once. With
    spec.confirm, a trial whose own seeds score within spec.tie (1% by default) of the best so
    far trains that many more seeds, and its value becomes the aggregate over all of them (see
    contends)."""
    own, extra = spec.trial_seeds(trial.number)
    config = trial_config(trial, spec).replace(seed=own[0])
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("seeds", own)
    curve: list[list[float]] = []  # [step, return of each seed]
    start = time.perf_counter()

    def record_speed(steps: int, seeds: int) -> None:
        seconds = time.perf_counter() - start
        trial.set_user_attr("wall_seconds", round(seconds, 2))
        trial.set_user_attr("steps_per_second", round(steps * seeds / max(seconds, 1e-9), 1))

    def stopped(step: int, seeds: int = spec.seeds) -> None:
        """What a trial that stops early records: where it stopped, and its speed until then."""
        trial.set_user_attr("pruned_at", step)
        record_speed(step, seeds)

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
    returns = result.eval_returns
    trial.set_user_attr("final_returns", returns[-1].round(2).tolist())
    record_speed(result.env_steps, spec.seeds)
    value = score(returns, spec)
    if extra and contends(trial.study, value, spec.tie):
        trial.set_user_attr("own_seeds_value", round(value, 2))
        trial.set_user_attr("seeds", own + extra)
        try:
            more = train(config.replace(seed=extra[0]), seeds=len(extra), device=device)
        except Diverged as exc:
            trial.set_user_attr("diverged", f"confirmation seeds: {exc}")
            stopped(exc.step, spec.seeds + len(extra))
            raise optuna.TrialPruned(f"diverged on a confirmation seed: {exc}") from None
        returns = np.hstack([returns, more.eval_returns])
        trial.set_user_attr(
            "curve", [[*row, *r.round(2).tolist()] for row, r in zip(curve, more.eval_returns)]
        )
        trial.set_user_attr("final_returns", returns[-1].round(2).tolist())
        record_speed(result.env_steps, spec.seeds + len(extra))
        value = score(returns, spec)
    return value


def trial_config(trial: optuna.Trial | optuna.trial.FixedTrial, spec: StudySpec) -> DQNConfig:
    """The study's fixed fields, the fields an enqueued config fixes outside the space (never
    suggested: the sampler's distributions cannot hold them), and the sampled rest."""
    outside = trial.user_attrs.get(FIXED_OUTSIDE_SPACE, {})
    space = {name: param for name, param in spec.space.items() if name not in outside}
    return suggest_config(trial, space, {**spec.fixed(), **outside})


def score(returns: np.ndarray, spec: StudySpec) -> float:
    """A trial's value from its [evaluations, seeds] returns: the seeds' aggregate, averaged over
    the last spec.last_evals evaluations."""
    return float(np.mean([aggregate(r, spec.aggregate) for r in returns[-spec.last_evals :]]))


def contends(study: optuna.Study, value: float, tie: float) -> bool:
    """Whether a trial that scored `value` on its own seeds ties with (tuner.study.ties_with, the
    rule of tuner.export's contenders) or beats the best own-seeds score of the complete trials so
    far: those are the trials worth more seeds, because at a capped return a few seeds often all
    reach the cap by luck. Own-seeds scores, not values: comparing with confirmed values, which
    more seeds pull down, would confirm nearly every trial that completes."""
    own = [
        t.user_attrs.get("own_seeds_value", t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ]
    return not own or ties_with(value, max(own), tie)
