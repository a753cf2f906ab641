"""Do the ties that learn faster hold up on held-out seeds? And how do held-out seeds fail?

    python benchmarks/learning_speed.py     # reads benchmarks/results/export_pick_*.json, no training

A default CartPole study ends with trials tied at 500 on their own seeds, and CartPole's returns
stop at 500, so where a tie ends cannot tell a config that learns with room to spare from one
that reaches 500 just before its 20,000 steps run out. How fast it got there can. The
export_pick.py runs that keep learning curves (from 2026-12-06's Intel runs on) hold, for every
tie, its curve on the study's 3 seeds, on the race's 3 fresh seeds (when the export raced), on
the export's 10 verification seeds (for the few it verified in full) and on the 5 held-out seeds
that judge it. Every comparison here is at the trials' length: a run whose held-out seeds trained
longer (the export's default since budget.export_steps) is read from its --longer pass when that
pass trained as long as the trials, and left out when none did. This asks, pooled over the runs:

- how held-out seeds fail: learned then lost it ("collapsed": an earlier evaluation reached 475
  and the final 100 episodes did not), or never reached 475 at any evaluation ("never"); and at
  which evaluation each held-out seed first reached 475;
- whether ties whose 3 study seeds held 475 from an earlier evaluation on (the objective only
  asks it of the last 2) are more often robust;
- whether learning speed (the mean of every evaluation of every seed, as a share of 500: the area
  under the curve) on the study's, the race's or the verification's seeds tells which ties are
  robust (all 5 held-out seeds at 475 or more): within each study, the candidates that solved
  every seed of that stage are split at their median speed, and the faster and the slower half
  are compared, pooled over the studies; the "pooled" rows split every study's candidates at
  one median (studies with one candidate count there, and studies differ in how fast their
  configs learn).

Prints tables and writes benchmarks/results/learning_speed.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from export_pick import longer_way  # this script's folder is on sys.path when it runs
from pick_pool import rate, trained_steps

ROOT = Path(__file__).resolve().parent.parent
SOLVED = 475.0  # CartPole-v1's reward threshold
TOP = 500.0  # CartPole-v1's most per episode


def speed(curves: list[list[float | None]]) -> float:
    """The area under [seed][evaluation] curves as a share of the most there is (a diverged
    seed's missing evaluations count as 0)."""
    values = np.array([[0.0 if r is None else r for r in seed] for seed in curves], dtype=float)
    return float(values.mean() / TOP)


def study_curve(rows: list[list[float]]) -> list[list[float]]:
    """A trial's stored curve, [[step, return of each seed], ...], as [seed][evaluation]."""
    return np.array(rows, dtype=float)[:, 1:].T.tolist()


def halves(candidates: list[tuple[float, bool]]) -> tuple[list[bool], list[bool]]:
    """The robustness of the faster and the slower half of one study's candidates (split at the
    median speed; a candidate at the median goes with neither when their number is odd)."""
    ranked = sorted(candidates, key=lambda c: -c[0])
    half = len(ranked) // 2
    return [r for _, r in ranked[:half]], [r for _, r in ranked[len(ranked) - half :]]


def at_trial_steps(data: dict) -> dict | None:
    """An export_pick run as its trials trained, which is what this script compares: the run
    itself when its held-out seeds trained as long as the study's trials; its --longer pass (that
    pass's held-out runs, and the race of its "race, N steps" export) when that one did, as when
    the export's default is longer than a trial (budget.export_steps); None when neither did."""
    trained = trained_steps(data)
    if data.get("held_out_steps", trained) == trained:
        return data
    other = data.get("longer") or {}
    if other.get("steps") != trained:
        return None
    race = data["exports"].get(longer_way(trained))
    return {
        **data,
        "ties": other["ties"],
        "ties_held_out_curves": other["ties_held_out_curves"],
        "exports": {"race": race} if race else {},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/learning_speed.json")
    args = p.parse_args()

    runs, longer, left_out = [], 0, 0
    for path in sorted(args.results.glob("export_pick_*.json")):
        data = json.loads(path.read_text())
        if "ties_held_out_curves" not in data:
            continue
        same = at_trial_steps(data)
        if same is None:
            left_out += 1
            continue
        longer += same is not data
        runs.append((path.name, same))
    if longer:
        print(f"({longer} runs read from their --longer pass: it trained as long as their trials)")
    if left_out:
        print(f"({left_out} runs left out: none of their held-out passes trained as long as their")
        print(" trials)")
    if not runs:
        raise SystemExit(f"no export_pick_*.json with learning curves in {args.results}")

    # how held-out seeds fail, and when they first reach 475
    outcomes = {"solved": 0, "collapsed": 0, "never": 0}
    first: dict[str, int] = {}
    steps = None
    for _, data in runs:
        for trial, means in data["ties"].items():
            for final, curve in zip(means, data["ties_held_out_curves"][trial]):
                reached = [i for i, r in enumerate(curve) if r is not None and r >= SOLVED]
                if final >= SOLVED:
                    outcomes["solved"] += 1
                else:
                    outcomes["collapsed" if reached else "never"] += 1
                key = str(reached[0]) if reached else "never"
                first[key] = first.get(key, 0) + 1
        steps = steps or next(
            (s["eval_steps"] for w in data["exports"].values() for s in w["verified"]), None
        )
    seeds = sum(outcomes.values())
    ties = sum(len(data["ties"]) for _, data in runs)
    print(f"{len(runs)} export_pick runs with curves: {ties} ties x 5 held-out seeds = {seeds}\n")
    print("| held-out seed | seeds | share |\n|---|---:|---:|")
    for name, n in outcomes.items():
        print(f"| {name} | {n} | {n / seeds:.0%} |")
    labels = {str(i): f"{s:,}" for i, s in enumerate(steps or [])}
    print("\nthe evaluation at which a held-out seed first reached 475 (5 greedy episodes):\n")
    print("| env step | seeds | share |\n|---|---:|---:|")
    for key in sorted(first, key=lambda k: (k == "never", int(k) if k != "never" else 0)):
        print(f"| {labels.get(key, key)} | {first[key]} | {first[key] / seeds:.0%} |")

    # from which evaluation on every one of the study's seeds held 475: the objective averages
    # the last 2 evaluations, so a tie may have got there only at the second-last one
    since: dict[str, list[int]] = {}
    for _, data in runs:
        for trial, means in data["ties"].items():
            rows = (data.get("ties_study_curves") or {}).get(trial)
            if not rows:
                continue
            held = [min(row[1:]) >= SOLVED for row in rows]
            start = len(held)
            while start and held[start - 1]:
                start -= 1
            key = f"{int(rows[start][0]):,}" if start < len(rows) else "not at the last"
            k = since.setdefault(key, [0, 0])
            k[0] += all(m >= SOLVED for m in means)
            k[1] += 1
    print("\nrobust ties by the evaluation from which all 3 of the study's seeds held 475:\n")
    print("| held 475 from env step | ties | robust |\n|---|---:|---|")
    for key in sorted(since, key=lambda k: int(k.replace(",", "")) if k[0].isdigit() else 1e9):
        print(f"| {key} | {since[key][1]} | {rate(*since[key])} |")

    # does speed on a stage's seeds tell the robust ties?
    stages: dict[str, dict] = {}

    def add(stage: str, study: str, candidates: list[tuple[float, bool]]) -> None:
        s = stages.setdefault(stage, {"studies": 0, "candidates": 0, "faster": [], "slower": []})
        pooled = stages.setdefault(
            stage + ", pooled", {"studies": 0, "candidates": [], "faster": [], "slower": []}
        )
        pooled["candidates"] += candidates
        pooled["studies"] += bool(candidates)
        if len(candidates) < 2:
            return
        fast, slow = halves(candidates)
        s["studies"] += 1
        s["candidates"] += len(candidates)
        s["faster"] += fast
        s["slower"] += slow

    for name, data in runs:
        robust = {int(t): all(m >= SOLVED for m in means) for t, means in data["ties"].items()}
        curves = data.get("ties_study_curves", {})
        add(
            "study's 3 seeds (every tie)",
            name,
            [(speed(study_curve(curves[str(t)])), robust[t]) for t in robust if curves.get(str(t))],
        )
        race = data["exports"].get("race", {}).get("race", [])
        add(
            "race's 3 fresh seeds (ties that solved all 3)",
            name,
            [
                (speed(r["eval_curve"]), robust[r["trial"]])
                for r in race
                if min(r["per_seed_mean"]) >= SOLVED and r["trial"] in robust
            ],
        )
        verified = {
            v["trial"]: v
            for w in data["exports"].values()
            if w.get("keep_weights", "final") == "final"  # as the held-out truth is judged
            for v in w["verified"]
            if len(v["seeds"]) == 10
        }
        add(
            "export's 10 fresh seeds (verified configs that solved all 10)",
            name,
            [
                (speed(v["eval_curve"]), robust[t])
                for t, v in verified.items()
                if min(v["per_seed_mean"]) >= SOLVED and t in robust
            ],
        )

    print("\nrobust ties (all 5 held-out seeds >= 475) among the faster and the slower half of")
    print("each study's candidates, by the area under their curve on each stage's seeds:\n")
    print("| speed measured on | studies | candidates | faster half robust | slower half robust |")
    print("|---|---:|---:|---|---|")
    table = {}
    for stage, s in stages.items():
        if isinstance(s["candidates"], list):  # pooled: one split over every study's candidates
            s["faster"], s["slower"] = halves(s["candidates"])
            s["candidates"] = len(s["candidates"])
        fast, slow = s["faster"], s["slower"]
        print(
            f"| {stage} | {s['studies']} | {s['candidates']} | {rate(sum(fast), len(fast))} | "
            f"{rate(sum(slow), len(slow))} |"
        )
        table[stage] = {
            "studies": s["studies"],
            "candidates": s["candidates"],
            "faster_robust": [sum(fast), len(fast)],
            "slower_robust": [sum(slow), len(slow)],
        }
    args.out.write_text(
        json.dumps(
            {
                "runs": [name for name, _ in runs],
                "held_out_outcomes": outcomes,
                "first_reached_475_at": {labels.get(k, k): n for k, n in first.items()},
                "robust_by_study_seeds_holding_475_from": since,
                "speed_halves": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
