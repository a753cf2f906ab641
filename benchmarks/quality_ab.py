"""Does a trainer change that moves the bits change how often a config solves the task?

    python benchmarks/quality_ab.py --old e45d997 --storage sqlite:////tmp/s/cartpole.db
    python benchmarks/quality_ab.py --old HEAD~1 --storage URL --trials 145,115 --seeds 20
    python benchmarks/quality_ab.py --old e45d997 --storage URL --score study --from-trial 100 --seeds 6
    python benchmarks/quality_ab.py --torch-step --picks benchmarks/results/export_pick_*.json \
        --steps 40000 --seeds 20

A speed change that keeps every bit (benchmarks/engine_ab.py says "same final returns") cannot
change quality. One that rounds differently (a product then a sum where one fused instruction
was) sends every run elsewhere after a few hundred gradient steps, and then a study's outcome
can only be compared in distribution: a handful of studies cannot tell a worse trainer from
TPE's luck. This retrains each config (by default every trial tied at a study's best score) on
the same fresh seeds with the trainer of `--old` (extracted with `git archive`) and with the
working tree's, 100 greedy episodes per seed, and counts the seeds that solve the task (mean
return >= the env's reward threshold) on each side, with each seed's kept weights (what an
export ships) and with its weights at the last step (where a run that learned and collapsed
shows). The runs are not timed, so the two sides run at once, one process each, in chunks of 10
seeds. Prints a table and writes JSON.

`--torch-step` compares the working tree's compiled CPU step (tuner.fused) with its own torch
step (tuner.dqn.FUSED off) instead of another revision: the same trainer in all else.
`--picks` takes the configs from benchmarks/export_pick.py's JSON files (every tie of each
study, with `--study-file`'s fixed fields) where the studies themselves are gone.

With `--score study` it asks what a study sees instead: each config (with `--from-trial N`,
every finished trial from trial N on, complete or pruned: the region the sampler settled in)
trains its own budget on fresh seeds, unpruned, and each seed is scored as the study scores it
(the mean of its last evaluations). A seed is at the top when that reaches the study's best
value less its `tie`; the seeds, taken in groups of the study's `seeds`, also say how often the
config would have tied at the best in a study (the study's aggregate, averaged over the last
evaluations). A trainer that gives a study fewer ties in the region its sampler settles in
shows here, where 100 greedy episodes after training might not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import optuna
from engine_ab import cpu_name, old_tree, run_in
from scipy.stats import binomtest

from tuner.config import DQNConfig
from tuner.envs import check_env
from tuner.export import contenders
from tuner.objective import score
from tuner.study import StudySpec, load_study_spec, ties_with

ROOT = Path(__file__).resolve().parents[1]
FIRST_SEED = 6_000_000  # no study, export or other benchmark trains on these
CHUNK = 10
WEIGHTS = ("kept", "final")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
CHILD = """
import json, sys, torch
import numpy as np
torch.set_num_threads(1)
import tuner.dqn
from tuner.config import DQNConfig
from tuner.dqn import evaluate, retrain
fields, first, n = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tuner.dqn.FUSED = sys.argv[4] != "torch"
config = DQNConfig.from_dict(fields).replace(seed=first)
done = retrain(config, list(range(first, first + n)), "cpu", 100, False)
with np.errstate(all="ignore"):  # a diverged seed's final weights are not finite
    final = evaluate(done.result.network, config.env, 100).mean(1)
print(json.dumps({"kept": done.returns.mean(1).tolist(), "final": final.tolist()}))
"""


STUDY_CHILD = """
import json, sys, torch
torch.set_num_threads(1)
import tuner.dqn
from tuner.config import DQNConfig
from tuner.dqn import train
from tuner.errors import Diverged
batch, first, n, last = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tuner.dqn.FUSED = sys.argv[5] != "torch"
tails = []
for fields in batch:
    try:
        result = train(DQNConfig.from_dict(fields).replace(seed=first), seeds=n, device="cpu")
        tails.append(result.eval_returns[-last:].tolist())
    except Diverged:
        tails.append(None)  # a study prunes it: never at the top
print(json.dumps(tails))
"""


class Side(NamedTuple):
    """A trainer: the `tuner` package in `tree`, with its compiled CPU step or its torch step."""

    tree: Path
    step: str = "compiled"


def retrain(side: Side, fields: dict, first: int, n: int) -> dict[str, list[float]]:
    """Seeds first .. first + n - 1 trained on `side`: the mean of 100 greedy episodes of each
    seed's kept weights ("kept") and of its weights at the last step ("final")."""
    return run_in(side.tree, CHILD, json.dumps(fields), str(first), str(n), side.step)


