"""Which evaluation's weights should a retrained seed keep? Every evaluation's, played 100 times.

    python benchmarks/kept_weights.py --storage sqlite:////tmp/s0/cartpole.db [--storage ...]

With `keep_weights: best` (the default study's), a retrained seed keeps the weights of its best
evaluation, the latest of equal ones. In CartPole most seeds score 500 at several evaluations
from the middle of training on, so the rule nearly always keeps the last, and the held-out runs
that fail with 40,000 steps are mostly such weights: 500 on the 5 greedy episodes of their
evaluation, below 475 over 100. Would another choice among the evaluations do better?

This retrains every tie of each study (the trials within 1% of the best, as the export and
benchmarks/export_pick.py consider them: at most 20) on the same 5 held-out seeds as
export_pick.py (5,000,000 up), for the export's default steps (the study file's
budget.export_steps), keeps a copy of the weights at every evaluation and plays each copy for
120 greedy episodes: episodes 0-99 are the truth every rule is judged by (the same 100 episodes
export_pick.py plays, so the shipped rule's row reproduces its held-out results), episodes
100-119 are what a rule may spend on rechecking. The rules, for one seed's run:

- final: the weights at the last step;
- best, latest of equal (shipped): the latest evaluation with the highest 5-episode mean;
- best, earliest of equal: the earliest such evaluation;
- best two in a row: the latest evaluation whose own mean and the one before it have the highest
  lower of the two (weights that kept the score through one more stretch of training);
- equal ones rechecked: among the evaluations at the highest mean, the one with the best mean
  over 20 more episodes (100-119), the latest of equal ones; it costs 20 episodes a candidate;
- 25-episode evaluations: every evaluation scored on episodes 0-4 and 100-119 together, the
  latest best (what evaluating 25 episodes rather than 5 during training would choose).

Prints a table (held-out runs failed, ties solving all 5 seeds, and runs each rule saves or
loses against the shipped one) and writes JSON. It watches training by wrapping tuner.dqn.Best,
the class that keeps the best weights, to copy the weights at every evaluation; training itself
is untouched.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import optuna
from export_pick import HELD_OUT, SHIPPED_BEST, SOLVED  # this script's folder is on sys.path

import tuner.dqn as dqn
from tuner.config import DQNConfig
from tuner.dqn import evaluate, train
from tuner.export import contenders
from tuner.study import recorded

ROOT = Path(__file__).resolve().parent.parent
TRUTH = 100  # episodes 0-99 judge every rule
RECHECK = 20  # episodes 100-119 are a rule's to spend
RUNS: list[Recording] = []  # the Recording of each training run, in the order they began


class Recording(dqn.Best):
    """tuner.dqn.Best that also keeps (step, 5-episode means, weights) at every evaluation."""

    def __init__(self, online) -> None:
        super().__init__(online)
        self.evaluations: list[tuple[int, np.ndarray, object]] = []
        RUNS.append(self)

    def update(self, online, returns: np.ndarray, step: int, recheck=None) -> None:
        super().update(online, returns, step, recheck)
        self.evaluations.append((step, np.array(returns, dtype=float), online.clone()))


def latest(scores: np.ndarray) -> int:
    """The last index of the highest score."""
    return int(len(scores) - 1 - np.argmax(scores[::-1]))


def rules(shown: np.ndarray, recheck: np.ndarray) -> dict[str, int]:
    """Which evaluation each rule keeps, from one seed's 5-episode means `shown` [E] and its
    means over the 20 recheck episodes `recheck` [E]."""
    top = shown == shown.max()
    in_a_row = np.minimum(shown, np.concatenate([shown[:1], shown[:-1]]))
    return {
        "final": len(shown) - 1,
        "best, latest of equal (shipped)": latest(shown),
        "best, earliest of equal": int(np.argmax(top)),
        "best two in a row": latest(in_a_row),
        "equal ones rechecked on 20 more episodes": latest(np.where(top, recheck, -np.inf)),
        "25-episode evaluations": latest((5 * shown + RECHECK * recheck) / (5 + RECHECK)),
    }


def retrain(trial: optuna.trial.FrozenTrial, seeds: int, steps: int | None) -> dict:
    """One tie on the held-out seeds: each rule's pick, per seed, and its 100-episode truth."""
    config = DQNConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}")
    config = config.replace(seed=HELD_OUT, total_steps=steps or config.total_steps)
    RUNS.clear()
    dqn.Best = Recording
    try:
        train(config, seeds=seeds, device="cpu")
    finally:
        dqn.Best = SHIPPED_BEST
    evaluations = RUNS[-1].evaluations
    shown = np.stack([r for _, r, _ in evaluations], axis=1)  # [K, E]
    recheck = np.stack(
        [evaluate(net, config.env, RECHECK, first=TRUTH).mean(1) for _, _, net in evaluations], 1
    )
    picks = {name: [] for name in rules(shown[0], recheck[0])}
    for k in range(seeds):
        for name, i in rules(shown[k], recheck[k]).items():
            picks[name].append(i)
    # every evaluation's weights over episodes 0-99, the truth (cheap beside the training: a tie
    # takes about a second more), so that the JSON can judge any other rule too
    truth = np.stack([evaluate(net, config.env, TRUTH).mean(1) for _, _, net in evaluations], 1)
    return {
        "steps": [s for s, _, _ in evaluations],
        "shown": shown.round(2).tolist(),
        "recheck": recheck.round(2).tolist(),
        "truth": truth.round(2).tolist(),
        "picks": picks,
        "kept": {
            name: [float(truth[k, i]) for k, i in enumerate(ix)] for name, ix in picks.items()
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", action="append", required=True, help="a study's URL; repeatable")
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ties", type=int, default=20, help="at most this many ties a study")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/kept_weights.json")
    args = p.parse_args()

    studies = {}
    for url in args.storage:
        study = optuna.load_study(study_name=args.study_name, storage=url)
        steps = recorded(study, "budget").get("export_steps")
        ties = contenders(study, args.ties)
        print(f"{url}: {len(ties)} ties, {steps or 'their own'} steps each", flush=True)
        done = {}
        for n, trial in enumerate(ties, 1):
            start = time.perf_counter()
            done[trial.number] = r = retrain(trial, args.seeds, steps)
            kept = r["kept"]["best, latest of equal (shipped)"]
            print(
                f"  {n}/{len(ties)} trial {trial.number}: shipped rule {sum(m >= SOLVED for m in kept)}"
                f"/{args.seeds} ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        studies[url] = done

    names = list(rules(np.zeros(2), np.zeros(2)))
    shipped = names[1]
    lines = [
        f"{sum(map(len, studies.values()))} ties of {len(studies)} studies, {args.seeds} held-out "
        f"seeds each, judged over {TRUTH} greedy episodes\n",
        "| rule | held-out runs failed | ties solving all seeds | runs saved / lost against the"
        " shipped rule | kept weights' env step, mean |",
        "|---|---:|---:|---|---:|",
    ]
    table = {}
    for name in names:
        failed = robust = saved = lost = 0
        kept_steps = []
        for done in studies.values():
            for r in done.values():
                kept, base = r["kept"][name], r["kept"][shipped]
                failed += sum(m < SOLVED for m in kept)
                robust += all(m >= SOLVED for m in kept)
                saved += sum(a < SOLVED <= b for a, b in zip(base, kept))
                lost += sum(b < SOLVED <= a for a, b in zip(base, kept))
                kept_steps += [r["steps"][i] for i in r["picks"][name]]
        runs = len(kept_steps)
        ties = sum(map(len, studies.values()))
        table[name] = {
            "failed": failed,
            "runs": runs,
            "robust": robust,
            "ties": ties,
            "saved": saved,
            "lost": lost,
        }
        lines.append(
            f"| {name} | {failed}/{runs} | {robust}/{ties} | {saved} / {lost} | "
            f"{np.mean(kept_steps):,.0f} |"
        )
    print("\n" + "\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "held_out_seeds": list(range(HELD_OUT, HELD_OUT + args.seeds)),
                "truth_episodes": TRUTH,
                "recheck_episodes": RECHECK,
                "rules": table,
                "studies": {url: {str(t): r for t, r in d.items()} for url, d in studies.items()},
            },
            indent=1,
        )
        + "\n"
    )
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
