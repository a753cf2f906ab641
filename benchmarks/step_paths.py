"""One gradient step on the CPU's path against the path a device takes, on the same batch.

    python benchmarks/step_paths.py               # the default study's corners, ~2 min
    python benchmarks/step_paths.py --reps 15     # more rounds, steadier medians

On the CPU, train() runs a step as `paired_step`: one forward of the online and target networks
together (the two halves of one network) over the batch's observations and next observations,
then the TD targets, errors and d loss / d Q in one compiled call (kernels.paired_td). A device
runs `td_targets` (the target network's forward, and the online network's for Double DQN) and
then `gradient_step` (the online forward and a dozen small torch ops before the backward). Both
are timed here on the CPU, alternating in rounds, for 3 seeds (a trial of the default study) of
64x64 nets on batches of a CartPole-shaped replay; the two paths update to the same bits (the
tests check that), so the difference is the calls saved. Prints a table and writes JSON (default
benchmarks/results/step_paths.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from engine_ab import cpu_name

from tuner.config import DQNConfig
from tuner.dqn import gradient_step, make_optimizer, paired_step, td_targets
from tuner.networks import BatchedQNetwork
from tuner.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parents[1]
SEEDS, OBS_DIM, ACTIONS = 3, 4, 2
CORNERS = {
    "uniform, batch 64": {"batch_size": 64},
    "PER, batch 64": {"prioritized": True, "batch_size": 64},
    "PER, batch 32": {"prioritized": True, "batch_size": 32},
    "uniform, Double, batch 64": {"double_dqn": True, "batch_size": 64},
    "PER + Double + dueling, batch 64": {
        "prioritized": True,
        "double_dqn": True,
        "dueling": True,
        "batch_size": 64,
    },
}


def filled_replay(config: DQNConfig) -> ReplayBuffer:
    """3,000 steps of random CartPole-shaped transitions (episodes of ~50 steps), 5-step returns."""
    buf = ReplayBuffer(
        seeds=list(range(SEEDS)),
        envs_per_seed=1,
        capacity=10_000,
        obs_dim=OBS_DIM,
        n_step=5,
        gamma=0.995,
        prioritized=config.prioritized,
    )
    gen = np.random.default_rng(0)
    for _ in range(3000):
        ended = gen.random((SEEDS, 1)) < 0.02
        buf.add(
            gen.normal(size=(SEEDS, 1, OBS_DIM)).astype(np.float32),
            gen.integers(0, ACTIONS, (SEEDS, 1)),
            np.full((SEEDS, 1), 0.01),
            gen.normal(size=(SEEDS, 1, OBS_DIM)).astype(np.float32),
            ended,
            ended,
        )
    return buf


def time_corner(fields: dict, reps: int, steps: int) -> dict:
    config = DQNConfig(hidden_sizes=(64, 64), n_step=5, gamma=0.995, **fields)
    batch = filled_replay(config).sample(config.batch_size, 1, 0.4)
    both = BatchedQNetwork(
        list(range(SEEDS)) * 2, OBS_DIM, ACTIONS, (64, 64), "relu", config.dueling
    )
    online, target = both.rows(0, SEEDS), both.rows(SEEDS, 2 * SEEDS)
    optimizer = make_optimizer(config, online)
    weights = batch.weights[0] if config.prioritized else None

    def cpu_path() -> None:
        paired_step(both, online, optimizer, config, batch)

    def device_path() -> None:
        targets = td_targets(online, target, batch, config.double_dqn)[0]
        gradient_step(online, optimizer, config, batch.obs[0], batch.actions[0], targets, weights)

    micros = {"cpu_path": [], "device_path": []}
    with torch.inference_mode():
        for _ in range(reps):
            for name, step in (("cpu_path", cpu_path), ("device_path", device_path)):
                for _ in range(steps // 10):  # warm-up
                    step()
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                micros[name].append((time.perf_counter() - start) / steps * 1e6)
    cpu, device = (statistics.median(micros[n]) for n in ("cpu_path", "device_path"))
    return {"cpu_path_us": cpu, "device_path_us": device, "ratio": cpu / device, "rounds": micros}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7, help="alternating rounds per corner")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps per round")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/step_paths.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{cpu_name()}; one thread; {SEEDS} seeds of 64x64 nets; medians of {args.reps} rounds")
    print(f"{'corner':34s} {'CPU path':>10s} {'device path':>12s} {'CPU / device':>13s}")
    results = {}
    for name, fields in CORNERS.items():
        r = results[name] = time_corner(fields, args.reps, args.steps)
        print(
            f"{name:34s} {r['cpu_path_us']:8.0f} us {r['device_path_us']:10.0f} us"
            f" {r['ratio']:13.3f}"
        )
    geomean = statistics.geometric_mean(r["ratio"] for r in results.values())
    print(f"geometric mean of CPU path / device path: {geomean:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"cpu": cpu_name(), "reps": args.reps, "corners": results, "geomean": geomean})
    )
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
