"""Plots and tables that people look at instead of reading numbers."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna


def write_curve_csv(steps: list[int], returns: np.ndarray, seeds: list[int], path: Path) -> None:
    """One row per evaluation: step, each seed's mean return, the mean over seeds (over those
    that have one: nan after a seed diverged)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *(f"seed_{s}" for s in seeds), "mean"])
        for step, row, mean in zip(steps, returns, seed_mean(returns)):
            writer.writerow([step, *(f"{r:.2f}" for r in row), f"{mean:.2f}"])


def plot_learning_curve(
    steps: list[int],
    returns: np.ndarray,
    seeds: list[int],
    path: Path,
    *,
    title: str,
    threshold: float | None = None,
) -> None:
    """Each seed thin, the mean bold, the env's reward threshold dashed."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for k, seed in enumerate(seeds):
        ax.plot(
            steps,
            returns[:, k],
            lw=0.9,
            alpha=0.45,
            marker="o",
            ms=2.5,
            label=f"seed {seed}" if len(seeds) <= 10 else None,
        )
    ax.plot(steps, seed_mean(returns), lw=2.4, color="black", marker="o", ms=4, label="mean")
    if threshold is not None:
        ax.axhline(threshold, ls="--", lw=1, color="tab:green", label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps per seed", ylabel="greedy eval return", title=title)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def seed_table(
    seeds: list[int], final: np.ndarray, best: np.ndarray, diverged: dict[int, int] | None = None
) -> str:
    """A plain-text per-seed table with a mean and std line. A seed in `diverged` ({seed: env
    step}) is a row that says where, and is left out of the mean and std."""
    diverged = diverged or {}
    w = max(6, *(len(str(s)) for s in seeds))
    lines = [f"{'seed':>{w}}  {'final':>8}  {'best':>8}", f"{'-' * w}  {'-' * 8}  {'-' * 8}"]
    for s, f, b in zip(seeds, final, best):
        row = f"diverged at env step {diverged[s]:,}" if s in diverged else f"{f:>8.1f}  {b:>8.1f}"
        lines.append(f"{s:>{w}}  {row}")
    kept = np.array([s not in diverged for s in seeds])
    if kept.any():
        note = "" if kept.all() else f"  (of the {kept.sum()} seeds that trained)"
        final, best = final[kept], best[kept]
        lines.append(f"{'mean':>{w}}  {final.mean():>8.1f}  {best.mean():>8.1f}{note}")
        lines.append(f"{'std':>{w}}  {final.std():>8.1f}  {best.std():>8.1f}")
    return "\n".join(lines)


def seed_mean(returns: np.ndarray) -> np.ndarray:
    """[T, K] -> [T]: the mean over the seeds that have a value (a diverged seed's curve is nan
    after it diverged); nan where none has."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice"
        return np.nanmean(returns, 1)


def plot_study(study: optuna.Study, out: Path, *, slices: int = 4) -> dict[str, Path]:
    """The study's plots as PNGs: optimization history, parameter importances, slice plots of the
    most important parameters, intermediate values. A plot the study cannot have yet (importances
    need two complete trials with different params) is left out and named in the result's keys
    only when it exists."""
    out.mkdir(parents=True, exist_ok=True)
    vis = optuna.visualization.matplotlib
    made: dict[str, Path] = {}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    important: list[str] = []
    if len(complete) >= 2:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "some regimes have less than 2 trials"
                important = list(optuna.importance.get_param_importances(study))[:slices]
        except (RuntimeError, ValueError):  # e.g. every complete trial has the same params
            pass
    jobs = {
        "history": lambda: vis.plot_optimization_history(study),
        "importances": (lambda: vis.plot_param_importances(study)) if important else None,
        "slices": (lambda: vis.plot_slice(study, params=important)) if important else None,
        "intermediate": lambda: vis.plot_intermediate_values(study),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, job in jobs.items():
            if job is None:
                continue
            ax = job()
            fig = np.asarray(ax).flat[0].figure
            fig.set_size_inches(max(fig.get_size_inches()[0], 7), max(fig.get_size_inches()[1], 4))
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=110)
            plt.close(fig)
            made[name] = out / f"{name}.png"
    return made
