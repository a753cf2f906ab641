"""What stepping CartPole costs the trainer and the evaluation, against gymnasium's own loop.

    python benchmarks/env_step.py
    python benchmarks/env_step.py --envs 1,4,10 --steps 5000 --repeat 3

Two timings, side by side in one run, with one torch thread:

- training envs: a step of N CartPole envs with random actions (many episode ends) through
  gymnasium's SyncVectorEnv (SAME_STEP autoreset), through tuner's TrainEnvs one env at a time,
  and through TrainEnvs as the trainer uses it (CartPoleBatch, whatever the count);
- evaluation: `evaluate()`'s greedy episodes (100 for each of 1 and 10 seeds, a network that
  balances every episode to the 500-step limit), played one env at a time and with
  CartPoleBatch; both give the same returns (checked here, and step for step in the tests).

With `--repeat N` each row is the median of N rounds. Prints a table and writes
benchmarks/results/env_step.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tuner.dqn import _play_cartpole, _play_one_by_one
from tuner.envs import TrainEnvs, make_env
from tuner.networks import BatchedQNetwork

ROOT = Path(__file__).resolve().parent.parent


def balancing(seeds: int) -> BatchedQNetwork:
    """A 4-2-2 network that pushes right when theta + 0.5 theta_dot > 0: every episode lasts 500."""
    network = BatchedQNetwork(list(range(seeds)), obs_dim=4, n_actions=2, hidden_sizes=(2,))
    (w0, b0), (w1, b1) = network.layers
    gain = torch.tensor([0.0, 0.0, 1.0, 0.5])
    w0[:, :, 0], w0[:, :, 1] = gain, -gain
    b0.zero_(), b1.zero_(), w1.zero_()
    w1[:, 0, 1], w1[:, 1, 0] = 1.0, 1.0
    return network


def time_train_envs(n: int, steps: int) -> dict[str, float]:
    """Microseconds per step of n envs: SyncVectorEnv, TrainEnvs env by env, TrainEnvs."""
    actions = np.random.default_rng(0).integers(0, 2, (steps, n))
    out = {}
    sync = SyncVectorEnv(
        [lambda: make_env("CartPole-v1") for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    sync.reset(seed=list(range(n)))
    start = time.perf_counter()
    for a in actions:
        sync.step(a)
    out["sync_vector_env"] = (time.perf_counter() - start) / steps * 1e6
    sync.close()
    for name, batched in (("one_by_one", False), ("tuner", True)):
        envs = TrainEnvs("CartPole-v1", [[s] for s in range(n)])
        if not batched:
            envs.cartpole = None
        shaped = actions.reshape(steps, n, 1)
        start = time.perf_counter()
        for a in shaped:
            envs.step(a)
        out[name] = (time.perf_counter() - start) / steps * 1e6
        envs.close()
    return out


def time_evaluation(seeds: int, episodes: int) -> dict[str, float]:
    network = balancing(seeds)
    env = make_env("CartPole-v1")
    ids = list(range(episodes))
    start = time.perf_counter()
    slow = _play_one_by_one(network, "CartPole-v1", ids)
    mid = time.perf_counter()
    fast = _play_cartpole(network, env, ids)
    end = time.perf_counter()
    assert np.array_equal(slow, fast), "CartPoleBatch played different episodes"
    return {"one_by_one": mid - start, "tuner": end - mid, "mean_return": float(fast.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", default="1,2,3,4,8,10,32", help="env counts for the step timing")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/env_step.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.envs.split(",") if s]

    steps = {n: [time_train_envs(n, args.steps) for _ in range(args.repeat)] for n in sizes}
    evals = {k: [time_evaluation(k, args.episodes) for _ in range(args.repeat)] for k in (1, 10)}

    def mid(runs: list[dict[str, float]], key: str) -> float:
        return median(r[key] for r in runs)

    print(f"training envs, microseconds per step (median of {args.repeat}):")
    print(f"{'envs':>5} {'SyncVectorEnv':>14} {'env by env':>11} {'tuner':>8} {'vs Sync':>8}")
    step_rows = []
    for n, runs in steps.items():
        row = {"envs": n, **{k: round(mid(runs, k), 1) for k in runs[0]}}
        row["speedup_vs_sync"] = round(row["sync_vector_env"] / row["tuner"], 2)
        step_rows.append(row)
        print(
            f"{n:>5} {row['sync_vector_env']:>14.1f} {row['one_by_one']:>11.1f} "
            f"{row['tuner']:>8.1f} {row['speedup_vs_sync']:>7.2f}x"
        )
    print(
        f"\nevaluation, {args.episodes} greedy episodes a seed (seconds, median of {args.repeat}):"
    )
    print(f"{'seeds':>5} {'env by env':>11} {'tuner':>8} {'speed-up':>9} {'mean return':>12}")
    eval_rows = []
    for k, runs in evals.items():
        row = {
            "seeds": k,
            "one_by_one_s": round(mid(runs, "one_by_one"), 3),
            "tuner_s": round(mid(runs, "tuner"), 3),
            "mean_return": runs[0]["mean_return"],
        }
        row["speedup"] = round(row["one_by_one_s"] / row["tuner_s"], 1)
        eval_rows.append(row)
        print(
            f"{k:>5} {row['one_by_one_s']:>11.3f} {row['tuner_s']:>8.3f} "
            f"{row['speedup']:>8.1f}x {row['mean_return']:>12.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "processor": platform.processor(),
                "steps": args.steps,
                "episodes": args.episodes,
                "repeat": args.repeat,
                "train_envs": step_rows,
                "evaluation": eval_rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
