"""How much do tuner.export's worker processes save, and do they change anything?

    python -m tuner.run --study /tmp/s/cartpole.yaml --trials 200      # any finished study
    python benchmarks/export_jobs.py --storage sqlite:////tmp/s/cartpole.db   # ~8 min on 2 cores

Runs `python -m tuner.export` on the same study with `--jobs 1` (every contender and finalist
trained one after another in the main process: the export before worker processes) and with
`--jobs N` (default: the number of cores), one after the other with nothing else running, and
compares their wall times and their outputs: the race, every verification and every checkpoint
must be the same to the bit, since a config trains the same in a worker as in the main process.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from export_pick import run_export
from vs_zoo import cpu_name

ROOT = Path(__file__).resolve().parent.parent


def summaries(out: Path) -> dict[str, list[dict]]:
    """race.json and every verification.json, without their seconds."""
    files = sorted(out.glob("*/verification.json")) + sorted(out.glob("race.json"))
    found = {}
    for f in files:
        data = json.loads(f.read_text())
        rows = data if isinstance(data, list) else [data]
        found[str(f.relative_to(out))] = [
            {k: v for k, v in r.items() if k != "retrain_seconds"} for r in rows
        ]
    return found


def same_checkpoints(a: Path, b: Path) -> tuple[int, bool]:
    paths = sorted(p.relative_to(a) for p in a.rglob("seed-*.pt"))
    if paths != sorted(p.relative_to(b) for p in b.rglob("seed-*.pt")):
        return len(paths), False
    for path in paths:
        x, y = (torch.load(root / path, weights_only=True)["weights"] for root in (a, b))
        if x.keys() != y.keys() or not all(torch.equal(x[n], y[n]) for n in x):
            return len(paths), False
    return len(paths), True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", required=True, help="SQLAlchemy URL of a finished study")
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/export_jobs.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "jobs1", Path(tmp) / f"jobs{args.jobs}"
        wall_one, wall_many = (
            run_export(args.storage, args.study_name, ["--jobs", str(jobs)], out)["wall_seconds"]
            for jobs, out in ((1, one), (args.jobs, many))
        )
        race = json.loads((one / "race.json").read_text()) if (one / "race.json").exists() else []
        pick = json.loads((one / "best" / "verification.json").read_text())["trial"]
        same_summaries = summaries(one) == summaries(many)
        checkpoints, same_weights = same_checkpoints(one, many)
    rows = [("1 (one at a time)", wall_one), (f"{args.jobs} (worker processes)", wall_many)]
    print(f"\n{cpu_name()}, {os.cpu_count()} cores")
    print(f"{len(race)} contenders raced; best.yaml is trial {pick}\n")
    print("| --jobs | wall s | speed-up |\n|---|---:|---:|")
    for label, wall in rows:
        print(f"| {label} | {wall:.1f} | {wall_one / wall:.2f}x |")
    print(f"\nrace and verifications the same (but their seconds): {same_summaries}")
    print(f"all {checkpoints} checkpoints the same to the bit: {same_weights}")
    result = {
        "machine": {"platform": platform.platform(), "cpu": cpu_name()},
        "cores": os.cpu_count(),
        "storage": args.storage,
        "contenders_raced": len(race),
        "best_trial": pick,
        "wall_seconds": {"1": round(wall_one, 1), str(args.jobs): round(wall_many, 1)},
        "speed_up": round(wall_one / wall_many, 2),
        "same_race_and_verifications": same_summaries,
        "checkpoints": checkpoints,
        "same_checkpoints": same_weights,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
