"""Does a learning rate that falls to 0 by the last step steady the final policy?

    python benchmarks/lr_schedule.py                         # 4 min on 2 cores (Zen 4)
    python benchmarks/lr_schedule.py --seeds 10 --config studies/configs/cartpole_default_pick.yaml

Trains each config twice on the same fresh seeds, once with `learning_rate_schedule: constant`
and once with `linear` (everything else as its file says), all seeds of a run in one batched
`train`, then plays 100 greedy episodes per seed with the final weights. A seed that misses 475
is told apart by its training curve: "collapsed" when an earlier evaluation reached 475 (it had
learned the task and lost it), "never solved" otherwise. The two configs built in are picks of
the default study: cartpole_default_pick.yaml, whose misses are collapses, and the vs_zoo pick
that solved 4 of 5 fresh seeds, whose misses are mostly slow learners.
Prints a table and writes JSON (default benchmarks/results/lr_schedule.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tuner.config import load_config
from tuner.dqn import evaluate, train
from tuner.errors import TunerError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_zoo import cpu_name

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ROOT / "studies/configs/cartpole_default_pick.yaml",
    ROOT / "benchmarks/configs/zen4_vs_zoo_trial109.yaml",
]
SOLVED = 475.0


def run(path: str, schedule: str, seeds: int, first: int, episodes: int) -> dict:
    torch.set_num_threads(1)
    config = load_config(path).replace(learning_rate_schedule=schedule, seed=first)
    start = time.perf_counter()
    result = train(config, seeds=seeds, device="cpu")
    final = evaluate(result.network, config.env, episodes).mean(1)
    curves = result.eval_returns.T  # [K, n_evals], 5-episode means during training
    missed = final < SOLVED
    collapsed = missed & (curves[:, :-1] >= SOLVED).any(1)
    return {
        "config": Path(path).name,
        "schedule": schedule,
        "seeds": list(range(first, first + seeds)),
        "wall_s": round(time.perf_counter() - start, 1),
        "final": [round(float(r), 2) for r in final],
        "curves": curves.round(1).tolist(),
        "solved": int((~missed).sum()),
        "collapsed": int(collapsed.sum()),
        "never_solved": int((missed & ~collapsed).sum()),
        "mean": round(float(final.mean()), 1),
        "worst": round(float(final.min()), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[str(c) for c in CONFIGS])
    p.add_argument("--seeds", type=int, default=60, help="fresh seeds per run (default 60)")
    p.add_argument("--first", type=int, default=7_100_000, help="first seed (default 7,100,000)")
    p.add_argument("--episodes", type=int, default=100, help="greedy episodes per seed")
    p.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/lr_schedule.json")
    args = p.parse_args()
    for path in args.config:  # a bad file stops here, before anything runs
        try:
            load_config(path)
        except TunerError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
    plan = [(c, s) for c in args.config for s in ("constant", "linear")]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run, c, s, args.seeds, args.first, args.episodes) for c, s in plan]
        rows = []
        for (c, s), future in zip(plan, futures):
            rows.append(future.result())
            print(f"done: {Path(c).name}, {s} ({rows[-1]['wall_s']} s)", file=sys.stderr)

    print(f"\n{cpu_name()}: {args.seeds} fresh seeds a run ({args.first} up), ", end="")
    print(f"{args.episodes} greedy episodes each")
    head = f"{'config':<28} {'schedule':<9} {'solved':>8} {'collapsed':>9} {'never':>6}"
    print(head + f" {'mean':>6} {'worst':>6} {'wall s':>7}")
    for r in rows:
        print(
            f"{r['config']:<28} {r['schedule']:<9} {r['solved']:>4}/{args.seeds:<3} "
            f"{r['collapsed']:>9} {r['never_solved']:>6} {r['mean']:>6.1f} {r['worst']:>6.1f} "
            f"{r['wall_s']:>7.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpu": cpu_name()}
    args.out.write_text(json.dumps({"machine": machine, "runs": rows}, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
