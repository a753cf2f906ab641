"""Does the config tuner.export picks hold up on seeds that neither the study nor the export saw?

    python -m tuner.run --study /tmp/s/cartpole.yaml --trials 200      # any finished study
    python benchmarks/export_pick.py --storage sqlite:////tmp/s/cartpole.db   # ~12 min on 2 cores

A default CartPole study often ends with a dozen or more trials tied at 500, and which of them is
robust the study cannot tell. This runs `python -m tuner.export` up to six ways on the same
study:

- race: the shipped defaults (every tie raced on 3 fresh seeds, the best 3 verified on 10, and
  when none of those solves all 10, up to 3 more from the race as reserves until one does);
- race, no reserves: the same with `--reserves 0` (run only when the first way verified a
  reserve; otherwise both ways are one run);
- first 3: the three ties the study ranks first (by the area under their curve), each verified
  on 10 fresh seeds, with no race (`--contenders 3 --race-seeds 0`, the export before the race);
- race, 20 seeds: the defaults with 20 verification seeds (`--seeds 20`; its race then uses the
  3 seeds after those 20): can 20 seeds tell the config that fails one seed in ten?
- race, keep best: the defaults with `--keep best`: every retrained seed is played (and judged)
  with the weights of its best training evaluation rather than its last step's, as
  Stable-Baselines3's EvalCallback keeps a best model. Does that save the seeds that learned the
  task and lost it before the end?
- race, keep final: the same with `--keep final`, for studies whose trials keep their best
  evaluation's weights (the shipped `studies/cartpole.yaml` since 2026-12-06): there "race"
  already keeps best, and this is the way to compare it with. Either keep way is the same run
  as "race" where the study keeps those weights already, and is not run twice.
- race, no recheck: the defaults with `--recheck 0`, for studies whose file sets
  budget.export_recheck (the shipped file since 2026-12-07): there "race" already rechecks the
  ties (see `--recheck` below), and this is the export before that. Where the study rechecks
  nothing, it is the same run as "race".
`--ways` runs some of them only. With `--longer N`, one way more:
- race, N steps: the defaults with `--steps N`: every retrained seed trains N env steps rather
  than the export's default (the study file's budget.export_steps, else the trials' budget).
  Of the held-out runs that fail with the weights of their best evaluation, most are still
  climbing at the last one (a slow learner, not a broken config): does a longer retrain let
  them finish?
With `--recheck N`, one way more:
- race, recheck N: the defaults with `--recheck N`: every retrained seed that ties its best
  evaluation plays N more greedy episodes, and keeps the weights that score best on those
  (DQNConfig.recheck_episodes). Do fewer seeds keep weights that showed 500 on 5 episodes and
  fall short over 100?

Then every tie is retrained on H held-out seeds (5,000,000 up: no study, export or other benchmark
uses them) and played for 100 greedy episodes per seed, once with its final weights and once with
those of its best evaluation (one training run gives both), for as many steps as the export
retrains by default, and with `--longer N` once more for N steps. With `--recheck N`, or where
the study rechecks (budget.export_recheck), that run rechecks ties too and gives a third copy of
the weights, the rechecked best (a recheck only plays more episodes: the training, its curve and
the other two copies are unchanged). That is the ground truth each export's best.yaml is judged
by (with the weights that export kept), and it is the issue's quality target: the best config,
retrained on 5 fresh seeds, scores >= 475 on all 5. Prints a table and writes JSON, which also
keeps the per-seed results of every race entry and every full verification, so that a later
pooled analysis can replay another way of choosing on the same seeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import optuna

import tuner.dqn as dqn
from tuner.config import DQNConfig
from tuner.dqn import evaluate, train
from tuner.export import contenders, seed_curves
from tuner.study import recorded

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = 5_000_000
SOLVED = 475.0
KEPT = (
    "trial",
    "seeds",
    "per_seed_mean",
    "per_seed_min",
    "eval_steps",
    "eval_curve",
    "keep_weights",
    "kept_steps",
)
"""What is kept of each race and verification result (tuner.export's Verified.summary()): the
curves too, so that a pooled analysis can ask whether how fast a config learned on the export's
seeds tells which picks hold up (absent from files written before 2026-12-06's Intel runs)."""
WAYS = {
    "race": [],
    "race, no reserves": ["--reserves", "0"],
    "first 3": ["--contenders", "3", "--race-seeds", "0"],
    "race, 20 seeds": ["--seeds", "20"],
    "race, keep best": ["--keep", "best"],
    "race, keep final": ["--keep", "final"],
    "race, no recheck": ["--recheck", "0"],
}


def run_export(url: str, name: str, extra: list[str], out: Path) -> dict:
    args = ["--storage", url, "--study-name", name, "--out", str(out), *extra]
    print(f"$ python -m tuner.export {' '.join(args)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuner.export", *args], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"tuner.export failed:\n{done.stderr}")
    return read_export(out, extra, wall, done.stdout)


def read_export(out: Path, extra: list[str], wall: float, stdout: str) -> dict:
    """What is kept of one export run: its pick and every config it verified in full."""
    best = json.loads((out / "best" / "verification.json").read_text())
    print(f"  {wall / 60:.1f} min: best.yaml is trial {best['trial']}", flush=True)
    # every config the export verified in full (best/ and trial-N/), so a later pooled analysis
    # can replay another way of choosing on the same seeds
    verified = [
        {k: v[k] for k in KEPT if k in v}
        for v in (json.loads(f.read_text()) for f in out.glob("*/verification.json"))
    ]
    return {
        "args": extra,
        "keep_weights": best["keep_weights"],
        "recheck_episodes": best.get("recheck_episodes", 0),  # absent before 2026-12-07
        "wall_seconds": round(wall, 1),
        "trial": best["trial"],
        "export_seeds_solved": best["successes"],
        "export_seeds": len(best["seeds"]),
        "export_min": best["worst"],
        "reserves_verified": stdout.count("verifying reserve"),
        "verified": sorted(verified, key=lambda v: v["trial"]),
        "stdout_tail": stdout.strip().splitlines()[-8:],
    }


SHIPPED_BEST = dqn.Best


class Unrechecked(dqn.Best):
    """tuner.dqn.Best that also keeps, in `plain`, the weights the shipped rule keeps without a
    recheck (the best evaluation, the latest of equal ones), so that one training run with
    recheck_episodes gives both copies."""

    made: ClassVar[list[Unrechecked]] = []

    def __init__(self, online) -> None:
        super().__init__(online)
        self.plain = SHIPPED_BEST(online)
        Unrechecked.made.append(self)

    def update(self, online, returns, step: int, recheck=None) -> None:
        self.plain.update(online, returns, step)
        super().update(online, returns, step, recheck)


def held_out(
    trial: optuna.trial.FrozenTrial,
    seeds: int,
    episodes: int,
    steps: int | None = None,
    recheck: int = 0,
) -> dict:
    """Each held-out seed's greedy mean with its final weights ("final") and with those of its
    best evaluation ("best", from env step "best_steps"), and its learning curve ("curve":
    [seed][evaluation]), trained for "steps" env steps (`steps`; None: the trial's own). With
    `recheck` episodes, also with the weights kept when ties at the best are rechecked on that
    many more ("rechecked", from "rechecked_steps")."""
    config = DQNConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}")
    steps = steps or config.total_steps
    config = config.replace(seed=HELD_OUT, total_steps=steps, recheck_episodes=recheck)
    Unrechecked.made.clear()
    dqn.Best = Unrechecked
    try:
        result = train(config, seeds=seeds, device="cpu")
    finally:
        dqn.Best = SHIPPED_BEST
    plain = Unrechecked.made[-1].plain
    done = {
        "steps": steps,
        "final": evaluate(result.network, config.env, episodes).mean(1),
        "best": evaluate(plain.network, config.env, episodes).mean(1),
        "best_steps": plain.steps.tolist(),
        "curve": seed_curves(result.eval_returns, seeds),
    }
    if recheck:
        done["rechecked"] = evaluate(result.best_network, config.env, episodes).mean(1)
        done["rechecked_steps"] = result.best_steps
    return done


