"""Does a seed train to the same bits alone and inside a batch of seeds on the GPU, and twice?

    python benchmarks/gpu/batch_bits.py [--device cuda] [--out batch_bits.json]

On the CPU both hold to the bit (tests/test_dqn.py checks them). On a GPU the kernels torch
picks for a batched matrix product may depend on the batch size, so a seed's weights could
differ in rounding between a run of 8 seeds and a run of one; that would make a seed's result
depend on which other seeds shared its run. For two configs (the default study's pick, short;
RL Zoo's CartPole config, short), this trains 8 seeds in one run, the same run again, and
seeds 0, 3 and 7 of it alone, and prints for each pair whether the weights and the greedy
returns are equal, and the largest weight difference relative to the largest weight.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vs_sb3 import configs  # noqa: E402

from tuner.config import load_config  # noqa: E402
from tuner.dqn import evaluate, train  # noqa: E402

SEEDS = 8
ALONE = (0, 3, 7)


def compare(a: torch.Tensor, b: torch.Tensor, ret_a: np.ndarray, ret_b: np.ndarray) -> dict:
    scale = max(a.abs().max().item(), 1e-30)
    return {
        "weights_equal": bool(torch.equal(a, b)),
        "max_rel_diff": float((a - b).abs().max().item() / scale),
        "returns_equal": bool(np.array_equal(ret_a, ret_b)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("batch_bits.json"))
    args = p.parse_args()

    pick = load_config(ROOT / "studies/configs/cartpole_default_pick.yaml")
    zoo = configs(8000)["rl_zoo"][0].replace(eval_every=0)
    cases = {
        "study": pick.replace(total_steps=4000, eval_every=0),
        "rl_zoo": zoo,
        # one learning phase (128 gradient steps from step 1,024): rounding-sized differences
        # here mean the later ones grew from rounding, not from one seed reading another's data
        "zoo_1k": zoo.replace(total_steps=1100),
    }
    rows = []
    # the kernel alone: a batched product of 8 against each of its 8 products on its own
    gen = torch.Generator(device=args.device).manual_seed(0)
    a = torch.randn(SEEDS, 64, 256, device=args.device, generator=gen)
    w = torch.randn(SEEDS, 256, 256, device=args.device, generator=gen)
    batched = torch.bmm(a, w)
    each = torch.cat([torch.bmm(a[j : j + 1], w[j : j + 1]) for j in range(SEEDS)])
    rows.append(
        {"config": "bmm", "pair": f"[{SEEDS},64,256]@[{SEEDS},256,256] vs one by one"}
        | compare(batched, each, np.zeros(1), np.zeros(1))
    )
    for name, config in cases.items():
        start = time.perf_counter()
        runs = [train(config, seeds=SEEDS, device=args.device) for _ in range(2)]
        returns = [evaluate(r.network, config.env, args.episodes) for r in runs]
        first, again = (r.network.params for r in runs)
        rows.append(
            {"config": name, "pair": f"{SEEDS} seeds, run twice"} | compare(first, again, *returns)
        )
        for j in ALONE:
            alone = train(config.replace(seed=config.seed + j), seeds=1, device=args.device)
            rows.append(
                {"config": name, "pair": f"seed {j}: alone vs in the batch of {SEEDS}"}
                | compare(
                    alone.network.params[0],
                    first[j],
                    evaluate(alone.network, config.env, args.episodes)[0],
                    returns[0][j],
                )
            )
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)

    print(
        f"\ndevice {args.device}: {torch.cuda.get_device_name() if args.device == 'cuda' else ''}"
    )
    print(f"{'config':>7} {'pair':<36} {'weights':>8} {'max rel diff':>13} {'returns':>8}")
    for r in rows:
        print(
            f"{r['config']:>7} {r['pair']:<36} {'equal' if r['weights_equal'] else 'differ':>8} "
            f"{r['max_rel_diff']:>13.2e} {'equal' if r['returns_equal'] else 'differ':>8}"
        )
    args.out.write_text(json.dumps({"device": args.device, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
