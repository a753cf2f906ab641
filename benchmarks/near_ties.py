"""Are a study's near-ties robust where its ties are not? A held-out check of the trials just
below the tie.

    python benchmarks/near_ties.py --storage sqlite:////tmp/s/cartpole.db     # ~1 min a trial
    python benchmarks/near_ties.py --storage URL --study-name NAME --within 0.05

A study that ends with few ties at its best score (fewer than tuner.study.FEW_TIES) has seldom
held a config that solves every fresh seed. Would widening the tie (tuner.export --tie 0.05)
bring in configs that do? This retrains every complete trial within --within of the best score
but outside the study's own tie (objective.tie of the file it recorded, 1% by default) on the
held-out seeds benchmarks/export_pick.py uses (5,000,000 up, 100 greedy episodes each), prints
each, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna
from export_pick import HELD_OUT, SOLVED, held_out  # this script's folder is on sys.path

from tuner.export import contenders
from tuner.study import TIE, recorded, ties_with


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage", required=True)
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--within", type=float, default=0.05, help="how far below the best (relative)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("near_ties.json"))
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    tie = recorded(study, "objective").get("tie", TIE)
    ties = {t.number for t in contenders(study, tie=tie)}
    wide = contenders(study, tie=args.within)
    best = wide[0].value
    near = [t for t in wide if t.number not in ties and ties_with(t.value, best, args.within)]
    print(
        f"{len(ties)} ties within {tie:g} of the best {best:.1f}; {len(near)} more trials within "
        f"{args.within:g}, each on {args.seeds} held-out seeds ({HELD_OUT} up)",
        flush=True,
    )
    rows = {}
    for t in near:
        returns, curves = held_out(t, args.seeds, args.episodes)
        rows[t.number] = {
            "value": t.value,
            "held_out": returns.round(2).tolist(),
            "held_out_curves": curves,
        }
        print(
            f"  trial {t.number} (study score {t.value:.1f}): "
            f"{', '.join(f'{r:.0f}' for r in returns)}: {(returns >= SOLVED).sum()}/{args.seeds}",
            flush=True,
        )
    robust = sum(min(r["held_out"]) >= SOLVED for r in rows.values())
    print(f"{robust} of {len(near)} near-ties solve all {args.seeds} held-out seeds")
    args.out.write_text(
        json.dumps(
            {
                "storage": args.storage,
                "study": args.study_name,
                "tie": tie,
                "within": args.within,
                "ties": sorted(ties),
                "near_ties": rows,
                "robust": robust,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