def study_tails(side: Side, batch: list[dict], n: int, last: int) -> list:
    """Each config's last `last` evaluations of seeds FIRST_SEED.. FIRST_SEED + n - 1, unpruned."""
    return run_in(
        side.tree, STUDY_CHILD, json.dumps(batch), str(FIRST_SEED), str(n), str(last), side.step
    )


def study_scores(tails: list | None, spec: StudySpec) -> tuple[list, list]:
    """Each seed's score as the study scores a trial (over one seed, any aggregate is that seed's
    return), and each group of spec.seeds seeds' score: tuner.objective.score on [last, seeds]."""
    if tails is None:
        return [], []
    rows = np.array(tails)
    per_seed = [score(rows[:, [i]], spec) for i in range(rows.shape[1])]
    groups = [score(rows[:, g : g + spec.seeds], spec) for g in range(0, len(per_seed), spec.seeds)]
    return per_seed, groups


def interval(a: int, b: int, n: int) -> tuple[float, float]:
    """95% interval for the difference of two solve shares a/n - b/n (Wald; fine at n >= 100)."""
    p, q = a / n, b / n
    half = 1.96 * math.sqrt((p * (1 - p) + q * (1 - q)) / n)
    return p - q - half, p - q + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    against = parser.add_mutually_exclusive_group(required=True)
    against.add_argument("--old", help="a git revision of this repository")
    against.add_argument(
        "--torch-step",
        action="store_true",
        help="old: the working tree with its torch CPU step (tuner.dqn.FUSED off)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--storage", help="a finished study's URL")
    source.add_argument(
        "--picks",
        nargs="+",
        type=Path,
        help="benchmarks/export_pick.py JSON files: their studies' ties, with --study-file",
    )
    parser.add_argument("--study-name", default="cartpole")
    parser.add_argument(
        "--study-file",
        type=Path,
        default=ROOT / "studies/cartpole.yaml",
        help="with --picks: the study file the picks' studies ran (its fixed fields)",
    )
    parser.add_argument(
        "--trials", help="comma-separated trial numbers (default: those within 1%% of the best)"
    )
    parser.add_argument(
        "--from-trial", type=int, help="every finished trial from this number on, instead"
    )
    parser.add_argument(
        "--score",
        choices=("greedy", "study"),
        default="greedy",
        help="greedy: 100 greedy episodes after training; study: as the study scores a trial",
    )
    parser.add_argument("--seeds", type=int, default=40, help="fresh seeds per config and side")
    parser.add_argument(
        "--first-seed", type=int, default=FIRST_SEED, help="the first fresh seed (greedy)"
    )
    parser.add_argument(
        "--steps", type=int, help="greedy: env steps a seed (default: each config's own)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="greedy: solved at (default: the env's reward threshold); "
        "study: at the top at (default: the study's best less its tie)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quality_ab.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.score == "study" and args.steps:
        sys.exit("--steps is for --score greedy: a study's score needs its own budget")
    if args.picks:
        if args.score == "study":
            sys.exit("--score study needs the study: pass --storage")
        study, configs = None, picked_configs(args.picks, args.study_file)
        source = ", ".join(str(p) for p in args.picks)
    else:
        study = optuna.load_study(study_name=args.study_name, storage=args.storage)
        configs = study_configs(study, args)
        source = args.storage
    if args.steps:
        configs = {n: {**fields, "total_steps": args.steps} for n, fields in configs.items()}
    old_name = "the working tree's torch step" if args.torch_step else args.old
    with contextlib.nullcontext(ROOT) if args.torch_step else old_tree(args.old) as old:
        sides = {"old": Side(old, "torch" if args.torch_step else "compiled"), "new": Side(ROOT)}
        head = (
            f"old: {old_name}; new: the working tree of {ROOT}; {cpu_name()}\n"
            f"{len(configs)} configs of {source}"
        )
        if args.score == "study":
            report = by_study_score(args, study, configs, sides, head)
        else:
            report = by_greedy_episodes(args, configs, sides, head)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"old": old_name, "cpu": cpu_name(), "storage": source, **report}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


def study_configs(study: optuna.Study, args) -> dict:
    """The configs of --trials, --from-trial, or the trials tied at the study's best."""
    if args.trials:
        numbers = [int(t) for t in args.trials.split(",")]
    elif args.from_trial is not None:
        numbers = [
            t.number
            for t in study.get_trials(deepcopy=False, states=FINISHED)
            if t.number >= args.from_trial and "config" in t.user_attrs
        ]
    else:
        numbers = [t.number for t in contenders(study)]
    return {n: study.trials[n].user_attrs["config"] for n in numbers}


def picked_configs(picks: list[Path], study_file: Path) -> dict:
    """Every tie of each export_pick.py JSON, as its trial ran it: the study file's fixed fields
    and the trial's sampled ones, named FILE:TRIAL."""
    fixed = load_study_spec(study_file).fixed()
    configs = {}
    for path in picks:
        for number, params in json.loads(path.read_text())["ties_params"].items():
            fields = {**fixed, **params}
            DQNConfig.from_dict(fields, source=f"{path} trial {number}")  # fails here, not later
            configs[f"{path.stem}:{number}"] = fields
    return configs


def by_greedy_episodes(args, configs: dict, sides: dict, head: str) -> dict:
    """Solved seeds per config and side: the mean of 100 greedy episodes after training, with
    each seed's kept weights and with its final weights."""
    if args.threshold is None:
        env = DQNConfig.from_dict(next(iter(configs.values()))).env
        args.threshold = check_env(env).reward_threshold
        if args.threshold is None:
            sys.exit(f"{env} has no reward threshold: pass --threshold")
    first, last = args.first_seed, args.first_seed + args.seeds
    chunks = [(s, min(CHUNK, last - s)) for s in range(first, last, CHUNK)]
    steps = f"{args.steps:,} env steps" if args.steps else "each config's own steps"
    print(
        f"{head}, seeds {first:,}-{last - 1:,} on each side, {steps}; 100 greedy episodes of "
        "each seed's kept and final weights; solved: a mean >= "
        f"{args.threshold:g}\n",
        flush=True,
    )
    print(
        "| config | kept: old solved | kept: new solved | final: old solved | final: new solved "
        "| final: old mean | final: new mean |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    rows = {}
    with ThreadPoolExecutor(2) as pool:
        for name, fields in configs.items():
            jobs = {
                side: [pool.submit(retrain, trainer, fields, *c) for c in chunks]
                for side, trainer in sides.items()
            }
            done = {side: [j.result() for j in js] for side, js in jobs.items()}
            row = {}
            for weights in WEIGHTS:
                per_seed = {s: [r for part in v for r in part[weights]] for s, v in done.items()}
                solved = {s: sum(r >= args.threshold for r in v) for s, v in per_seed.items()}
                row[weights] = {"per_seed": per_seed, "solved": solved}
            rows[name] = row
            mean = {s: np.mean(v) for s, v in row["final"]["per_seed"].items()}
            kept, final = row["kept"]["solved"], row["final"]["solved"]
            print(
                f"| {name} | {kept['old']}/{args.seeds} | {kept['new']}/{args.seeds} "
                f"| {final['old']}/{args.seeds} | {final['new']}/{args.seeds} "
                f"| {mean['old']:.1f} | {mean['new']:.1f} |",
                flush=True,
            )
    total = len(rows) * args.seeds
    print()
    report = {}
    for weights in WEIGHTS:
        counts = {s: sum(r[weights]["solved"][s] for r in rows.values()) for s in sides}
        summary(counts, total, f"{weights} weights: seeds solved")
        report[weights] = {**counts, "of": total, **paired(rows, weights)}
    return {
        "score": "greedy",
        "seeds": args.seeds,
        "first_seed": first,
        "steps": args.steps,
        "threshold": args.threshold,
        "trials": rows,
        "solved": report,
    }


def paired(rows: dict, weights: str) -> dict:
    """Configs that solved fewer seeds on the new side, and more: a sign test across configs
    (configs from one study are alike, so its p-value is a lower bound)."""
    diffs = [r[weights]["solved"]["new"] - r[weights]["solved"]["old"] for r in rows.values()]
    worse, better = sum(d < 0 for d in diffs), sum(d > 0 for d in diffs)
    p = binomtest(worse, worse + better).pvalue if worse + better else 1.0
    print(
        f"  configs: new worse {worse}, better {better}, equal {len(diffs) - worse - better}; "
        f"sign test p = {p:.3f}"
    )
    return {"configs_worse": worse, "configs_better": better, "sign_test_p": p}


def recorded_spec(study: optuna.Study) -> StudySpec:
    """The study file the study recorded when it was created, read as tuner.run read it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recorded.yaml"
        path.write_text(study.user_attrs["study_file"])
        return load_study_spec(path)


def by_study_score(args, study: optuna.Study, configs: dict, sides: dict, head: str) -> dict:
    """Per config and side: the seeds whose study score reaches the top, and the would-be ties."""
    spec = recorded_spec(study)
    how, last, group = spec.aggregate, spec.last_evals, spec.seeds
    best, tie = (
        (args.threshold, 0.0) if args.threshold is not None else (study.best_value, spec.tie)
    )

    def at_top(values: list) -> int:
        return sum(ties_with(v, best, tie) for v in values)

    if args.seeds % group:
        sys.exit(f"--seeds {args.seeds} is not a multiple of the study's {group} seeds a trial")
    print(
        f"{head}, each trained unpruned on its own budget and scored as the study scores it\n"
        f"(the mean of the last {last} evaluations; a trial's score: the {how} of {group} "
        f"seeds); at the top: within {tie:.0%} of {best:.2f} (the study's best less its tie, "
        "or --threshold)\n",
        flush=True,
    )
    print(
        "| trial | in the study | old: seeds at the top | new: seeds at the top | old: ties | "
        "new: ties | old: mean | new: mean |\n|---|---|---:|---:|---:|---:|---:|---:|"
    )
    numbers = list(configs)
    batches = [numbers[i : i + CHUNK] for i in range(0, len(numbers), CHUNK)]
    rows = {}
    with ThreadPoolExecutor(2) as pool:
        for batch in batches:
            jobs = {
                side: pool.submit(
                    study_tails, trainer, [configs[n] for n in batch], args.seeds, last
                )
                for side, trainer in sides.items()
            }
            tails = {side: job.result() for side, job in jobs.items()}
            for i, number in enumerate(batch):
                trial = study.trials[number]
                row = {
                    "state": trial.state.name.lower(),
                    "value": trial.value,
                    "pruned_at": trial.user_attrs.get("pruned_at"),
                }
                for side in sides:
                    seeds, groups = study_scores(tails[side][i], spec)
                    row[side] = {
                        "per_seed": seeds,
                        "groups": groups,
                        "at_top": at_top(seeds),
                        "ties": at_top(groups),
                    }
                rows[number] = row
                if trial.state == optuna.trial.TrialState.COMPLETE:
                    was = f"scored {trial.value:.1f}"
                else:
                    was = "pruned" + (f" at {row['pruned_at']:,}" if row["pruned_at"] else "")
                mean = {
                    s: np.mean(row[s]["per_seed"]) if row[s]["per_seed"] else 0.0 for s in sides
                }
                print(
                    f"| {number} | {was} | {row['old']['at_top']}/{args.seeds} | "
                    f"{row['new']['at_top']}/{args.seeds} | {row['old']['ties']}/{args.seeds // group} | "
                    f"{row['new']['ties']}/{args.seeds // group} | {mean['old']:.1f} | {mean['new']:.1f} |",
                    flush=True,
                )
    seeds_total, groups_total = len(rows) * args.seeds, len(rows) * (args.seeds // group)
    at_top = {s: sum(r[s]["at_top"] for r in rows.values()) for s in sides}
    ties = {s: sum(r[s]["ties"] for r in rows.values()) for s in sides}
    print()
    summary(at_top, seeds_total, "seeds at the top")
    summary(ties, groups_total, f"would-be trials ({group} seeds) tied at the top")
    return {
        "score": "study",
        "seeds": args.seeds,
        "best": best,
        "tie": tie,
        "last": last,
        "aggregate": how,
        "group": group,
        "trials": rows,
        "at_top": {**at_top, "of": seeds_total},
        "ties": {**ties, "of": groups_total},
    }


def summary(counts: dict, total: int, what: str) -> None:
    old, new = counts["old"], counts["new"]
    low, high = interval(new, old, total)
    print(
        f"{what}: old {old}/{total} ({old / total:.1%}), new {new}/{total} ({new / total:.1%}); "
        f"new - old {(new - old) / total:+.1%}, 95% interval {low:+.1%} to {high:+.1%}"
    )


if __name__ == "__main__":
    main()
