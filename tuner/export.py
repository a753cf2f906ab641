"""python -m tuner.export: write the best config, retrain it on fresh seeds, verify it, report.

A tuning result is only worth what it does on seeds it has never seen. The export retrains the
chosen trial's config on S seeds no trial used, in one batched run, evaluates each seed over 100
greedy episodes, and compares that with the score the study saw.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import mimetypes
import multiprocessing as mp
import os
import signal
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy
import torch
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from tuner.cli import children_start_deaf_to_ctrl_c, run_main, stop_signals_as_ctrl_c
from tuner.config import DQNConfig, save_config
from tuner.dqn import Retrained, TrainResult, merge, resolve_device, retrain, save_checkpoints
from tuner.envs import check_env
from tuner.errors import TunerError
from tuner.report import plot_learning_curve, plot_study, write_curve_csv
from tuner.run import ParentWatch, another_seed, open_storage, read_study
from tuner.study import (
    TIE,
    aggregate,
    close_to_best,
    few_ties,
    percent,
    rank,
    read_tie,
    recorded,
    study_dir,
)

FRESH_SEEDS = 1_000_000
"""Export seeds start here, far above the trial seeds (a block of seeds + confirm per trial;
fresh_seeds also steps past any seed a trial recorded)."""
GAP_WARNING = 0.10
"""A config whose fresh seeds, taken as many at a time as a study trial trains, score this much
(relative) below what the study saw is called a likely false positive."""
SUBSETS = 5000
"""Seed subsets averaged by expected_aggregate when there are more than this many (a seeded
random sample of them; all of them otherwise)."""
Z95 = 1.959964
"""The standard normal quantile for a two-sided 95% interval."""


def expected_aggregate(per_seed: np.ndarray, size: int, how: str) -> float:
    """The study's aggregate over `size` seeds drawn from these, on average over every subset of
    that size (over SUBSETS random subsets, from a fixed generator, when there are more).

    This is the score a study trial of `size` seeds would get on fresh seeds, which is what the
    study's score should be compared with: a min (or any low quantile) over 10 verified seeds is
    lower than one over a trial's 3 even when nothing is wrong. One seed at 391.6 and nine at 500
    give a min of 391.6 over the 10, but 467.5 expected over 3: the bad seed is in 3 of 10 of the
    3-seed subsets.
    """
    values = np.asarray(per_seed, dtype=float)
    size = max(1, min(size, len(values)))
    if math.comb(len(values), size) <= SUBSETS:
        subsets = np.array(list(itertools.combinations(range(len(values)), size)))
    else:
        gen = np.random.default_rng(0)
        subsets = np.argsort(gen.random((SUBSETS, len(values))), axis=1)[:, :size]
    return float(np.mean([aggregate(values[s], how) for s in subsets]))


def success_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for the chance that a fresh seed solves the task, from `successes`
    of `n` seeds. Unlike successes/n ± its standard error it stays inside [0, 1] and does not
    collapse to a point at 0/n or n/n: 10 of 10 seeds still allow a 1-in-4 failure rate."""
    if n < 1:
        raise ValueError(f"n={n} seeds: need at least one")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tuner.export", description=__doc__.split("\n")[0])
    p.add_argument(
        "--study", type=Path, default=None, help="study file (default studies/cartpole.yaml)"
    )
    p.add_argument("--storage", default=None, help="SQLAlchemy URL of the study's storage")
    p.add_argument("--study-name", default=None, help="study name in --storage")
    p.add_argument("--trial", type=int, default=None, help="export this trial number")
    p.add_argument("--top", type=int, default=1, help="export and verify the K best trials")
    p.add_argument(
        "--contenders",
        type=int,
        default=20,
        help="when several trials tie at the best score (within --tie), consider up to this "
        "many (default 20; 1 takes the first); the one that verifies best becomes best.yaml",
    )
    p.add_argument(
        "--tie",
        type=float,
        default=None,
        help="trials within this fraction of the best score tie with it (default: the study "
        "file's objective.tie, 0.01 unless it says otherwise)",
    )
    p.add_argument(
        "--race-seeds",
        type=int,
        default=3,
        help="when more contenders than --finalists tie, retrain each on this many fresh seeds "
        "of its own first and keep the best (default 3; 0 verifies every contender in full)",
    )
    p.add_argument(
        "--finalists",
        type=int,
        default=3,
        help="contenders that go on from the race to the full verification (default 3)",
    )
    p.add_argument(
        "--reserves",
        type=int,
        default=3,
        help="when no finalist solves every fresh seed, verify up to this many more contenders, "
        "in the race's order, until one does (default 3; 0: the finalists only)",
    )
    p.add_argument("--seeds", type=int, default=10, help="fresh seeds to verify on (default 10)")
    p.add_argument("--episodes", type=int, default=100, help="greedy episodes per seed")
    p.add_argument(
        "--keep",
        choices=("final", "best"),
        default=None,
        help="the weights each retrained seed is played and saved with: final (the last step's) "
        "or best (those of its best training evaluation); default: the trial's keep_weights",
    )
    p.add_argument(
        "--recheck",
        type=int,
        default=None,
        metavar="N",
        help="with best weights kept, a seed's evaluations tied at its best are told apart by N "
        "more greedy episodes (recheck_episodes; 0: not; default: the study file's "
        "budget.export_recheck, else the trial's own)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="env steps each retrained seed trains (default: the study file's "
        "budget.export_steps, else what its trials trained); more gives a config that learns "
        "slowly on some seeds the time to",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="on the CPU, retrain this many configs at once in worker processes (default: "
        "cores); the weights are the same either way",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default studies/<name>)")
    args = p.parse_args(argv)
    if min(args.seeds, args.top, args.episodes, args.contenders, args.finalists, args.jobs) < 1:
        raise TunerError(
            "--seeds, --top, --episodes, --contenders, --finalists and --jobs must be at least 1"
        )
    for name in ("race_seeds", "reserves", "recheck"):
        if (getattr(args, name) or 0) < 0:
            flag = "--" + name.replace("_", "-")
            raise TunerError(f"{flag}={getattr(args, name)} must be 0 (none) or more")
    if args.steps is not None and args.steps < 1:
        raise TunerError(f"--steps={args.steps} must be at least 1")
    if args.trial is not None and args.top != 1:
        raise TunerError("give --trial N or --top K, not both")
    if args.study is not None and args.storage is not None:
        raise TunerError("give --study FILE or --storage URL --study-name NAME, not both")
    if args.tie is not None:
        read_tie(args.tie, "--tie")
    return args


@dataclass
class Source:
    """Where the study lives, how its trials were scored, and where its exports go."""

    url: str
    name: str
    aggregate: str
    out: Path
    tie: float = TIE
    """Trials within this fraction of the best score tie with it: --tie, else the study file's."""
    study_file: Path | None = None
    """The study file given (or the default one); None when the study was named by --storage."""
    keep: str | None = None
    """--keep: the keep_weights every retrain uses; None keeps each trial's own."""
    steps: int | None = None
    """The env steps per seed every retrain trains (--steps, else the study file's
    budget.export_steps); None: each trial's own budget."""
    steps_from: str = "--steps"
    """Where `steps` came from, as the report and errors name it."""
    recheck: int | None = None
    """The recheck_episodes every retrain uses (--recheck, else the study file's
    budget.export_recheck); None keeps each trial's own."""


def find_study(args: argparse.Namespace) -> tuple[optuna.Study, Source]:
    """Load an existing study; nothing is created, and a missing one is a TunerError."""
    spec = None if args.storage else read_study(args.study)
    url = args.storage or spec.default_storage
    storage = open_storage(url, existing=True)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    name = args.study_name or (spec.name if spec else None)
    if name is None:
        if len(names) != 1:
            raise TunerError(
                f"{url} holds {len(names)} studies; name one with --study-name "
                f"({', '.join(names) or 'none'})"
            )
        name = names[0]
    if name not in names:
        raise TunerError(
            f"no study named {name!r} in {url}; it holds: {', '.join(names) or 'none'}"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    objective = recorded(study, "objective")
    how = objective.get("aggregate") or (spec.aggregate if spec else "iqm")
    tie = args.tie if args.tie is not None else objective.get("tie", spec.tie if spec else TIE)
    out = study_dir(name, spec.path if spec else None)
    tie = read_tie(tie, f"study {name!r}: objective.tie")
    study_file = spec.path if spec else None
    # the budget the study recorded when it was created, else the study file's given
    budget = recorded(study, "budget")
    steps, steps_from = args.steps, "--steps"
    if steps is None:
        steps = budget.get("export_steps") or (spec.export_steps if spec else None)
        steps_from = "the study file's budget.export_steps"
    recheck = args.recheck
    if recheck is None:
        recheck = budget.get("export_recheck", spec.export_recheck if spec else None)
    return study, Source(
        url, name, how, out, tie, study_file, args.keep, steps, steps_from, recheck
    )


def choose_trials(study: optuna.Study, trial: int | None, top: int) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    if trial is not None:
        match = [t for t in trials if t.number == trial]
        if not match:
            raise TunerError(
                f"study {study.study_name!r} has no trial {trial} (trials 0-{len(trials) - 1})"
            )
        if match[0].state != TrialState.COMPLETE or "config" not in match[0].user_attrs:
            raise TunerError(
                f"trial {trial} is {match[0].state.name.lower()}, not complete; "
                "export a complete trial"
            )
        return match
    complete = [t for t in trials if t.state == TrialState.COMPLETE and "config" in t.user_attrs]
    if not complete:
        raise TunerError(
            f"study {study.study_name!r} has no complete trial yet; run python -m tuner.run first"
        )
    return sorted(complete, key=rank)[:top]


def contenders(
    study: optuna.Study, limit: int | None = None, tie: float = TIE
) -> list[FrozenTrial]:
    """The complete trials that tie with the best (within `tie` of its score, see
    tuner.study.close_to_best), best first, at most `limit`: which of them holds up only
    verification shows."""
    everything = choose_trials(study, None, len(study.get_trials(deepcopy=False)))
    return close_to_best(everything, tie)[:limit]


def pick_best(verified: list[Verified]) -> list[Verified]:
    """Contenders ordered by what they did on the fresh seeds: fewest seeds diverged, then the
    study's aggregate, then seeds solved, then the worst seed; the study's own order breaks what
    is still tied."""

    def key(v: Verified) -> tuple:
        return (len(v.diverged), -v.verified_score, -(v.successes or 0), -v.per_seed.min())

    return sorted(verified, key=key)  # sorted is stable: study rank last


def fresh_seeds(study: optuna.Study, n: int) -> list[int]:
    """n seeds that no trial of the study trained on."""
    used = {s for t in study.get_trials(deepcopy=False) for s in t.user_attrs.get("seeds", [])}
    first = max(FRESH_SEEDS, max(used, default=0) + 1)
    return list(range(first, first + n))


@dataclass
class Verified:
    """One exported trial, retrained on fresh seeds and evaluated."""

    trial: FrozenTrial
    label: str
    config: DQNConfig
    seeds: list[int]
    returns: np.ndarray
    """[S, episodes]: every greedy episode of every seed."""
    threshold: float | None
    aggregate: str
    result: TrainResult
    diverged: dict[int, int] = field(default_factory=dict)
    """{seed: env step} for each seed whose training diverged (scored by its diverged network,
    never counted as solved)."""

    @property
    def per_seed(self) -> np.ndarray:
        return self.returns.mean(1)

    @property
    def verified_score(self) -> float:
        """The study's aggregate over the seeds' verified means: comparable with trial.value."""
        return aggregate(self.per_seed, self.aggregate)

    @property
    def gap(self) -> float:
        return float(self.trial.value - self.verified_score)

    @property
    def study_seeds(self) -> int:
        """Seeds the trial's score came from (its own, plus any confirmation seeds)."""
        return len(self.trial.user_attrs.get("seeds") or self.seeds)

    @property
    def expected_study_score(self) -> float:
        """What a study trial of this config would score on average on fresh seeds."""
        return expected_aggregate(self.per_seed, self.study_seeds, self.aggregate)

    @property
    def suspicious(self) -> bool:
        shortfall = self.trial.value - self.expected_study_score
        return shortfall > GAP_WARNING * max(abs(self.trial.value), 1e-9)

    @property
    def successes(self) -> int | None:
        if self.threshold is None:
            return None
        trained = np.array([s not in self.diverged for s in self.seeds])
        return int(((self.per_seed >= self.threshold) & trained).sum())

    @property
    def solved(self) -> str:
        """Seeds at or above the threshold, as "k/S" ("-" for an env without a threshold), and
        how many diverged when any did."""
        text = "-" if self.successes is None else f"{self.successes}/{len(self.seeds)}"
        return text + (f" ({len(self.diverged)} diverged)" if self.diverged else "")

    def summary(self) -> dict:
        per_seed = self.per_seed
        return {
            "trial": self.trial.number,
            "label": self.label,
            "study_score": float(self.trial.value),
            "verified_score": self.verified_score,
            "aggregate": self.aggregate,
            "gap": self.gap,
            "study_seeds": self.study_seeds,
            "expected_study_score": self.expected_study_score,
            "likely_false_positive": self.suspicious,
            "seeds": self.seeds,
            "episodes_per_seed": int(self.returns.shape[1]),
            "per_seed_mean": per_seed.round(2).tolist(),
            "per_seed_std": self.returns.std(1).round(2).tolist(),
            "per_seed_min": self.returns.min(1).round(2).tolist(),
            "mean": float(per_seed.mean()),
            "std": float(per_seed.std()),
            "iqm": aggregate(per_seed, "iqm"),
            "worst_seed": int(self.seeds[int(per_seed.argmin())]),
            "worst": float(per_seed.min()),
            "threshold": self.threshold,
            "successes": self.successes,
            "success_rate_95": None
            if self.successes is None
            else [round(x, 3) for x in success_interval(self.successes, len(self.seeds))],
            "diverged": {str(seed): step for seed, step in self.diverged.items()},
            "retrain_seconds": round(self.result.wall_seconds, 2),
            "keep_weights": self.config.keep_weights,
            # > 0: evaluations tied at a seed's best were told apart by this many more episodes
            "recheck_episodes": self.config.recheck_episodes,
            "kept_steps": [int(s) for s in self.result.kept_steps],
            # how each fresh seed learned, not only where it ended
            "eval_steps": [int(s) for s in self.result.eval_steps],
            "eval_curve": seed_curves(self.result.eval_returns, len(self.seeds)),
        }

    def table(self) -> str:
        """Per-seed verification lines (Markdown), then the summary lines."""
        best = self.config.keep_weights == "best"
        lines = [
            "| seed | mean return | std | worst episode | last training eval |"
            + (" weights from step |" if best else ""),
            "|---:|---:|---:|---:|---:|" + ("---:|" if best else ""),
        ]
        for k, seed in enumerate(self.seeds):
            ep = self.returns[k]
            last = (
                f"diverged at env step {self.diverged[seed]:,}"
                if seed in self.diverged
                else f"{self.result.eval_returns[-1, k]:.1f}"
            )
            line = f"| {seed} | {ep.mean():.1f} | {ep.std():.1f} | {ep.min():.0f} | {last} |"
            if best:
                line += " - |" if seed in self.diverged else f" {self.result.kept_steps[k]:,} |"
            lines.append(line)
        return "\n".join(lines)

    def headline(self) -> str:
        s = self.summary()
        text = (
            f"{s['mean']:.1f} ± {s['std']:.1f} over {len(self.seeds)} seeds "
            f"(IQM {s['iqm']:.1f}, worst seed {s['worst_seed']}: {s['worst']:.1f})"
        )
        if self.threshold is not None:
            low, high = s["success_rate_95"]
            text += (
                f", {self.successes}/{len(self.seeds)} seeds ≥ {self.threshold:g} (a fresh seed "
                f"solves with probability {low:.2f}-{high:.2f}, 95% Wilson interval)"
            )
        if self.diverged:
            where = ", ".join(f"{s} at env step {t:,}" for s, t in self.diverged.items())
            text += (
                f"; training diverged on {len(self.diverged)} of them ({where}): each is scored "
                "by what its diverged network does and counts as unsolved"
            )
        return text

    def gap_line(self) -> str:
        line = (
            f"study score {self.trial.value:.1f} -> verified {self.verified_score:.1f} "
            f"({self.aggregate} over seeds; gap {self.gap:+.1f})"
        )
        expected = self.expected_study_score
        if self.study_seeds < len(self.seeds) and self.aggregate != "mean":
            line += (
                f"; a {self.study_seeds}-seed trial would score {expected:.1f} on these seeds, "
                "on average"
            )
        if self.suspicious:
            line += (
                f". LIKELY FALSE POSITIVE: on fresh seeds a trial of this config would score "
                f"{expected:.1f}, more than {GAP_WARNING:.0%} below what the study saw"
            )
        return line


def seed_curves(eval_returns: np.ndarray, seeds: int) -> list[list[float | None]]:
    """A training run's evaluations ([evaluation, seed]) as JSON keeps them: [seed][evaluation],
    rounded to 0.01, null after a seed diverged."""
    returns = np.asarray(eval_returns, dtype=float).reshape(-1, seeds)
    return [[round(float(r), 2) if np.isfinite(r) else None for r in seed] for seed in returns.T]


def trial_config(trial: FrozenTrial, seeds: list[int], source: Source) -> DQNConfig:
    """The trial's own config, trained from the first fresh seed for the steps and keeping the
    weights `source` says (--steps, --keep and --recheck; without them, as the trial did)."""
    config = DQNConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}")
    return config.replace(
        source=source.steps_from if source.steps else f"trial {trial.number}",
        seed=seeds[0],
        keep_weights=source.keep or config.keep_weights,
        total_steps=source.steps or config.total_steps,
        recheck_episodes=config.recheck_episodes if source.recheck is None else source.recheck,
    )


def verify(
    trial: FrozenTrial,
    label: str,
    seeds: list[int],
    device: torch.device,
    episodes: int,
    source: Source,
) -> Verified:
    config = trial_config(trial, seeds, source)
    print(
        f"{label}: trial {trial.number} (study score {trial.value:.1f}), retraining "
        f"{len(seeds)} fresh seeds x {config.total_steps:,} steps, then {episodes} greedy "
        "episodes per seed"
    )
    done = retrain(config, seeds, device, episodes, progress=True)
    print(f"  trained in {done.result.wall_seconds:.1f} s")
    return verified(trial, label, config, seeds, done, source)


def verified(
    trial: FrozenTrial,
    label: str,
    config: DQNConfig,
    seeds: list[int],
    done: Retrained,
    source: Source,
) -> Verified:
    return Verified(
        trial=trial,
        label=label,
        config=config,
        seeds=seeds,
        returns=done.returns,
        threshold=check_env(config.env).reward_threshold,
        aggregate=source.aggregate,
        result=done.result,
        diverged=done.diverged,
    )


class Workers:
    """The export's worker processes on the CPU, `jobs` of them with `threads` torch threads each:
    started on first use and kept for the race, the finalists and the reserves (starting them
    costs seconds), closed on leaving the `with` block, or stopped at once when it ends in an
    error or Ctrl-C."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.pool = None

    def imap(self, tasks: list) -> Iterator[tuple[int, Retrained]]:
        """_retrain_task over `tasks`, results in the order they finish."""
        if self.pool is None:
            # spawn, not fork: a forked copy of a process that has run torch's thread pool can hang
            with children_start_deaf_to_ctrl_c():
                self.pool = mp.get_context("spawn").Pool(
                    self.jobs, initializer=_start_worker, initargs=(self.threads,)
                )
        return self.pool.imap_unordered(_retrain_task, tasks)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type | None, *_: object) -> None:
        if self.pool is None:
            return
        if kind is None:
            self.pool.close()
        else:  # Ctrl-C or an error: stop every worker now
            self.pool.terminate()
        self.pool.join()


def verify_all(
    chosen: list[FrozenTrial],
    labels: list[str],
    seeds: list[int],
    device: torch.device,
    episodes: int,
    source: Source,
    workers: Workers | None = None,
) -> list[Verified]:
    """verify() each trial, in the worker processes at once on the CPU (one at a time on a GPU,
    or without workers). Configs that would train alone at the end, while other workers idle,
    are split into runs of fewer seeds (see split). A seed trains to the same bits alone or
    anywhere in a batch, so every weight and return is the same either way; the results come
    back in the order given."""
    jobs = min(workers.jobs, len(chosen) * len(seeds)) if workers else 1
    if jobs <= 1 or device.type != "cpu":
        return [verify(t, lab, seeds, device, episodes, source) for t, lab in zip(chosen, labels)]
    configs = [trial_config(t, seeds, source) for t in chosen]
    tasks = [
        (i, configs[i].replace(seed=part[0]), part, episodes)
        for i, part in split([t.user_attrs.get("wall_seconds", 0.0) for t in chosen], seeds, jobs)
    ]
    runs = {i: sum(task[0] == i for task in tasks) for i in range(len(chosen))}
    shared = sum(n > 1 for n in runs.values())
    last = f"last {shared} configs" if shared > 1 else "last config"
    print(
        f"retraining {len(chosen)} config{'s' if len(chosen) > 1 else ''} x {len(seeds)} fresh "
        f"seeds x {configs[0].total_steps:,} steps, {jobs} at a time ({workers.threads} torch "
        "thread(s) each)"
        + (f"; the seeds of the {last} are split across the workers" if shared else "")
    )
    parts: dict[int, list[Retrained]] = {i: [] for i in range(len(chosen))}
    done: dict[int, Verified] = {}
    with tqdm(total=len(chosen), unit="config", dynamic_ncols=True, leave=False) as bar:
        for i, part in workers.imap(tasks):
            parts[i].append(part)
            if len(parts[i]) < runs[i]:
                continue
            done[i] = v = verified(chosen[i], labels[i], configs[i], seeds, merge(parts[i]), source)
            bar.update()
            tqdm.write(
                f"{labels[i]}: trial {v.trial.number} (study score {v.trial.value:.1f}) trained "
                f"in {v.result.wall_seconds:.1f} s: {v.aggregate} {v.verified_score:.1f}, "
                f"solved {v.solved}"
            )
    return [done[i] for i in range(len(chosen))]


def split(costs: list[float], seeds: list[int], jobs: int) -> list[tuple[int, list[int]]]:
    """(config, its seeds) runs for `jobs` workers, in the order to start them: the costliest
    first (`costs`, a config's expected training time), so that no long run starts last. Each
    config trains all its seeds in one run (batched seeds cost less), but the cheapest configs,
    left over after the last full round of `jobs` (all of them when there are fewer than
    `jobs`), share the workers: each is split into runs of consecutive seeds, as many as the
    workers allow."""
    order = sorted(range(len(costs)), key=lambda i: -costs[i])  # stable: ties keep their order
    whole, rest = order[: len(order) - len(order) % jobs], order[len(order) - len(order) % jobs :]
    pieces = min(len(seeds), jobs // len(rest)) if rest else 1
    return [(i, seeds) for i in whole] + [
        (i, part.tolist()) for i in rest for part in np.array_split(seeds, pieces)
    ]


def _start_worker(threads: int) -> None:
    # Ctrl-C reaches the whole process group; the parent stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a parent killed outright cannot: its SIGTERM (the default action, exit) ends the retrain
    # that nobody waits for, which could otherwise train on for as long as a config takes
    ParentWatch().start()
    torch.set_num_threads(threads)


def _retrain_task(task: tuple[int, DQNConfig, list[int], int]) -> tuple[int, Retrained]:
    """A worker's job: retrain() config on the CPU; returns (i, what it gave)."""
    i, config, seeds, episodes = task
    return i, retrain(config, seeds, torch.device("cpu"), episodes, progress=False)


def race(
    chosen: list[FrozenTrial],
    seeds: list[int],
    finalists: int,
    device: torch.device,
    episodes: int,
    source: Source,
    workers: Workers | None = None,
) -> tuple[list[FrozenTrial], list[Verified]]:
    """Too many ties to verify each in full: retrain every one on a few fresh seeds of the race's
    own, and send the `finalists` that do best there (the same order as pick_best) on to the full
    verification, which then decides on seeds the race did not see. Returns the finalists, best
    first, and every contender's race result in finishing order.

    The race runs on the CPU also where the verification runs on a GPU: a few seeds of a small
    network are launch-bound there and configs take turns (on an H200, one seed of the default
    study's pick took 6.8 s against 3.5 s on a 2-core CPU, and processes sharing the GPU gained
    nothing), where the CPU's workers race several configs at once."""
    on = ""
    if device.type != "cpu":
        on = f" on the CPU ({workers.jobs if workers else 1} at a time; the GPU pays at many seeds)"
    print(
        f"racing them first{on}: each retrained on {len(seeds)} fresh seeds "
        f"({seeds[0]}-{seeds[-1]}), the best {finalists} go on to the full verification"
    )
    labels = [f"race {i + 1}/{len(chosen)}" for i in range(len(chosen))]
    cpu = torch.device("cpu")
    ran = verify_all(chosen, labels, seeds, cpu, episodes, source, workers)
    ranked = pick_best(ran)
    print(f"\nrace on {len(seeds)} fresh seeds, {episodes} greedy episodes each:")
    print(race_table(ranked, finalists))
    return [v.trial for v in ranked[:finalists]], ranked


def race_table(ranked: list[Verified], finalists: int, reserves: int = 0) -> str:
    """The race's ranking; the first `finalists` went on, the `reserves` after them were
    verified because no finalist solved every fresh seed."""
    first = ranked[0]
    lines = [
        f"| place | trial | race {first.aggregate} | mean | worst seed | seeds solved | goes on |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for place, v in enumerate(ranked, 1):
        went_on = "yes" if place <= finalists else "no"
        if finalists < place <= finalists + reserves:
            went_on = "as a reserve"
        lines.append(
            f"| {place} | {v.trial.number} | {v.verified_score:.1f} | {v.per_seed.mean():.1f} "
            f"| {v.per_seed.min():.1f} | {v.solved} | {went_on} |"
        )
    return "\n".join(lines)


def verify_reserves(
    reserves: list[Verified],
    verified: list[Verified],
    seeds: list[int],
    device: torch.device,
    episodes: int,
    source: Source,
    workers: Workers | None = None,
) -> list[Verified]:
    """While no config verified so far solves every fresh seed, verify the next contender from
    the race (`reserves`, in the race's order), until one does or the reserves run out. Three
    race seeds cannot tell a robust tie from a lucky one: in one default study the only tie that
    solved every held-out seed was placed last of 6 by the race. Returns the reserves verified;
    none for an env without a reward threshold, where "solved" means nothing."""
    done: list[Verified] = []
    for n, r in enumerate(reserves, 1):
        so_far = verified + done
        if any(v.successes is None or v.successes == len(seeds) for v in so_far):
            break
        best = pick_best(so_far)[0]
        print(
            f"none of the {len(so_far)} configs verified so far solved every fresh seed "
            f"(the best, trial {best.trial.number}, solved {best.solved}): verifying reserve "
            f"{n} of {len(reserves)}, the next from the race"
        )
        label = f"trial-{r.trial.number}"  # its seeds split across the workers
        done += verify_all([r.trial], [label], seeds, device, episodes, source, workers)
    return done


def write_outputs(v: Verified, out: Path) -> None:
    save_config(v.config, out / f"{v.label}.yaml")
    folder = out / v.label
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoints(v.result, folder, skip=set(v.diverged))  # no use in non-finite weights
    write_curve_csv(v.result.eval_steps, v.result.eval_returns, v.seeds, folder / "curve.csv")
    plot_learning_curve(
        v.result.eval_steps,
        v.result.eval_returns,
        v.seeds,
        folder / "curve.png",
        title=f"{v.config.env}: trial {v.trial.number} retrained on {len(v.seeds)} fresh seeds",
        threshold=v.threshold,
    )
    (folder / "verification.json").write_text(json.dumps(v.summary(), indent=2) + "\n")


def longer(v: Verified, source: Source) -> str:
    """What the report says when the export trained another budget than the trial did."""
    trained = v.trial.user_attrs["config"]["total_steps"]
    if v.config.total_steps == trained:
        return ""
    return f" ({source.steps_from}; the trial trained {trained:,})"


def write_report(
    study: optuna.Study,
    source: Source,
    verified: list[Verified],
    plots: dict[str, Path],
    out: Path,
    device: torch.device,
    raced: list[Verified],
    finalists: int,
    advice: str | None = None,
) -> Path:
    """report.md: the race among tied trials when there was one (`raced`, empty without), the
    verification of each exported config, its config, its curve, the study. The first
    `finalists` of `verified` went on from the race; any after them were reserves. `advice`
    (tuner.study.few_ties) is a caution about the study itself, said first."""
    reserves = len(verified) - finalists
    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    first = verified[0]
    lines = [
        f"# {study.study_name}: export of trial {first.trial.number}"
        if len(verified) == 1
        else f"# {study.study_name}: trial {first.trial.number}, the best verified of the "
        f"{len(raced) or len(verified)} trials that tied in the study"
        if first.label == "best"
        else f"# {study.study_name}: the {len(verified)} best trials, verified",
        "",
        f"Study `{study.study_name}` in `{source.url}`: {len(trials)} trials, {complete} complete, "
        f"{pruned} pruned. Each exported config was retrained on {len(first.seeds)} seeds no "
        f"trial used ({first.seeds[0]}-{first.seeds[-1]}), {first.config.total_steps:,} env steps "
        f"each{longer(first, source)}, in one batched run on {device.type.upper()}, then evaluated over "
        f"{first.returns.shape[1]} greedy episodes per seed"
        + (
            ", each seed with the weights of its best training evaluation (keep_weights: best"
            + (
                f"; evaluations tied at the best rechecked on {n} more episodes)."
                if (n := first.config.recheck_episodes)
                else ")."
            )
            if first.config.keep_weights == "best"
            else "."
        ),
        "",
    ]
    if advice:
        lines += [f"**Caution:** {advice[0].upper()}{advice[1:]}", ""]
    if raced:
        seeds = raced[0].seeds
        lines += [
            "## The race",
            "",
            f"{len(raced)} trials tied at the best score, more than the study can tell apart. "
            f"Each was first retrained on {len(seeds)} fresh seeds of the race's own "
            f"({seeds[0]}-{seeds[-1]}, none of them used below) on the CPU and evaluated over "
            f"{raced[0].returns.shape[1]} greedy episodes per seed; the best {finalists} "
            "went on to the full verification"
            + (
                f", and, since none of them solved every fresh seed there, {reserves} more "
                "in the race's order as reserves."
                if reserves
                else "."
            ),
            "",
            race_table(raced, finalists, reserves),
            "",
        ]
    if len(verified) > 1:
        lines += [
            "| export | trial | study score | verified "
            f"{first.aggregate} | mean ± std | worst seed | seeds solved |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for v in verified:
            s = v.summary()
            lines.append(
                f"| {v.label} | {v.trial.number} | {v.trial.value:.1f} | {v.verified_score:.1f} "
                f"| {s['mean']:.1f} ± {s['std']:.1f} | {s['worst']:.1f} | {v.solved} |"
            )
        lines.append("")
    for v in verified:
        lines += [
            f"## {v.label}: trial {v.trial.number}",
            "",
            f"**Verified:** {v.headline()}.",
            "",
            f"**Study vs verified:** {v.gap_line()}.",
            "",
            v.table(),
            "",
            f"![learning curve]({v.label}/curve.png)",
            "",
            f"Config (`{v.label}.yaml`, accepted unchanged by `python -m tuner.train`):",
            "",
            "```yaml",
            (out / f"{v.label}.yaml").read_text().rstrip(),
            "```",
            "",
            f"Retrain it: `python -m tuner.train {out / (v.label + '.yaml')} "
            f"--seeds {len(v.seeds)}`",
            "",
        ]
    titles = {
        "history": "Optimization history",
        "importances": "Parameter importances",
        "slices": "Slice plots of the most important parameters",
        "intermediate": "Intermediate values (each trial's evaluations; pruned trials stop early)",
    }
    lines += ["## The study", ""]
    for name, path in plots.items():
        lines += [f"### {titles[name]}", "", f"![{name}]({path.relative_to(out)})", ""]
    if "importances" not in plots:
        lines += ["Parameter importances need at least two complete trials.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def upload(
    study: optuna.Study,
    verified: list[Verified],
    report: Path,
    plots: dict[str, Path],
    out: Path,
) -> int:
    """Attach the report and plots to each exported trial (and the study plots to the study) in
    the study's artifact store, where optuna-dashboard shows them. Returns the files uploaded."""
    store = optuna.artifacts.FileSystemArtifactStore(str(out / "artifacts"))
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    n = 0
    for i, v in enumerate(verified):
        files = [report, out / v.label / "curve.png", out / v.label / "verification.json"]
        for path in files + (list(plots.values()) if i == 0 else []):
            attach_to_finished_trial(store, study._storage, v.trial, path)
            n += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for path in [report, *plots.values()]:
            optuna.artifacts.upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=study
            )
            n += 1
    return n


def attach_to_finished_trial(
    store: optuna.artifacts.FileSystemArtifactStore,
    storage: optuna.storages.BaseStorage,
    trial: FrozenTrial,
    path: Path,
) -> None:
    """What optuna.artifacts.upload_artifact does, for a trial that has already finished.

    Optuna refuses to change a finished trial's attributes, but an export attaches its report to
    the trial it verified; the artifact's meta goes in the same trial_system_attributes row that
    upload_artifact writes (the storage JSON-encodes the JSON string it is given), which is where
    optuna-dashboard looks.
    """
    artifact_id = str(uuid.uuid4())
    mimetype, encoding = mimetypes.guess_type(path.name)
    with open(path, "rb") as f:
        store.write(artifact_id, f)
    meta = {
        "artifact_id": artifact_id,
        "filename": path.name,
        "mimetype": mimetype or "application/octet-stream",
        "encoding": encoding,
    }
    rdb = getattr(storage, "_backend", storage)
    with rdb.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO trial_system_attributes (trial_id, key, value_json) "
                "VALUES (:trial_id, :key, :value)"
            ),
            {
                "trial_id": trial._trial_id,
                "key": f"artifacts:{artifact_id}",
                "value": json.dumps(json.dumps(meta)),
            },
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_signals_as_ctrl_c()  # SIGTERM and kill -INT stop it as Ctrl-C does, also in the background
    study, source = find_study(args)
    contest = args.trial is None and args.top == 1  # best.yaml: the best verified contender
    if contest:
        chosen = contenders(study, args.contenders, source.tie)
    else:
        chosen = choose_trials(study, args.trial, args.top)
    racing = contest and args.race_seeds > 0 and len(chosen) > args.finalists
    device = resolve_device(args.device)  # --device cuda without a GPU fails here, before writing
    out = args.out or source.out
    if device.type == "cuda":
        print(f"retraining on CUDA: {torch.cuda.get_device_name(device)}")
    elif args.device == "auto":
        print("no CUDA GPU found; retraining on the CPU")
    else:
        print("retraining on the CPU")
    seeds = fresh_seeds(study, args.seeds + (args.race_seeds if racing else 0))
    seeds, race_seeds = seeds[: args.seeds], seeds[args.seeds :]
    considered, top = len(chosen), chosen[0]
    if contest and len(chosen) > 1:
        print(
            f"{len(chosen)} trials are within {percent(source.tie)} of the best score "
            f"({describe(chosen)}), too close for the study to tell apart"
        )
    raced: list[Verified] = []
    with Workers(args.jobs) as workers:
        if racing:
            chosen, raced = race(
                chosen, race_seeds, args.finalists, device, args.episodes, source, workers
            )
        if contest and len(chosen) > 1:
            print(
                f"verifying {'the finalists' if racing else 'each'} on the same {len(seeds)} "
                f"fresh seeds ({seeds[0]}-{seeds[-1]}); the one that verifies best becomes "
                "best.yaml"
            )
        if args.trial is not None:
            labels = [f"trial-{args.trial}"]
        elif args.top == 1:
            labels = [f"trial-{t.number}" for t in chosen]
        else:
            labels = [f"top-{i + 1}" for i in range(len(chosen))]

        verified = verify_all(chosen, labels, seeds, device, args.episodes, source, workers)
        finalists = len(verified)
        if racing:
            reserves = raced[finalists : finalists + args.reserves]
            verified += verify_reserves(
                reserves, verified, seeds, device, args.episodes, source, workers
            )
    if contest:
        verified = pick_best(verified)
        verified[0].label = "best"
    out.mkdir(parents=True, exist_ok=True)
    for v in verified:
        write_outputs(v, out)
    plots = plot_study(study, out / "plots")
    ties = len(contenders(study, tie=source.tie)) if args.trial is None else 0
    # a verdict on the study, which no verification of its few ties can give
    advice = rerun = None
    if ties:
        threshold = check_env(top.user_attrs["config"]["env"]).reward_threshold
        advice = few_ties(ties, top.value, threshold)
    if advice:
        rerun = another_seed(study, source.name, source.url, source.study_file)
    caution = f"{advice}: `{rerun}`" if advice else None
    report = write_report(study, source, verified, plots, out, device, raced, finalists, caution)
    if raced:
        (out / "race.json").write_text(json.dumps([v.summary() for v in raced], indent=2) + "\n")
    uploaded = upload(study, verified, report, plots, out)

    # the best last, next to the verdict: the screen's last lines are the ones people read
    for v in verified[::-1]:
        print(f"\n{v.label} (trial {v.trial.number}), {len(v.seeds)} fresh seeds:")
        print(v.table())
        print(v.headline())
        print(v.gap_line())
    if contest and len(verified) > 1:
        went_on = f", {finalists} went on from the race," if raced else ""
        if len(verified) > finalists:
            went_on += f" {len(verified) - finalists} more as reserves,"
        print(
            f"\nbest.yaml is trial {verified[0].trial.number}: of the {considered} trials that "
            f"tied in the study{went_on} it verified best ({verified[0].aggregate} "
            f"{verified[0].verified_score:.1f})"
        )
    print(f"\nwrote {', '.join(f'{v.label}.yaml' for v in verified)}, report.md and plots in {out}")
    print(f"uploaded {uploaded} artifacts to the study's artifact store ({out / 'artifacts'})")
    print(f"train it again: python -m tuner.train {out / (verified[0].label + '.yaml')}")
    if ties > considered:
        print(
            f"{ties - considered} more trial(s) within {percent(source.tie)} of trial "
            f"{top.number}'s {top.value:.1f} were not considered: python -m tuner.export "
            f"{'--contenders' if args.top == 1 else '--top'} {ties} takes them all"
        )
    if advice:
        print(f"{advice}: {rerun}")
    return 0


def describe(trials: list[FrozenTrial]) -> str:
    return ", ".join(f"trial {t.number}: {t.value:.1f}" for t in trials)


if __name__ == "__main__":
    sys.exit(run_main(main))