def longer_way(steps: int | None) -> str:
    return f"race, {steps:,} steps" if steps else ""


def recheck_way(episodes: int) -> str:
    return f"race, recheck {episodes}" if episodes else ""


def means(returns: np.ndarray) -> str:
    return ", ".join(f"{x:.0f}" for x in returns)


def held_out_all(
    ties: list[optuna.trial.FrozenTrial],
    seeds: int,
    episodes: int,
    steps: int | None = None,
    recheck: int = 0,
) -> dict[int, dict]:
    """held_out() for every tie, by trial number, with a line of progress each."""
    long = f", {steps:,} steps each" if steps else ""
    print(f"retraining all {len(ties)} ties on {seeds} held-out seeds ({HELD_OUT} up){long}")
    kept = {}
    for i, trial in enumerate(ties):
        start = time.perf_counter()
        done = kept[trial.number] = held_out(trial, seeds, episodes, steps, recheck)
        returns, best = done["final"], done["best"]
        again = done.get("rechecked")
        print(
            f"  {i + 1}/{len(ties)} trial {trial.number}: {(returns >= SOLVED).sum()}/"
            f"{seeds} solved, min {returns.min():.1f}; with its best evaluation's weights "
            f"{(best >= SOLVED).sum()}/{seeds}, min {best.min():.1f}"
            + (
                f"; rechecked {(again >= SOLVED).sum()}/{seeds}, min {again.min():.1f}"
                if again is not None
                else ""
            )
            + f" ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return kept


def longer_lines(
    ties: list[optuna.trial.FrozenTrial],
    kept: dict[int, dict],
    longer: dict[int, dict],
    steps: int,
    seeds: int,
    solving: int,
) -> str:
    """The ties again, each retrained for `steps`, beside the export's default (both with the
    weights of each seed's best evaluation), and how many held-out runs that changed."""
    base = kept[ties[0].number]["steps"]
    rows = [
        f"retrained for {steps:,} steps, with the weights of each seed's best evaluation: "
        f"{solving} of {len(ties)} ties solve all {seeds} held-out seeds",
        "",
        f"| trial | held-out per-seed means, {base:,} steps | solved | the same, "
        f"{steps:,} steps | solved | kept from step |",
        "|---:|---|---:|---|---:|---|",
    ]
    saved = lost = 0
    for trial in ties:
        short, long = kept[trial.number]["best"], longer[trial.number]["best"]
        saved += int(((short < SOLVED) & (long >= SOLVED)).sum())
        lost += int(((short >= SOLVED) & (long < SOLVED)).sum())
        rows.append(
            f"| {trial.number} | {', '.join(f'{x:.0f}' for x in short)} | "
            f"{(short >= SOLVED).sum()}/{seeds} | {', '.join(f'{x:.0f}' for x in long)} | "
            f"{(long >= SOLVED).sum()}/{seeds} | "
            f"{', '.join(str(x) for x in longer[trial.number]['best_steps'])} |"
        )
    rows += [
        "",
        f"held-out runs that solve only when retrained for {steps:,} steps: {saved}; only for "
        f"{base:,}: {lost}",
        "",
    ]
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", required=True, help="SQLAlchemy URL of a finished study")
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--seeds", type=int, default=5, help="held-out seeds per tie (default 5)")
    p.add_argument("--episodes", type=int, default=100, help="greedy episodes per seed")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/export_pick.json")
    p.add_argument(
        "--ways",
        nargs="+",
        choices=list(WAYS),
        default=list(WAYS),
        help="ways to run (default all)",
    )
    p.add_argument(
        "--longer",
        type=int,
        default=None,
        metavar="N",
        help="also export with --steps N, and retrain every tie on the held-out seeds for N steps",
    )
    p.add_argument(
        "--recheck",
        type=int,
        default=0,
        metavar="N",
        help="also export with --recheck N, and recheck the held-out retrains' ties on N episodes",
    )
    args = p.parse_args()
    if "race" not in args.ways:
        p.error("--ways must include race (the others are compared with it)")
    study = optuna.load_study(study_name=args.study_name, storage=args.storage)
    ties = contenders(study, 20)  # what the export considers by default
    print(f"{len(ties)} trials tie at the best score; trying each way of exporting", flush=True)

    chosen = {way: extra for way, extra in WAYS.items() if way in args.ways}
    if args.longer:
        chosen[longer_way(args.longer)] = ["--steps", str(args.longer)]
    if args.recheck:
        chosen[recheck_way(args.recheck)] = ["--recheck", str(args.recheck)]
    ways = {}
    recheck = args.recheck
    with tempfile.TemporaryDirectory() as tmp:
        for way, extra in chosen.items():
            same = None  # why this way would run what "race" already ran
            if extra == ["--reserves", "0"] and not ways["race"]["reserves_verified"]:
                same = "which verified no reserve"
            if extra[:1] == ["--keep"] and extra[1:] == [ways["race"]["keep_weights"]]:
                same = f"whose study keeps {extra[1]} weights already"
            if extra[:1] == ["--recheck"] and int(extra[1]) == ways["race"]["recheck_episodes"]:
                n = int(extra[1])
                same = f"which rechecks ties on {n} episodes" if n else "which rechecks no ties"
            if same:
                print(f"{way}: the same run as race, {same}", flush=True)
                ways[way] = {**ways["race"], "args": extra, "same_run_as": "race"}
                continue
            out = Path(tmp) / way.replace(" ", "-").replace(",", "")
            ways[way] = run_export(args.storage, args.study_name, extra, out)
            # the held-out retrain rechecks on --recheck's episodes, else on the study's own
            recheck = recheck or ways[way]["recheck_episodes"]
            if ways[way]["recheck_episodes"] not in (0, recheck):
                sys.exit(
                    f"{way} rechecks on {ways[way]['recheck_episodes']} episodes and another way "
                    f"on {recheck}: the held-out retrain can recheck on one number only"
                )
            race = out / "race.json"  # absent when no more trials tied than go on
            if way == "race" or race.exists():
                raced = json.loads(race.read_text()) if race.exists() else []
                ways[way]["race_order"] = [r["trial"] for r in raced]
                ways[way]["race"] = [{k: r[k] for k in KEPT} for r in raced]

    # as long as the export retrains by default, so that its pick is judged as it was trained
    kept = held_out_all(
        ties,
        args.seeds,
        args.episodes,
        recorded(study, "budget").get("export_steps"),
        recheck,
    )
    truth = {n: k["final"] for n, k in kept.items()}
    curves = {n: k["curve"] for n, k in kept.items()}
    longer = (
        held_out_all(ties, args.seeds, args.episodes, args.longer, recheck) if args.longer else {}
    )

    race_order = ways["race"]["race_order"]
    lines = [
        f"held-out check of {len(ties)} tied trials, {args.seeds} seeds x {args.episodes} greedy "
        "episodes each",
        "",
        "| trial | study rank | race place | held-out per-seed means | solved | min | "
        "with the best evaluation's weights | solved |"
        + (f" rechecked on {recheck} more episodes | solved |" if recheck else ""),
        "|---:|---:|---:|---|---:|---:|---|---:|" + ("---|---:|" if recheck else ""),
    ]
    for rank, trial in enumerate(ties, 1):
        r, b = truth[trial.number], kept[trial.number]["best"]
        place = race_order.index(trial.number) + 1 if trial.number in race_order else "-"
        lines.append(
            f"| {trial.number} | {rank} | {place} | {means(r)} | "
            f"{(r >= SOLVED).sum()}/{len(r)} | {r.min():.1f} | {means(b)} | "
            f"{(b >= SOLVED).sum()}/{len(b)} |"
            + (
                f" {means(a)} | {(a >= SOLVED).sum()}/{len(a)} |"
                if (a := kept[trial.number].get("rechecked")) is not None
                else ""
            )
        )
    robust = sum(bool((r >= SOLVED).all()) for r in truth.values())
    robust_best = sum(bool((k["best"] >= SOLVED).all()) for k in kept.values())
    # with a recheck (--recheck, or the study's): each tie's held-out means, ties rechecked
    rechecked = {n: k["rechecked"] for n, k in kept.items() if "rechecked" in k}
    robust_rechecked = sum(bool((r >= SOLVED).all()) for r in rechecked.values())
    lines += [
        "",
        f"{robust} of {len(ties)} ties solve all {args.seeds} held-out seeds "
        f"(picking one at random meets the target with chance {robust / len(ties):.2f}); "
        f"{robust_best} with the weights of each seed's best evaluation"
        + (f", {robust_rechecked} with ties rechecked" if recheck else ""),
        "",
    ]
    if recheck:
        b = np.stack([k["best"] for k in kept.values()])
        a = np.stack(list(rechecked.values()))
        lines += [
            f"held-out runs (of {a.size}) that solve only with ties rechecked on {recheck} "
            f"more episodes: {int(((b < SOLVED) & (a >= SOLVED)).sum())}; only without: "
            f"{int(((b >= SOLVED) & (a < SOLVED)).sum())}; failed {int((b < SOLVED).sum())} "
            f"without, {int((a < SOLVED).sum())} with",
            "",
        ]
    if longer:
        solving = sum(bool((k["best"] >= SOLVED).all()) for k in longer.values())
        lines.append(longer_lines(ties, kept, longer, args.longer, args.seeds, solving))
    lines += [
        "| export | wall (min) | best.yaml | weights kept | export's own seeds solved | "
        "held-out solved | held-out min | target met |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for way, w in ways.items():
        # judged with the weights that export kept, trained as long as that export trained
        runs = longer if way == longer_way(args.longer) else kept
        weights = "final" if w["keep_weights"] == "final" else "best"
        if weights == "best" and w["recheck_episodes"]:
            weights = "rechecked"  # on as many episodes as the held-out retrain (checked above)
        r = runs[w["trial"]][weights]
        w["held_out_means"] = r.round(2).tolist()
        w["target_met"] = bool((r >= SOLVED).all())
        lines.append(
            f"| {way} | {w['wall_seconds'] / 60:.1f} | trial {w['trial']} | {weights} | "
            f"{w['export_seeds_solved']}/{w['export_seeds']} | {(r >= SOLVED).sum()}/{len(r)} | "
            f"{r.min():.1f} | {'yes' if w['target_met'] else 'no'} |"
        )
    print("\n" + "\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "storage": args.storage,
                "study": args.study_name,
                "machine": platform.processor() or platform.machine(),
                "held_out_seeds": list(range(HELD_OUT, HELD_OUT + args.seeds)),
                "held_out_steps": kept[ties[0].number]["steps"],
                "episodes": args.episodes,
                "ties": {n: r.round(2).tolist() for n, r in truth.items()},
                # with each held-out seed's weights from its best evaluation, and its env step
                "ties_keep_best": {n: k["best"].round(2).tolist() for n, k in kept.items()},
                "ties_keep_best_steps": {n: k["best_steps"] for n, k in kept.items()},
                "ties_solving_all_keep_best": robust_best,
                # with a recheck (--recheck N, or the study's export_recheck): the held-out
                # runs above rechecked their ties on N episodes
                # (unchanged training), and these are the weights that kept
                "recheck_episodes": recheck,
                "ties_keep_rechecked": {n: r.round(2).tolist() for n, r in rechecked.items()},
                "ties_keep_rechecked_steps": {n: kept[n]["rechecked_steps"] for n in rechecked},
                "ties_solving_all_keep_rechecked": robust_rechecked if recheck else None,
                "ties_held_out_curves": curves,
                # each tie's curve on the study's own seeds: [[step, return of each seed], ...]
                "ties_study_curves": {t.number: t.user_attrs.get("curve") for t in ties},
                # each tie's sampled params, so that a pooled analysis can ask which configs
                # leave held-out seeds that never learn (absent before 2026-12-07's Intel day)
                "ties_params": {t.number: t.params for t in ties},
                "ties_solving_all": robust,
                "exports": ways,
                # with --longer: every tie retrained on the same held-out seeds for more steps
                "longer": {
                    "steps": args.longer,
                    "ties": {n: k["final"].round(2).tolist() for n, k in longer.items()},
                    "ties_keep_best": {n: k["best"].round(2).tolist() for n, k in longer.items()},
                    "ties_keep_best_steps": {n: k["best_steps"] for n, k in longer.items()},
                    # where the held-out runs recheck (as above)
                    "ties_keep_rechecked": {
                        n: k["rechecked"].round(2).tolist()
                        for n, k in longer.items()
                        if "rechecked" in k
                    },
                    "ties_held_out_curves": {n: k["curve"] for n, k in longer.items()},
                    "ties_solving_all_keep_best": solving,
                }
                if longer
                else None,
            },
            indent=2,
        )
        + "\n"
    )
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
