"""Does a trainer change that moves the bits change how often a config solves the task?

    python benchmarks/quality_ab.py --old e45d997 --storage sqlite:////tmp/s/cartpole.db
    python benchmarks/quality_ab.py --old HEAD~1 --storage URL --trials 145,115 --seeds 20

A speed change that keeps every bit (benchmarks/engine_ab.py says "same final returns") cannot
change quality. One that rounds differently (a product then a sum where one fused instruction
was) sends every run elsewhere after a few hundred gradient steps, and then a study's outcome
can only be compared in distribution: a handful of studies cannot tell a worse trainer from
TPE's luck. This retrains each config (by default every trial tied at a study's best score) on
the same fresh seeds with the trainer of `--old` (extracted with `git archive`) and with the
working tree's, 100 greedy episodes per seed, and counts the seeds that solve the task (mean
return >= the env's reward threshold) on each side. The runs are not timed, so the two sides
run at once, one process each, in chunks of 10 seeds. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
from engine_ab import cpu_name, old_tree, run_in

from tuner.config import DQNConfig
from tuner.envs import check_env
from tuner.export import contenders

ROOT = Path(__file__).resolve().parents[1]
FIRST_SEED = 6_000_000  # no study, export or other benchmark trains on these
CHUNK = 10
CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from tuner.config import DQNConfig
from tuner.dqn import retrain
fields, first, n = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = DQNConfig.from_dict(fields).replace(seed=first)
done = retrain(config, list(range(first, first + n)), "cpu", 100, False)
print(json.dumps(done.returns.mean(1).tolist()))
"""


def retrain(tree: Path, fields: dict, first: int, n: int) -> list[float]:
    return run_in(tree, CHILD, json.dumps(fields), str(first), str(n))


def interval(a: int, b: int, n: int) -> tuple[float, float]:
    """95% interval for the difference of two solve shares a/n - b/n (Wald; fine at n >= 100)."""
    p, q = a / n, b / n
    half = 1.96 * math.sqrt((p * (1 - p) + q * (1 - q)) / n)
    return p - q - half, p - q + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="a git revision of this repository")
    parser.add_argument("--storage", required=True, help="a finished study's URL")
    parser.add_argument("--study-name", default="cartpole")
    parser.add_argument(
        "--trials", help="comma-separated trial numbers (default: those within 1%% of the best)"
    )
    parser.add_argument("--seeds", type=int, default=40, help="fresh seeds per config and side")
    parser.add_argument(
        "--threshold", type=float, help="solved at (default: the env's reward threshold)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quality_ab.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    if args.trials:
        numbers = [int(t) for t in args.trials.split(",")]
    else:
        numbers = [t.number for t in contenders(study)]
    configs = {n: study.trials[n].user_attrs["config"] for n in numbers}
    if args.threshold is None:
        env = DQNConfig.from_dict(next(iter(configs.values()))).env
        args.threshold = check_env(env).reward_threshold
        if args.threshold is None:
            sys.exit(f"{env} has no reward threshold: pass --threshold")
    chunks = [
        (first, min(CHUNK, FIRST_SEED + args.seeds - first))
        for first in range(FIRST_SEED, FIRST_SEED + args.seeds, CHUNK)
    ]
    with old_tree(args.old) as old:
        trees = {"old": old, "new": ROOT}
        print(
            f"old: {args.old}; new: the working tree of {ROOT}; {cpu_name()}\n"
            f"{len(configs)} configs of {args.storage}, seeds {FIRST_SEED:,}-"
            f"{FIRST_SEED + args.seeds - 1:,} on each side, 100 greedy episodes each\n",
            flush=True,
        )
        print(
            "| trial | old: solved | new: solved | old: mean | new: mean |\n|---|---:|---:|---:|---:|"
        )
        rows = {}
        with ThreadPoolExecutor(2) as pool:
            for number, fields in configs.items():
                jobs = {
                    side: [pool.submit(retrain, tree, fields, *c) for c in chunks]
                    for side, tree in trees.items()
                }
                per_seed = {side: [r for j in js for r in j.result()] for side, js in jobs.items()}
                solved = {s: sum(r >= args.threshold for r in v) for s, v in per_seed.items()}
                rows[number] = {"per_seed": per_seed, "solved": solved}
                mean = {s: sum(v) / len(v) for s, v in per_seed.items()}
                print(
                    f"| {number} | {solved['old']}/{args.seeds} | {solved['new']}/{args.seeds} "
                    f"| {mean['old']:.1f} | {mean['new']:.1f} |",
                    flush=True,
                )
    total = len(rows) * args.seeds
    old_solved = sum(r["solved"]["old"] for r in rows.values())
    new_solved = sum(r["solved"]["new"] for r in rows.values())
    low, high = interval(new_solved, old_solved, total)
    print(
        f"\nall: old {old_solved}/{total} ({old_solved / total:.1%}), new {new_solved}/{total} "
        f"({new_solved / total:.1%}); new - old {(new_solved - old_solved) / total:+.1%}, "
        f"95% interval {low:+.1%} to {high:+.1%}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "old": args.old,
                "cpu": cpu_name(),
                "storage": args.storage,
                "first_seed": FIRST_SEED,
                "seeds": args.seeds,
                "threshold": args.threshold,
                "trials": rows,
                "solved": {"old": old_solved, "new": new_solved, "of": total},
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
