"""The trainer's matrix products two ways on this CPU: torch's batched call (MKL) and oneDNN.

    python benchmarks/products.py [--out benchmarks/results/products.json]

tuner.networks sends products of at least ONEDNN_MIN_MACS multiply-adds to oneDNN, one call per
seed, on AMD CPUs with AVX-512 (networks.ONEDNN), where MKL runs its AVX2 code; elsewhere every
product is one batched MKL call. This times both for the shapes a training step and a phase's
TD targets use (forward x @ W, weight gradient x^T g, input gradient g W^T), one torch thread,
best of 5 rounds, so that the rule can be checked on a CPU it was not measured on (an Intel day:
is oneDNN also faster there, and from what size?). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/products.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    if LINEAR is None:
        raise SystemExit("this torch has no oneDNN: every product is a batched MKL call")
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_on_here": networks.ONEDNN,
        "onednn_min_macs": ONEDNN_MIN_MACS,
        "torch": torch.__version__,
        "rows": [],
    }
    print(
        f"one torch thread; oneDNN path {'on' if networks.ONEDNN else 'off'} on this CPU "
        f"({report['cpu_capability']}); us per product, MKL (batched) / oneDNN (per seed)\n"
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
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
