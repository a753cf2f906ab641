"""The trainer's matrix products two ways on this CPU: torch's batched call (MKL) and oneDNN.

    python benchmarks/products.py [--train-rounds 2] [--out benchmarks/results/products.json]

tuner.networks sends products of at least ONEDNN_MIN_MACS multiply-adds to oneDNN, one call per
seed, on AMD CPUs of family 26 (Zen 5) and later with AVX-512 (networks.ONEDNN), where MKL runs
its AVX2 code; elsewhere every product is one batched MKL call. This times both for the shapes
a training step and a phase's TD targets use (forward x @ W, weight gradient x^T g, input
gradient g W^T), one torch thread, best of 5 rounds, so that the rule can be checked on a CPU it
was not measured on. On a Zen 4 day (family 25) oneDNN was slower, and on an Intel Xeon day
with AMX (family 6 model 207) slower still (the trainer 0.74x as fast with it).
Then the whole trainer both ways: RL Zoo's CartPole config (256-256, 50k steps, one seed, no
evaluations), each run in a fresh process with networks.ONEDNN forced off or on, alternating
for --train-rounds rounds. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from tuner import networks
from tuner.networks import LINEAR, ONEDNN_MIN_MACS

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [  # rows, inputs, outputs
    (32, 64, 64),
    (64, 64, 64),
    (64, 128, 128),
    (128, 128, 128),
    (64, 4, 256),
    (64, 256, 256),
    (256, 256, 256),
    (2048, 64, 64),
    (8192, 4, 256),
    (8192, 256, 256),
]


def best_us(fn, macs: int) -> float:
    repeats = max(20, min(2000, int(2e8 // macs)))
    for _ in range(max(3, repeats // 10)):
        fn()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / repeats * 1e6


def both_ways(m: int, d: int, n: int) -> dict:
    """For each product of a layer with m rows, d inputs and n outputs: (MKL, oneDNN) calls."""
    x, w, g = torch.randn(1, m, d), torch.randn(1, d, n), torch.randn(1, m, n)
    bias = torch.randn(1, 1, n)
    return {
        "forward": (
            lambda: torch.baddbmm(bias, x, w),
            lambda: LINEAR(x[0], w[0].t(), bias[0, 0], "none", [], ""),
        ),
        "weight_grad": (
            lambda: torch.bmm(x.transpose(1, 2), g),
            lambda: LINEAR(x[0].t(), g[0].t(), None, "none", [], ""),
        ),
        "input_grad": (
            lambda: torch.bmm(g, w.transpose(1, 2)),
            lambda: LINEAR(g[0], w[0], None, "none", [], ""),
        ),
    }


TRAIN_ONE = """
import sys, time, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from tuner import dqn, networks
from tuner.config import load_config
networks.ONEDNN = {onednn}
config = load_config({config!r}).replace(eval_every=0)
start = time.perf_counter()
dqn.train(config, seeds=1, device="cpu")
print(time.perf_counter() - start)
"""


def train_seconds(onednn: bool) -> float:
    """One seed of RL Zoo's CartPole config in a fresh process, oneDNN path forced on or off."""
    code = TRAIN_ONE.format(
        root=str(ROOT), onednn=onednn, config=str(ROOT / "studies/configs/rl_zoo_cartpole.yaml")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-rounds", type=int, default=2, help="0 times the products only")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/products.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    if LINEAR is None:
        raise SystemExit("this torch has no oneDNN: every product is a batched MKL call")
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpu_vendor_family": list(networks._cpu_id()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_on_here": networks.ONEDNN,
        "onednn_min_macs": ONEDNN_MIN_MACS,
        "torch": torch.__version__,
        "rows": [],
    }
    print(
        f"one torch thread; oneDNN path {'on' if networks.ONEDNN else 'off'} on this CPU "
        f"({report['cpu_vendor_family'][0]} family {report['cpu_vendor_family'][1]}, "
        f"{report['cpu_capability']}); us per product, MKL (batched) / oneDNN (per seed)\n"
    )
    print(f"{'rows x in x out':>18} {'MACs':>7}   {'forward':>15} {'x^T g':>15} {'g W^T':>15}")
    for m, d, n in SHAPES:
        macs = m * d * n
        row = {"shape": [m, d, n], "macs": macs}
        cells = []
        for name, (mkl, dnn) in both_ways(m, d, n).items():
            row[name] = {"mkl_us": best_us(mkl, macs), "onednn_us": best_us(dnn, macs)}
            cells.append(f"{row[name]['mkl_us']:7.1f}/{row[name]['onednn_us']:<7.1f}")
        report["rows"].append(row)
        print(f"{f'{m} x {d} x {n}':>18} {macs / 1e6:6.2f}M   " + " ".join(cells))
    if args.train_rounds > 0:
        runs = {"off": [], "on": []}
        print(
            f"\nRL Zoo's CartPole config, 1 seed, 50k steps, fresh processes ({args.train_rounds} rounds)"
        )
        for _ in range(args.train_rounds):
            for way in runs:
                runs[way].append(train_seconds(way == "on"))
                print(f"  oneDNN {way:>3}: {runs[way][-1]:6.2f} s", flush=True)
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        report["train_rl_zoo_s"] = runs | {"off_over_on": off / on}
        print(
            f"  medians: off {off:.2f} s, on {on:.2f} s; off/on {off / on:.2f}x (above 1: oneDNN pays)"
        )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
