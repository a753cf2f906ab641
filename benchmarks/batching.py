"""What training K seeds in one run costs against one seed, with the compiled CPU step and with the
torch step, at vs_sb3.py's configs.

    python benchmarks/batching.py                      # SB3's default config, 3 rounds, ~1 minute
    python benchmarks/batching.py --configs rl_zoo sb3_default --rounds 1   # RL Zoo's too, ~5 min

vs_sb3.py's target "8 seeds in one run take at most 3x one seed" measures what a batch of seeds
shares: the calls around each seed's products. The compiled step (tuner.fused) works out each seed
from its own rows (so a seed trains to the same bits alone or in a batch) and made those calls few,
so this shows where the time of K seeds goes: for each config and round, one seed and then K seeds
with the compiled step, then the same with the torch step (`tuner.dqn.FUSED` off), alternating in
one process on one torch thread, and for the compiled step the seconds spent inside its two
compiled calls (the gradients: forward, TD targets, backward, clip; and the optimizer), timed
around each call. Both steps train the same seeds; the compiled step's kernels are compiled and
loaded before the first timed run. Prints a table of medians and writes JSON (default
benchmarks/results/batching.json).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tuner import dqn, fused
from tuner.config import DQNConfig
from tuner.dqn import keep_freed_memory, train

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from engine_ab import cpu_name  # noqa: E402  the CPU's name, family and model
from vs_sb3 import configs  # noqa: E402  the configs vs_sb3.py compares at

TIMED = ("gradients", "optimize")
"""tuner.fused's two calls a compiled step makes; train() looks them up at each call."""


class CallTimer:
    """Seconds spent inside tuner.fused's TIMED calls while installed (the wrapper adds well
    under a microsecond to calls of tens of microseconds)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(TIMED, 0.0)
        self.originals = {name: getattr(fused, name) for name in TIMED}

    def _wrap(self, name: str) -> Callable:
        call = self.originals[name]

        @functools.wraps(call)
        def timed(*args):
            start = time.perf_counter()
            try:
                return call(*args)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return timed

    def __enter__(self) -> CallTimer:
        for name in TIMED:
            setattr(fused, name, self._wrap(name))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, call in self.originals.items():
            setattr(fused, name, call)


def run(config: DQNConfig, seeds: int, compiled: bool) -> dict:
    """One train() of `seeds` seeds with the chosen step: wall seconds, gradient steps, and for
    the compiled step the seconds inside its calls."""
    dqn.FUSED = compiled
    try:
        with CallTimer() as timer:
            result = train(config, seeds=seeds, device="cpu")
    finally:
        dqn.FUSED = True
    out = {"wall": result.wall_seconds, "grad_steps": result.gradient_steps}
    if compiled:
        out.update(timer.seconds)
    return out


def summarize(runs: list[dict], seeds: int) -> dict:
    """Medians over rounds for one config: each step's wall at 1 and K seeds, K / 1, and the
    compiled step's microseconds a seed a gradient step inside each call."""
    out: dict = {}
    for step in ("compiled", "torch"):
        one = statistics.median(r[step]["1"]["wall"] for r in runs)
        many = statistics.median(r[step][str(seeds)]["wall"] for r in runs)
        out[step] = {"one_seed": one, "k_seeds": many, "k_over_one": many / one}
    for k in ("1", str(seeds)):
        per = []
        for name in TIMED:
            per.append(
                statistics.median(
                    r["compiled"][k][name] / r["compiled"][k]["grad_steps"] / int(k) * 1e6
                    for r in runs
                )
            )
        share = statistics.median(
            sum(r["compiled"][k][name] for name in TIMED) / r["compiled"][k]["wall"] for r in runs
        )
        out["compiled"][f"us_per_seed_step_{k}"] = dict(zip(TIMED, per, strict=True))
        out["compiled"][f"share_in_calls_{k}"] = share
    out["k_seeds_compiled_over_torch"] = out["compiled"]["k_seeds"] / out["torch"]["k_seeds"]
    out["one_seed_compiled_over_torch"] = out["compiled"]["one_seed"] / out["torch"]["one_seed"]
    return out


def table(report: dict) -> str:
    k = report["seeds"]
    lines = [
        f"{report['steps']:,} env steps a seed, 1 torch thread, medians of {report['rounds']} "
        f"round(s); {report['cpu']}",
        "",
        f"{'config':<12} {'step':<9} {'1 seed s':>9} {f'{k} seeds s':>10} {f'{k} / 1':>7} "
        f"{'in calls, 1':>12} {f'in calls, {k}':>13} {'gradients us/seed-step, 1 / ' + str(k):>33}",
    ]
    lines.append("-" * len(lines[-1]))
    for name, s in report["configs"].items():
        for step in ("compiled", "torch"):
            row = s[step]
            calls = ""
            if step == "compiled":
                grads = (
                    f"{row['us_per_seed_step_1']['gradients']:.1f} / "
                    f"{row[f'us_per_seed_step_{k}']['gradients']:.1f}"
                )
                calls = (
                    f" {row['share_in_calls_1']:>12.0%} {row[f'share_in_calls_{k}']:>13.0%}"
                    f" {grads:>33}"
                )
            lines.append(
                f"{name:<12} {step:<9} {row['one_seed']:>9.2f} {row['k_seeds']:>10.2f} "
                f"{row['k_over_one']:>6.2f}x{calls}"
            )
        lines.append(
            f"{name:<12} compiled / torch: one seed {s['one_seed_compiled_over_torch']:.2f}x, "
            f"{k} seeds {s['k_seeds_compiled_over_torch']:.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", choices=["rl_zoo", "sb3_default"])
    parser.add_argument("--steps", type=int, default=50_000, help="env steps a seed")
    parser.add_argument("--seeds", type=int, default=8, help="K, the seeds of the batched run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/batching.json")
    args = parser.parse_args()
    if args.steps < 1000 or args.seeds < 2 or args.rounds < 1:
        parser.error("--steps must be at least 1000, --seeds at least 2 and --rounds at least 1")
    names = args.configs or ["sb3_default"]
    torch.set_num_threads(1)
    keep_freed_memory()
    everything = configs(args.steps)
    report: dict = {
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "steps": args.steps,
        "seeds": args.seeds,
        "rounds": args.rounds,
        "configs": {},
        "runs": {},
    }
    for name in names:
        config = everything[name][0].replace(seed=0)
        run(config.replace(total_steps=2000), 1, compiled=True)  # compile / load the kernels
        runs = []
        for r in range(args.rounds):
            done: dict = {"compiled": {}, "torch": {}}
            for step in ("compiled", "torch"):
                for k in (1, args.seeds):
                    done[step][str(k)] = got = run(config, k, compiled=step == "compiled")
                    print(
                        f"{name} round {r + 1}: {step} step, {k} seed(s) {got['wall']:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            runs.append(done)
        report["runs"][name] = runs
        report["configs"][name] = summarize(runs, args.seeds)
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
