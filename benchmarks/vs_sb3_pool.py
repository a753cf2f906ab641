"""tuner's and SB3's returns at RL Zoo's CartPole config, pooled over every block of seeds run.

    python benchmarks/vs_sb3_pool.py      # reads benchmarks/results/vs_sb3_zoo20*.json, no training
    python benchmarks/vs_sb3_pool.py --blocks 'vs_sb3_now20*.json' --out benchmarks/results/vs_sb3_pool_now.json

Each `python benchmarks/vs_sb3.py --only rl_zoo --quality-seeds 20 --first-seed N` run trains
seeds N..N+19 on both sides (SB3 one by one, tuner as one batch) and scores each with 100 greedy
episodes. One block of 20 cannot tell the two apart; this pools the blocks: mean return and
seeds >= 475 per side, the difference in means with a bootstrap 95% interval, Mann-Whitney U on
the returns and Fisher's exact test on the seeds that solve. Prints a table and writes
benchmarks/results/vs_sb3_pool.json. The `vs_sb3_zoo20*` blocks were trained by the trainer of
their day; `vs_sb3_now20*` blocks (`vs_sb3.py --sb3-from`) train tuner's side of each block
again with a later trainer against SB3's recorded returns, so `--blocks` picks one set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from vs_sb3 import differ, solved  # noqa: E402  the tests and threshold each block's table used


def compare(sb3: np.ndarray, tuner: np.ndarray, boot: int = 20_000) -> dict:
    gen = np.random.default_rng(0)
    diffs = [
        gen.choice(tuner, len(tuner)).mean() - gen.choice(sb3, len(sb3)).mean() for _ in range(boot)
    ]
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {
        "seeds": len(sb3),
        "sb3_mean": round(float(sb3.mean()), 1),
        "sb3_solved": solved(sb3),
        "tuner_mean": round(float(tuner.mean()), 1),
        "tuner_solved": solved(tuner),
        "difference": round(float(tuner.mean() - sb3.mean()), 1),
        "difference_95": [round(float(low), 1), round(float(high), 1)],
        **{test: round(p, 2) for test, p in differ(list(sb3), list(tuner)).items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--blocks", default="vs_sb3_zoo20*.json", help="which outputs to pool (a glob)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_sb3_pool.json")
    args = p.parse_args()

    blocks = []
    seen: dict[int, str] = {}
    for path in sorted(args.results.glob(args.blocks)):
        data = json.loads(path.read_text())
        first = data.get("first_seed", 0)  # outputs before it was recorded started at seed 0
        if first in seen:
            raise SystemExit(f"{path.name} and {seen[first]} both hold seeds from {first}")
        seen[first] = path.name
        runs = data["configs"]["rl_zoo"]
        sb3, tuner = (np.array(runs[side]["returns"]) for side in ("sb3", "tuner_batch"))
        blocks.append((path.name, sb3, tuner))
    rows = [(name, compare(sb3, tuner)) for name, sb3, tuner in blocks]
    pooled = compare(*(np.concatenate([b[i] for b in blocks]) for i in (1, 2)))
    rows.append((f"all {len(blocks)} blocks", pooled))

    print(
        f"{'block':<32} {'seeds':>5} {'SB3':>14} {'tuner':>14} {'tuner - SB3 (95%)':>24} "
        f"{'MW p':>5} {'Fisher p':>8}"
    )
    for name, r in rows:
        low, high = r["difference_95"]
        print(
            f"{name:<32} {r['seeds']:>5} {r['sb3_mean']:>7.1f} {r['sb3_solved']:>3}/{r['seeds']:<3}"
            f" {r['tuner_mean']:>7.1f} {r['tuner_solved']:>3}/{r['seeds']:<3}"
            f" {r['difference']:>+7.1f} ({low:+.1f} to {high:+.1f})"
            f" {r['mann_whitney_p']:>5.2f} {r['fisher_p']:>8.2f}"
        )
    args.out.write_text(json.dumps(dict(rows), indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
