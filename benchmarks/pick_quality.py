"""Which way of scoring a trial picks configs that hold up on seeds the study never saw?

    python -m tuner.run --storage sqlite:////tmp/s.db --trials 200      # any finished study
    python benchmarks/pick_quality.py --storage sqlite:////tmp/s.db     # about 15 min on 2 cores

Every complete trial of the study is retrained on the same fresh seeds at its own budget and
scored by greedy episodes. Then each candidate objective, computed from the per-seed curves the
study stored (so no trial is rerun to try one), ranks the trials; the table gives, for each, how
its first pick and its top 3 and top 5 did on the fresh seeds, and the rank correlation between
its score and the fresh mean. The objective the default study uses should be the one whose picks
hold up best. Prints a table and writes benchmarks/results/pick_quality.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import spearmanr

from tuner.config import DQNConfig
from tuner.dqn import evaluate, train

ROOT = Path(__file__).resolve().parent.parent
FRESH = 3_000_000  # seeds no study or other benchmark uses
SOLVED = 475.0


def curve(trial: FrozenTrial) -> np.ndarray:
    """[evaluations, seeds] greedy returns, as the study stored them."""
    return np.array([row[1:] for row in trial.user_attrs["curve"]])


def iqm(x: np.ndarray) -> float:
    x = np.sort(x)
    cut = len(x) // 4
    return float(x[cut : len(x) - cut].mean())


# each maps a trial's [evaluations, seeds] curve to a score, higher is better
OBJECTIVES: dict[str, Callable[[np.ndarray], float]] = {
    "min, last 1": lambda c: float(c[-1].min()),
    "min, last 2": lambda c: float(c[-2:].min(1).mean()),
    "min, last 3": lambda c: float(c[-3:].min(1).mean()),
    "min, all": lambda c: float(c.min(1).mean()),
    "mean, last 1": lambda c: float(c[-1].mean()),
    "mean, last 2": lambda c: float(c[-2:].mean()),
    "mean, all": lambda c: float(c.mean()),
    "iqm, last 2": lambda c: float(np.mean([iqm(row) for row in c[-2:]])),
    "worst eval, last 3": lambda c: float(c[-3:].min()),
}


def retrain(job: tuple[int, dict, list[int], int]) -> tuple[int, list[float], float]:
    import torch

    torch.set_num_threads(1)
    number, config, seeds, episodes = job
    cfg = DQNConfig.from_dict(config).replace(seed=seeds[0], eval_every=0)
    start = time.perf_counter()
    result = train(cfg, seeds=len(seeds), device="cpu")
    returns = evaluate(result.network, cfg.env, episodes).mean(1)
    return number, returns.round(2).tolist(), time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", required=True, help="SQLAlchemy URL of a finished study")
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--seeds", type=int, default=5, help="fresh seeds per trial (default 5)")
    p.add_argument("--episodes", type=int, default=30, help="greedy episodes per seed")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pick_quality.json")
    args = p.parse_args()
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE and "curve" in t.user_attrs
    ]
    if len(trials) < 5:
        raise SystemExit(f"{len(trials)} complete trials; run a longer study first")
    seeds = list(range(FRESH, FRESH + args.seeds))
    jobs = [(t.number, t.user_attrs["config"], seeds, args.episodes) for t in trials]
    print(
        f"retraining {len(trials)} complete trials on {args.seeds} fresh seeds each, "
        f"{args.jobs} processes",
        flush=True,
    )
    fresh: dict[int, list[float]] = {}
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for i, (number, returns, wall) in enumerate(pool.imap_unordered(retrain, jobs), 1):
            fresh[number] = returns
            solved = sum(r >= SOLVED for r in returns)
            print(
                f"  [{i}/{len(jobs)}] trial {number}: fresh mean {np.mean(returns):.1f}, "
                f"{solved}/{len(returns)} solved ({wall:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - start

    fresh_mean = np.array([np.mean(fresh[t.number]) for t in trials])
    fresh_solved = np.array([sum(r >= SOLVED for r in fresh[t.number]) for t in trials])
    rows = {}
    for name, score in OBJECTIVES.items():
        values = np.array([score(curve(t)) for t in trials])
        # best first; ties go to the earlier trial, as Optuna's best_trial does
        order = sorted(range(len(trials)), key=lambda i: (-values[i], trials[i].number))
        rows[name] = {
            "pick": trials[order[0]].number,
            "pick_fresh_mean": round(float(fresh_mean[order[0]]), 1),
            "pick_solved": int(fresh_solved[order[0]]),
            "top3_solved_mean": round(float(fresh_solved[order[:3]].mean()), 2),
            "top5_solved_mean": round(float(fresh_solved[order[:5]].mean()), 2),
            "ties_at_top": int((values == values[order[0]]).sum()),
            "spearman_vs_fresh_mean": round(float(spearmanr(values, fresh_mean).statistic), 3),
        }

    n = args.seeds
    print(
        f"\n{len(trials)} complete trials; fresh seeds solved (>= {SOLVED:.0f}): "
        f"{int((fresh_solved == n).sum())} trials solve all {n}, mean {fresh_solved.mean():.2f}/{n}"
    )
    print(
        f"{'objective':>20} {'pick':>5} {'fresh':>6} {'solved':>7} {'top3':>5} {'top5':>5} "
        f"{'ties':>5} {'rho':>6}"
    )
    for name, r in rows.items():
        print(
            f"{name:>20} {r['pick']:>5} {r['pick_fresh_mean']:>6.1f} {r['pick_solved']:>5}/{n} "
            f"{r['top3_solved_mean']:>5.2f} {r['top5_solved_mean']:>5.2f} {r['ties_at_top']:>5} "
            f"{r['spearman_vs_fresh_mean']:>6.3f}"
        )
    print("top3/top5: mean fresh seeds solved by the 3 or 5 best-scored trials")
    print("rho: Spearman correlation between the score and the fresh mean, over all trials")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "command": " ".join(["python", *sys.argv]),
                "fresh_seeds": seeds,
                "episodes": args.episodes,
                "retrain_wall_s": round(wall, 1),
                "fresh": {str(k): v for k, v in sorted(fresh.items())},
                "objectives": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
