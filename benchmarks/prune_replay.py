"""Would another pruning signal have stopped a finished study's trials sooner, and which?

    python benchmarks/prune_replay.py --storage sqlite:////tmp/acro/acrobot.db --study-name acrobot

No training: it replays the study's complete trials, in trial order, through a median pruner
(5 startup trials, as the shipped files) fed, at each evaluation, the min, mean or median of the
seeds' returns (each trial's `curve` user attribute), pruning from the first evaluation or the
second, never at the last. A trial is compared with the replayed trials that completed before
it. Prints how many it would prune, the share of env steps saved, and which of the study's 20
best trials it would have lost. Pruned trials of the study itself have no full curve and are
left out, so this shows what a signal does to the trials that completed, not a new study's path.
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
from optuna.trial import TrialState

SIGNALS = {"min": np.min, "mean": np.mean, "median": np.median}


def replay(trials: list, signal, warmup: int, startup: int = 5) -> tuple[list[int], int, int]:
    """(trial numbers pruned, env steps saved, env steps in all) for one pruning signal."""
    done: list[dict[int, float]] = []
    pruned, saved, total = [], 0, 0
    for t in trials:
        curve = {int(row[0]): float(signal(row[1:])) for row in t.user_attrs["curve"]}
        steps = sorted(curve)
        total += steps[-1]
        best, stop = -np.inf, None
        for i, step in enumerate(steps[:-1]):  # never at the last evaluation
            best = max(best, curve[step])
            if len(done) < startup or i + 1 < warmup:
                continue
            others = [d[step] for d in done if step in d]
            if others and best < np.median(others):
                stop = step
                break
        if stop is None:
            done.append(curve)
        else:
            pruned.append(t.number)
            saved += steps[-1] - stop
    return pruned, saved, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--study-name", required=True)
    args = p.parse_args()
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
    print(
        "| signal | pruned from | trials pruned | env steps saved | of the 20 best, pruned (their places) |"
    )
    print("|---|---|---:|---:|---|")
    for name, signal in SIGNALS.items():
        for warmup in (1, 2):
            pruned, saved, total = replay(trials, signal, warmup)
            lost = sorted(place[n] for n in pruned if place[n] <= 20)
            print(
                f"| {name} | evaluation {warmup} | {len(pruned)} | {saved / total:.1%} | "
                f"{len(lost)} ({', '.join(map(str, lost)) or '-'}) |"
            )


if __name__ == "__main__":
    main()
