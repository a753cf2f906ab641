"""How the export's verification retrain scales with the number of seeds, against SB3's one seed.

    pip install -e ".[bench]"
    python benchmarks/export_seeds.py                          # CPU, and CUDA when there is one
    python benchmarks/export_seeds.py --sizes 1,8 --no-sb3     # a quick look
    python benchmarks/export_seeds.py --sizes 1,10 --zoo-sizes "" --no-sb3 --repeat 3

The timed job is exactly what `python -m tuner.export` does per config: train S seeds in one
batched run, then play 100 greedy episodes per seed. Two configs:

- study: the default study's config, `--study-config` (default
  studies/configs/cartpole_scaled.yaml, what `tuner.export` picked from a `tuner.run` of an
  earlier default study; an older default's pick, 256x256, is
  studies/configs/cartpole_tuned.yaml), at its budget.
  Target on this CPU: 10 seeds in at most 4x the time of one.
- rl_zoo: RL Zoo's tuned CartPole config at 50k steps. Target on a GPU: 64 seeds verified in no
  more time than Stable-Baselines3 takes to train one seed of it on this machine's CPU, which is
  measured in the same run (torch's default threads).

With `--repeat N` the whole plan runs N times in turn (S=1, S=10, S=1, S=10, ...) and each row
reports the run nearest the median: on a shared machine one run of the same job can take 1.6x
another.
Prints a table and writes benchmarks/results/export_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from statistics import median

import torch

from tuner.config import DQNConfig, load_config
from tuner.dqn import evaluate, train

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from vs_sb3 import configs  # noqa: E402  RL Zoo's config, as DQNConfig and as SB3 arguments


def verify_seconds(config: DQNConfig, seeds: int, device: str, episodes: int) -> dict:
    start = time.perf_counter()
    result = train(config, seeds=seeds, device=device)
    trained = time.perf_counter() - start
    returns = evaluate(result.network, config.env, episodes)
    return {
        "seeds": seeds,
        "device": device,
        "train_s": round(trained, 2),
        "total_s": round(time.perf_counter() - start, 2),
        "mean_return": round(float(returns.mean()), 1),
    }


def sb3_one_seed(steps: int) -> float:
    """Stable-Baselines3 training one seed of RL Zoo's CartPole DQN on the CPU (default threads)."""
    from stable_baselines3 import DQN

    kwargs = configs(steps)["rl_zoo"][1]  # the same SB3 arguments vs_sb3.py compares against
    model = DQN("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **kwargs)
    start = time.perf_counter()
    model.learn(steps)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--study-config", type=Path, default=ROOT / "studies/configs/cartpole_scaled.yaml"
    )
    p.add_argument("--sizes", default="1,8,10,32,128", help="seed counts for the study config")
    p.add_argument("--zoo-sizes", default="1,64", help="seed counts for RL Zoo's config")
    p.add_argument("--zoo-steps", type=int, default=50_000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--no-sb3", action="store_true", help="skip SB3's one-seed reference")
    p.add_argument(
        "--devices",
        default="cpu,cuda",
        help="devices to time, in order (cuda only where there is one); a GPU machine's own "
        "CPU is not the CPU the targets speak of, so benchmarks/gpu/check.sh times cuda alone",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="rounds of the whole plan; rows report the median"
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/export_seeds.json")
    args = p.parse_args()

    study = load_config(args.study_config).replace(eval_every=0)
    zoo = configs(args.zoo_steps)["rl_zoo"][0]
    devices = [
        d
        for d in args.devices.split(",")
        if d == "cpu" or (d == "cuda" and torch.cuda.is_available())
    ]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    zoo_sizes = [int(s) for s in args.zoo_sizes.split(",") if s]
    plan = [("study", study, d, s) for d in devices for s in sizes]
    plan += [("rl_zoo", zoo, d, s) for d in devices for s in zoo_sizes]
    plan = [row for row in plan if not (row[0] == "rl_zoo" and row[2] == "cpu" and row[3] > 8)]

    runs: list[list[dict]] = [[] for _ in plan]
    for round_ in range(1, args.repeat + 1):
        for i, (name, config, device, seeds) in enumerate(plan):
            run = verify_seconds(config, seeds, device, args.episodes)
            runs[i].append(run)
            print(
                f"{name:>7} {device:>4} S={seeds:>4}: {run['total_s']:8.1f} s "
                f"(train {run['train_s']:.1f} s), mean return {run['mean_return']}"
                + (f"  [round {round_}/{args.repeat}]" if args.repeat > 1 else ""),
                flush=True,
            )
    rows = []
    for (name, _, _, _), done in zip(plan, runs):
        mid = median(r["total_s"] for r in done)
        row = {"config": name, **min(done, key=lambda r: abs(r["total_s"] - mid))}  # a real run
        if len(done) > 1:
            row["total_s_runs"] = [r["total_s"] for r in done]
        rows.append(row)
    sb3 = None if args.no_sb3 else round(sb3_one_seed(args.zoo_steps), 2)

    if args.repeat > 1:
        print(f"\neach row: the run nearest the median of {args.repeat} rounds")
    print(
        f"\n{'config':>7} {'device':>6} {'seeds':>6} {'verify s':>9} {'per seed':>9} {'vs S=1':>7}"
    )
    for row in rows:
        one = next(
            (
                r
                for r in rows
                if (r["config"], r["device"], r["seeds"]) == (row["config"], row["device"], 1)
            ),
            None,
        )
        row["vs_one_seed"] = round(row["total_s"] / one["total_s"], 2) if one else None
        ratio = f"{row['vs_one_seed']:.2f}x" if one else "-"
        rounds = ""
        if one and "total_s_runs" in row:  # each round's ratio, against that round's S=1
            row["vs_one_seed_runs"] = [
                round(t / t1, 2) for t, t1 in zip(row["total_s_runs"], one["total_s_runs"])
            ]
            rounds = "  rounds: " + ", ".join(f"{r:.2f}x" for r in row["vs_one_seed_runs"])
        print(
            f"{row['config']:>7} {row['device']:>6} {row['seeds']:>6} {row['total_s']:>9.1f} "
            f"{row['total_s'] / row['seeds']:>9.2f} {ratio:>7}{rounds}"
        )
    targets = {}
    ten = next(
        (r for r in rows if (r["config"], r["device"], r["seeds"]) == ("study", "cpu", 10)), None
    )
    if ten:
        targets["cpu_10_seeds_vs_one"] = {
            "value": ten["vs_one_seed"],
            "target": 4.0,
            "met": ten["vs_one_seed"] <= 4.0,
        }
    gpu = next(
        (r for r in rows if (r["config"], r["device"], r["seeds"]) == ("rl_zoo", "cuda", 64)), None
    )
    if sb3 is not None:
        print(
            f"\nSB3, one seed of RL Zoo's config, {args.zoo_steps:,} steps on this CPU: {sb3:.1f} s"
        )
        if gpu:
            targets["gpu_64_zoo_seeds_vs_sb3_one"] = {
                "value": gpu["total_s"],
                "target": sb3,
                "met": gpu["total_s"] <= sb3,
            }
    for name, t in targets.items():
        print(f"target {name}: {t['value']} vs {t['target']} -> {'met' if t['met'] else 'MISSED'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpu_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                "episodes": args.episodes,
                "repeat": args.repeat,
                "rows": rows,
                "sb3_one_seed_s": sb3,
                "targets": targets,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
