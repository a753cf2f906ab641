"""python -m tuner.train CONFIG.yaml: train any config on K seeds at once and save the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tuner.cli import run_main
from tuner.config import load_config, save_config
from tuner.dqn import load_checkpoint, resolve_device, retrain, save_checkpoints
from tuner.envs import check_env
from tuner.errors import TunerError
from tuner.report import plot_learning_curve, seed_table, write_curve_csv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.train", description=__doc__)
    p.add_argument(
        "config", help="a DQNConfig YAML file, e.g. studies/configs/rl_zoo_cartpole.yaml"
    )
    p.add_argument(
        "--seeds", type=int, default=1, help="independent seeds trained together (default 1)"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="override total_steps (env steps per seed)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/<config name>)"
    )
    p.add_argument(
        "--init-from", type=Path, default=None, help="warm-start every seed from this checkpoint"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = load_config(args.config)
    if args.steps is not None:
        config = config.replace(total_steps=args.steps, source="--steps")
    if args.seeds < 1:
        raise TunerError(f"--seeds {args.seeds} must be at least 1")
    device = resolve_device(args.device)
    info = check_env(config.env)
    if args.init_from is not None:
        load_checkpoint(args.init_from)  # fail before training, not after
    out = args.out or Path("runs") / Path(args.config).stem

    print(
        f"training {config.env} for {config.total_steps:,} steps x {args.seeds} seed(s) on {device}"
        + (
            " (a few seeds of a small network often train faster on the CPU: --device cpu)"
            # on an H200 the default pick took 6.8 s for 1 seed and 6.5 s for 8; on 2 Zen 4
            # cores 3.5 s and 9.5 s: they cross at about 5 seeds
            if device.type == "cuda" and args.device == "auto" and args.seeds < 5
            else ""
        )
    )
    seeds = list(range(config.seed, config.seed + args.seeds))
    done = retrain(config, seeds, device, episodes=0, progress=True, init_from=args.init_from)
    result, diverged = done.result, done.diverged
    if len(diverged) == len(seeds):
        where = ", ".join(f"seed {s} at env step {t:,}" for s, t in diverged.items())
        raise TunerError(
            f"training diverged on every seed ({where}): non-finite loss or Q-values; "
            "try a lower learning_rate or a gradient clamp"
        )

    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    save_checkpoints(result, out, skip=set(diverged))  # no use in non-finite weights
    write_curve_csv(result.eval_steps, result.eval_returns, result.seeds, out / "curve.csv")
    plot_learning_curve(
        result.eval_steps,
        result.eval_returns,
        result.seeds,
        out / "curve.png",
        title=f"{config.env}: {Path(args.config).name}",
        threshold=info.reward_threshold,
    )
    best = np.where(np.isnan(result.eval_returns), -np.inf, result.eval_returns).max(0)
    print(seed_table(result.seeds, result.final_returns, best, diverged))
    if diverged:
        print(
            f"training diverged on {len(diverged)} of {len(seeds)} seeds (non-finite loss or "
            "Q-values); the others trained again without them and have checkpoints: try a lower "
            "learning_rate or a gradient clamp"
        )
    print(
        f"{result.env_steps:,} env steps and {result.gradient_steps:,} gradient steps per seed in "
        f"{result.wall_seconds:.1f} s ({result.steps_per_second:,.0f} env steps/s over all seeds)"
    )
    if config.keep_weights == "best":
        steps = [
            f"{s:,}" for s, seed in zip(result.kept_steps, result.seeds) if seed not in diverged
        ]
        rechecked = config.recheck_episodes
        print(
            "keep_weights: best: each checkpoint holds its seed's weights from its best "
            f"evaluation (env steps {', '.join(steps)}"
            + (f"; ties rechecked on {rechecked} more episodes)" if rechecked else ")")
        )
    print(f"saved checkpoints, curve.csv and curve.png in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
