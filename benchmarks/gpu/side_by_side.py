"""Do configs retrained side by side on one GPU, one process each, finish sooner than in turn?

    python benchmarks/gpu/side_by_side.py [--procs 1,4,8] [--seeds 10] [--devices cuda,cpu]

A small network leaves a GPU idle between kernel launches, so one process's retrain of the
default study's pick takes about as long at 1 seed as at 32 (benchmarks/results/gpu_h200.txt).
tuner.export retrains its configs one after another on a GPU; this times P processes that each
retrain the pick on S seeds at once (what the export's worker processes would do), on the GPU
and on the CPU cores, and prints the wall time of each round against P times one process alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def one(job: tuple[str, int, int, int], steps: int | None = None) -> float:
    device, seeds, threads, index = job
    torch.set_num_threads(threads)
    from tuner.config import load_config
    from tuner.dqn import evaluate, train

    config = load_config(ROOT / "studies/configs/cartpole_default_pick.yaml")
    config = config.replace(eval_every=0, seed=config.seed + 1000 * index)
    if steps is not None:
        config = config.replace(total_steps=steps, learning_starts=min(steps // 2, 1000))
    start = time.perf_counter()
    result = train(config, seeds=seeds, device=device)
    evaluate(result.network, config.env, 100)
    return time.perf_counter() - start


def warm(job: tuple[str, int, int, int]) -> float:
    return one(job, steps=1200)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procs", default="1,4,8")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--devices", default="cuda,cpu")
    p.add_argument("--out", type=Path, default=Path("side_by_side.json"))
    args = p.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        for procs in (int(x) for x in args.procs.split(",")):
            threads = max(1, cores // procs)
            with mp.get_context("spawn").Pool(procs) as pool:
                # the processes start, compile their loops and set up the device before the
                # clock starts (on a fresh GPU machine that took the first process ~10 s)
                pool.map(warm, [(device, args.seeds, threads, i) for i in range(procs)])
                start = time.perf_counter()
                each = pool.map(one, [(device, args.seeds, threads, i) for i in range(procs)])
                wall = time.perf_counter() - start
            rows.append(
                {
                    "device": device,
                    "procs": procs,
                    "threads_each": threads,
                    "wall_s": round(wall, 1),
                    "each_s": [round(t, 1) for t in each],
                }
            )
            print(f"{device} x{procs}: {wall:.1f} s (each {max(each):.1f} s at most)", flush=True)
    print(f"\n{'device':>6} {'procs':>5} {'wall s':>7} {'configs/min':>11} {'vs in turn':>10}")
    for r in rows:
        alone = next(x for x in rows if x["device"] == r["device"] and x["procs"] == 1)
        r["vs_in_turn"] = round(r["wall_s"] / (alone["wall_s"] * r["procs"]), 2)
        print(
            f"{r['device']:>6} {r['procs']:>5} {r['wall_s']:>7.1f} "
            f"{60 * r['procs'] / r['wall_s']:>11.1f} {r['vs_in_turn']:>9.2f}x"
        )
    args.out.write_text(json.dumps({"cores": cores, "seeds": args.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
