"""Plots and tables that people look at instead of reading numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def write_curve_csv(steps: list[int], returns: np.ndarray, seeds: list[int], path: Path) -> None:
    """One row per evaluation: step, each seed's mean return, the mean over seeds."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *(f"seed_{s}" for s in seeds), "mean"])
        for step, row in zip(steps, returns):
            writer.writerow([step, *(f"{r:.2f}" for r in row), f"{row.mean():.2f}"])


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
    ax.plot(steps, returns.mean(1), lw=2.4, color="black", marker="o", ms=4, label="mean")
    if threshold is not None:
        ax.axhline(threshold, ls="--", lw=1, color="tab:green", label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps per seed", ylabel="greedy eval return", title=title)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def seed_table(seeds: list[int], final: np.ndarray, best: np.ndarray) -> str:
    """A plain-text per-seed table with a mean and std line."""
    lines = [f"{'seed':>6}  {'final':>8}  {'best':>8}", f"{'-' * 6}  {'-' * 8}  {'-' * 8}"]
    lines += [f"{s:>6}  {f:>8.1f}  {b:>8.1f}" for s, f, b in zip(seeds, final, best)]
    lines.append(f"{'mean':>6}  {final.mean():>8.1f}  {best.mean():>8.1f}")
    lines.append(f"{'std':>6}  {final.std():>8.1f}  {best.std():>8.1f}")
    return "\n".join(lines)
