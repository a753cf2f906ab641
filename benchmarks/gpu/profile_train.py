"""Where a GPU training run spends its time: torch's profiler over a short run of train().

    python benchmarks/gpu/profile_train.py [--config rl_zoo|pick] [--seeds 64] [--steps 10000]
        [--evals]

On an H200 one seed of RL Zoo's CartPole config took 25.6 s and 64 seeds 28.9 s
(benchmarks/results/gpu_h200.txt): the GPU waited on the host, not on arithmetic. This script's
first run (gpu_h200_profile_before.txt: kernel launches 24% of the host's time, acting 31%,
storing 12%) led to the CUDA-graph gradient step, host-copy acting and staged replay rows, after
which one seed took 7.8 s and 64 seeds 25.1 s (gpu_h200_graphs.txt). This prints the
operators that cost the host the most time (self CPU), the kernels that cost the GPU the most,
and the wall time of the run against the time the GPU was busy, so that the next change (fewer
launches, CUDA graphs, fewer host-device copies) can be aimed at what costs. Writes the tables to
--out. Runs on the CPU where there is no GPU (the CUDA columns are then empty).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vs_sb3 import configs  # noqa: E402

from tuner.config import load_config  # noqa: E402
from tuner.dqn import train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=["rl_zoo", "pick"], default="rl_zoo")
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", type=int, default=25)
    p.add_argument(
        "--evals", action="store_true", help="keep the config's evaluations (export's retrain)"
    )
    p.add_argument("--out", type=Path, default=Path("profile_train.txt"))
    args = p.parse_args()

    if args.config == "rl_zoo":
        config = configs(args.steps)["rl_zoo"][0]
    else:
        config = load_config(ROOT / "studies/configs/cartpole_default_pick.yaml")
    config = config.replace(total_steps=args.steps)
    if not args.evals:
        config = config.replace(eval_every=0)
    train(config.replace(total_steps=2000), seeds=args.seeds, device=args.device)  # warm up
    activities = [ProfilerActivity.CPU]
    if args.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        result = train(config, seeds=args.seeds, device=args.device)
        if args.device == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - start
    events = prof.key_averages()
    busy_us = sum(e.self_device_time_total for e in events) if args.device == "cuda" else 0.0
    head = (
        f"{args.config}, {args.seeds} seeds x {args.steps:,} steps on {args.device}: "
        f"{wall:.1f} s with the profiler on ({result.gradient_steps:,} gradient steps a seed); "
        f"kernels busy {busy_us / 1e6:.1f} s"
    )
    by_cpu = events.table(sort_by="self_cpu_time_total", row_limit=args.rows)
    parts = [head, "", "by self CPU time:", by_cpu]
    if args.device == "cuda":
        parts += [
            "",
            "by GPU time:",
            events.table(sort_by="self_cuda_time_total", row_limit=args.rows),
        ]
    # the host's time by Python function (tuner's own code and the torch calls it makes): a
    # second run under cProfile, which the torch profiler's operator table cannot show
    stats_run = cProfile.Profile()
    start = time.perf_counter()
    stats_run.enable()
    train(config, seeds=args.seeds, device=args.device)
    if args.device == "cuda":
        torch.cuda.synchronize()
    stats_run.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(stats_run, stream=buffer)
    stats.sort_stats("tottime").print_stats(args.rows)
    stats.sort_stats("cumulative").print_stats("tuner", args.rows)
    parts += [
        "",
        f"by Python function (cProfile, {time.perf_counter() - start:.1f} s with it on):",
        buffer.getvalue(),
    ]
    text = "\n".join(parts)
    args.out.write_text(text + "\n")
    print(head)
    print(f"tables in {args.out}")


if __name__ == "__main__":
    main()
