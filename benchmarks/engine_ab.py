"""The trainer at an earlier commit against the working tree, on the trials the default study runs.

    python benchmarks/engine_ab.py --old 72f9f2c              # 5 configs x 5 runs each side, ~10 min
    python benchmarks/engine_ab.py --old HEAD~1 --reps 1      # a quick look

A default CartPole study spends most of its time in a few corners of its space: 64x64 nets
trained every 2 or 4 env steps, batch 32 or 64, 5-step returns, mostly with prioritized replay.
For each such config this runs `train()` for one whole trial (3 seeds x 20,000 steps, evaluated
every 4,000, one torch thread, as a study worker runs it) with the code of `--old` (extracted with
`git archive`) and with the working tree's, alternating in fresh processes so that a noisy
machine slows both sides alike. Each side's numba kernels are compiled and cached before any
timed run. Reports each side's median wall seconds, new / old, and whether the two trained to the
same final evaluations (a speed change should not change a single returned episode).
Prints a table and writes JSON (default benchmarks/results/engine_ab.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE = {  # the default study's budget and base
    "env": "CartPole-v1",
    "total_steps": 20000,
    "eval_every": 4000,
    "eval_episodes": 5,
    "reward_scale": 0.01,
    "hidden_sizes": [64, 64],
    "learning_rate": 1e-3,
    "gamma": 0.995,
    "n_step": 5,
    "learning_starts": 500,
    "target_update_interval": 500,
    "gradient_steps": 1,
    "seed": 7,
}
CONFIGS = {
    "PER, batch 64, train every 2": {"prioritized": True, "batch_size": 64, "train_frequency": 2},
    "PER, batch 32, train every 2": {"prioritized": True, "batch_size": 32, "train_frequency": 2},
    "PER + Double + dueling, batch 64, every 2": {
        "prioritized": True,
        "double_dqn": True,
        "dueling": True,
        "batch_size": 64,
        "train_frequency": 2,
    },
    "uniform, Double, batch 64, every 2": {
        "double_dqn": True,
        "batch_size": 64,
        "train_frequency": 2,
    },
    "PER, batch 64, train every 4": {"prioritized": True, "batch_size": 64, "train_frequency": 4},
}
CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from tuner.config import DQNConfig
from tuner.dqn import train
fields = json.loads(sys.argv[1])
fields["hidden_sizes"] = tuple(fields["hidden_sizes"])
r = train(DQNConfig(**fields), seeds=3, device="cpu")
print(json.dumps({"wall": r.wall_seconds, "final": r.eval_returns[-1].tolist()}))
"""


def run(tree: Path, fields: dict) -> dict:
    return run_in(tree, CHILD, json.dumps(fields))


def run_in(tree: Path, code: str, *args: str) -> Any:
    """Run `code` in a fresh Python process (one thread) that imports `tuner` from `tree` alone;
    returns its last line of output, read as JSON."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # so that `tuner` is imported from `tree` alone
    )
    if done.returncode:
        sys.exit(f"a run failed in {tree}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line and line.strip())
        info = {k.strip(): v.strip() for k, v in info.items()}
        return f"{info['model name']}, family {info['cpu family']} model {info['model']}"
    except (OSError, KeyError):
        return platform.processor() or platform.machine()


@contextlib.contextmanager
def old_tree(revision: str) -> Iterator[Path]:
    """A temporary directory holding the `tuner` package as it was at `revision` (git archive):
    a child process with it first on PYTHONPATH runs that commit's trainer."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "tuner"], capture_output=True
    )
    if archive.returncode:
        sys.exit(f"git archive {revision} failed: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="a git revision of this repository")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per config and side")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/engine_ab.json")
    args = parser.parse_args()
    with old_tree(args.old) as old:
        trees = {"old": old, "new": ROOT}
        print(f"old: {args.old}; new: the working tree of {ROOT}; {cpu_name()}", flush=True)
        for tree in trees.values():  # compile and cache every kernel first, untimed
            for extra in ({"prioritized": True, "double_dqn": True}, {}):
                run(tree, {**BASE, "total_steps": 3000, **extra})
        rows = {}
        for name, extra in CONFIGS.items():
            walls: dict[str, list[float]] = {"old": [], "new": []}
            finals: dict[str, list] = {}
            for rep in range(args.reps):
                for side in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                    result = run(trees[side], {**BASE, **extra})
                    walls[side].append(result["wall"])
                    finals[side] = result["final"]
            old_s, new_s = statistics.median(walls["old"]), statistics.median(walls["new"])
            rows[name] = {
                "old_seconds": walls["old"],
                "new_seconds": walls["new"],
                "new_over_old": new_s / old_s,
                "same_final_returns": finals["old"] == finals["new"],
                "final_returns": finals,
            }
            same = "same" if finals["old"] == finals["new"] else "DIFFERENT"
            print(
                f"{name:44s} old {old_s:6.2f} s  new {new_s:6.2f} s  new/old {new_s / old_s:.3f}"
                f"  final returns {same}",
                flush=True,
            )
    ratios = [row["new_over_old"] for row in rows.values()]
    geo = statistics.geometric_mean(ratios)
    print(f"geometric mean of new/old over the {len(rows)} configs: {geo:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "old": args.old,
                "cpu": cpu_name(),
                "reps": args.reps,
                "configs": rows,
                "geomean": geo,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
