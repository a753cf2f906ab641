"""Would another pruning signal or a stricter pruner have stopped a finished study's trials
sooner, and which?

    python benchmarks/prune_replay.py --storage sqlite:////tmp/acro/acrobot.db --study-name acrobot
    python benchmarks/prune_replay.py --storage sqlite:////tmp/s/cartpole.db --study-name cartpole \
        --signals min --percentiles 50,33,25 --pick /tmp/s/export_pick.json

No training: it replays the study's complete trials, in the order they completed, through a
percentile pruner (5 startup trials, as the shipped files; percentile 50 is the median pruner
they use, 25 keeps a trial only while it is in the top quarter) fed, at each evaluation, the min,
mean or median of the seeds' returns (each trial's `curve` user attribute), pruning from the
first evaluation or the second, never at the last. As Optuna's pruners do, it compares a trial's
best value so far with the values at the same step of the replayed trials that had completed by
then (`--order number`: of those numbered before it). Prints how many it would prune, the share
of env steps saved, which of the study's 20 best trials it would have lost, how many of the
study's ties (trials within its objective's `tie` of the best) and, given the
benchmarks/export_pick.py JSON of the same study (`--pick`), how many of the ties that solved
all of that check's held-out seeds. Pruned trials of the study itself have no full curve and are
left out, so this shows what a pruner does to the trials that completed, not a new study's path
(a stricter pruner also completes fewer trials, which TPE then learns from).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from tuner.study import TIE, recorded

SIGNALS = {"min": np.min, "mean": np.mean, "median": np.median}


def replay(
    trials: list,
    signal,
    warmup: int,
    startup: int = 5,
    percentile: float = 50.0,
    order: str = "time",
) -> tuple[list[int], int, int]:
    """(trial numbers pruned, env steps saved, env steps in all) for one pruning signal: a trial
    stops where its best value so far falls below the `percentile`-th best of the completed
    trials' values at that step (Optuna's PercentilePruner, maximizing; 50 is the median).

    order "time" compares a trial at each evaluation with the replayed trials that had
    completed by then (the evaluation's time taken as its share of the trial's run, as the
    study's workers met them); "number" with every replayed trial numbered before it, which
    counts trials that were still running (early in a study, 5 of them pass the startup count
    that the live pruner had not reached yet)."""
    done: list[tuple[float, dict[int, float]]] = []  # (completion time, curve)
    pruned, saved, total = [], 0, 0
    if order == "time":
        trials = sorted(trials, key=lambda t: t.datetime_complete)
    for t in trials:
        curve = {int(row[0]): float(signal(row[1:])) for row in t.user_attrs["curve"]}
        steps = sorted(curve)
        total += steps[-1]
        start, end = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
        best, stop = -np.inf, None
        for i, step in enumerate(steps[:-1]):  # never at the last evaluation
            best = max(best, curve[step])
            # when this evaluation was reported; in number order every earlier trial counts
            now = start + (end - start) * step / steps[-1] if order == "time" else np.inf
            ref = [d for finished, d in done if finished <= now]
            if len(ref) < startup or i + 1 < warmup:
                continue
            others = [d[step] for d in ref if step in d]
            if others and best < np.percentile(others, 100.0 - percentile):
                stop = step
                break
        if stop is None:
            done.append((end, curve))
        else:
            pruned.append(t.number)
            saved += steps[-1] - stop
    return pruned, saved, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--study-name", required=True)
    p.add_argument("--signals", default=",".join(SIGNALS), help="of min, mean, median")
    p.add_argument("--percentiles", default="50", help="e.g. 50,33,25 (50: the median pruner)")
    p.add_argument("--pick", type=Path, help="benchmarks/export_pick.py's JSON of this study")
    p.add_argument(
        "--order",
        choices=("time", "number"),
        default="time",
        help="compare with the trials completed by then (time) or numbered before (number; "
        "this script's only order before 2026-12-06)",
    )
    args = p.parse_args()
    signals = args.signals.split(",")
    if unknown := set(signals) - set(SIGNALS):
        p.error(f"--signals: unknown {', '.join(sorted(unknown))}; use {', '.join(SIGNALS)}")
    percentiles = [float(x) for x in args.percentiles.split(",")]
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    everything = study.get_trials(deepcopy=False)
    trials = sorted(
        (t for t in everything if t.state == TrialState.COMPLETE and "curve" in t.user_attrs),
        key=lambda t: t.number,
    )
    n_pruned = sum(t.state == TrialState.PRUNED for t in everything)
    print(f"{len(trials)} complete trials replayed; the study itself pruned {n_pruned}")
    order = sorted(trials, key=lambda t: -t.value)
    place = {t.number: i + 1 for i, t in enumerate(order)}
    tie = recorded(study, "objective").get("tie", TIE)  # the study file's, as tuner.export reads it
    best = order[0].value
    ties = {t.number for t in trials if t.value >= best - tie * abs(best)}
    robust = None
    if args.pick:
        held_out = json.loads(args.pick.read_text())["ties"]
        robust = {int(n) for n, r in held_out.items() if min(r) >= 475.0}
        print(f"{len(ties)} ties; {len(robust)} of the {len(held_out)} checked solve all held-out")
    else:
        print(f"{len(ties)} ties")
    head = "| signal | percentile | pruned from | trials pruned | env steps saved | ties pruned |"
    head += " robust ties pruned |" if robust is not None else ""
    print(head + " of the 20 best, pruned (their places) |")
    print("|---|---:|---|---:|---:|---:|" + ("---:|" if robust is not None else "") + "---|")
    for name in signals:
        for q in percentiles:
            for warmup in (1, 2):
                pruned, saved, total = replay(
                    trials, SIGNALS[name], warmup, percentile=q, order=args.order
                )
                lost = sorted(place[n] for n in pruned if place[n] <= 20)
                row = f"| {name} | {q:g} | evaluation {warmup} | {len(pruned)} | "
                row += f"{saved / total:.1%} | {len(ties & set(pruned))} of {len(ties)} | "
                if robust is not None:
                    row += f"{len(robust & set(pruned))} of {len(robust)} | "
                print(row + f"{len(lost)} ({', '.join(map(str, lost)) or '-'}) |")


if __name__ == "__main__":
    main()
