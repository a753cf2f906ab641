"""tuner's Acrobot-v1 study pick against RL Zoo's tuned Acrobot DQN, on the same held-out seeds.

    pip install -e ".[bench]"
    python benchmarks/acrobot.py                     # up to an hour on 2 cores, most of it SB3
    python benchmarks/acrobot.py --only pick,zoo_20k --seeds 3   # tuner's rows alone, 2 min

Each row trains one config on seeds --first, --first + 1, ... (5,000,000 up by default: no study,
export or other benchmark uses them) and plays 100 greedy episodes per seed from the same fixed
reset seeds, with one torch thread:

- zoo_sb3: RL Zoo's tuned config (studies/configs/rl_zoo_acrobot.yaml) trained by
  Stable-Baselines3 for its own 100k env steps, one seed at a time: what RL Zoo's users get;
- zoo_100k: the same config trained by tuner for 100k steps, all seeds in one batched run;
- zoo_20k: the same config trained by tuner at the study's budget, 20k steps, its epsilon
  falling over the same 12% of them (the study's enqueued trial keeps 12,000 steps, as written);
- pick: the config `python -m tuner.export` picked from `python -m tuner.run --study
  studies/acrobot.yaml --trials 100` (--config, default studies/configs/acrobot_pick.yaml), 20k.

A seed solves Acrobot when its mean return reaches the env's threshold (-100: the tip swings up
within 100 steps on average). Prints a table and writes benchmarks/results/acrobot.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from vs_sb3 import run_sb3
from vs_zoo import cpu_name

from tuner.config import DQNConfig, load_config
from tuner.dqn import evaluate, train
from tuner.envs import check_env
from tuner.errors import TunerError

ROOT = Path(__file__).resolve().parent.parent
ENV = "Acrobot-v1"
ZOO_SB3 = dict(  # rl-baselines3-zoo hyperparams/dqn.yml, Acrobot-v1; the rest SB3's defaults
    learning_rate=6.3e-4,
    batch_size=128,
    buffer_size=50_000,
    learning_starts=0,
    gamma=0.99,
    target_update_interval=250,
    train_freq=4,
    gradient_steps=-1,
    exploration_fraction=0.12,
    exploration_final_eps=0.1,
    policy_kwargs=dict(net_arch=[256, 256]),
)
ROWS = {
    "zoo_sb3": "RL Zoo's config, SB3",
    "zoo_100k": "RL Zoo's config, tuner",
    "zoo_20k": "RL Zoo's config, tuner, study budget",
    "pick": "tuner's study pick",
}


def tuner_row(config: DQNConfig, seeds: list[int], episodes: int) -> dict:
    result = train(config.replace(seed=seeds[0], eval_every=0), seeds=len(seeds), device="cpu")
    returns = evaluate(result.network, config.env, episodes).mean(1)
    return {"steps": config.total_steps, "wall": result.wall_seconds, "returns": returns.tolist()}


def sb3_row(steps: int, seeds: list[int], episodes: int) -> dict:
    runs = []
    for seed in seeds:  # several minutes each: say how each went
        run = run_sb3(ZOO_SB3, steps, seed, episodes, ENV)
        print(f"    SB3 seed {seed}: {run['return']:.1f} in {run['wall']:.0f} s", flush=True)
        runs.append(run)
    return {
        "steps": steps,
        "wall": sum(r["wall"] for r in runs),
        "returns": [r["return"] for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "studies/configs/acrobot_pick.yaml"))
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows, of {', '.join(ROWS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first", type=int, default=5_000_000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/acrobot.json"))
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in ROWS]
    try:
        if unknown:
            raise TunerError(f"--only: no row {unknown[0]!r}; the rows are {', '.join(ROWS)}")
        pick = load_config(args.config)
        if pick.env != ENV:
            raise TunerError(f"{args.config} trains {pick.env}, not {ENV}")
    except TunerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    threshold = check_env(ENV).reward_threshold
    zoo = load_config(ROOT / "studies/configs/rl_zoo_acrobot.yaml")
    seeds = list(range(args.first, args.first + args.seeds))
    print(f"{cpu_name()}: seeds {seeds[0]}-{seeds[-1]}, {args.episodes} greedy episodes each")
    results = {}
    for name in only:
        start = time.perf_counter()
        if name == "zoo_sb3":
            row = sb3_row(zoo.total_steps, seeds, args.episodes)
        elif name == "pick":
            row = tuner_row(pick, seeds, args.episodes)
        else:
            steps = zoo.total_steps if name == "zoo_100k" else pick.total_steps
            # SB3 decays epsilon over a fraction (0.12) of the steps it is asked for
            config = zoo.replace(total_steps=steps, epsilon_decay_steps=int(0.12 * steps))
            row = tuner_row(config, seeds, args.episodes)
        row["solved"] = int(sum(r >= threshold for r in row["returns"]))
        results[name] = row
        print(f"  {ROWS[name]}: {time.perf_counter() - start:.0f} s", flush=True)

    columns = f"env steps a seed | s a seed | mean return | worst seed | seeds ≥ {threshold:g}"
    print(f"\n| config | {columns} |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        returns = np.array(row["returns"])
        print(
            f"| {ROWS[name]} | {row['steps']:,} | {row['wall'] / len(seeds):.1f} "
            f"| {returns.mean():.1f} | {returns.min():.1f} | {row['solved']}/{len(seeds)} |"
        )
    for name, row in results.items():
        print(f"{ROWS[name]}: " + ", ".join(f"{r:.1f}" for r in row["returns"]))
    machine = {"platform": platform.platform(), "cpu": cpu_name()}
    out = {"machine": machine, "seeds": seeds, "episodes": args.episodes, "rows": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
