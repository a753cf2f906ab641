"""tuner.run against RL Zoo 3's `-optimize` for DQN on CartPole-v1, same trial budget, one run.

    pip install -e ".[bench]"                    # SB3, rl_zoo3, and pandas for its report
    python benchmarks/vs_zoo.py                  # 200 trials a side (over an hour on 2 cores)
    python benchmarks/vs_zoo.py --trials 30      # a quicker look
    python benchmarks/vs_zoo.py --keep runs/zoo1 # keep both studies' databases and the export

Both sides: TPE and the median pruner, the default study's env steps per trial and number of
evaluations, 2 processes on one SQLite storage with one torch thread each (RL Zoo: two
`rl_zoo3.train -optimize` processes sharing --storage, as its maintainers advise; tuner:
`tuner.run --jobs 2`). Each side's best config, as its user would get it, is then retrained on 5
fresh seeds and scored by the same greedy evaluator over 100 episodes: RL Zoo's best trial, and
the config `python -m tuner.export` picks (it races tuner's tied trials on seeds of its own
first). Prints a table and writes benchmarks/results/vs_zoo.json; each side's summary also says
where its workers' time went (by net and training frequency), since the ratio moves with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState

from tuner.config import DQNConfig
from tuner.dqn import evaluate, train
from tuner.study import load_study_spec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from vs_sb3 import sb3_returns  # noqa: E402  the same greedy evaluator as tuner's

FRESH = 2_000_000  # retraining seeds, used by neither side's search


def cpu_name() -> str:
    """The CPU's model name: the two sides' ratio moves with it (Intel and AMD days differ)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def _label(value):
    """A param as a dict key: hidden sizes [256, 256] as '256x256', as the space writes them."""
    return "x".join(map(str, value)) if isinstance(value, list) else value


def time_by(finished: list, keys: tuple[str, ...], top: int = 4) -> list[dict]:
    """Where a search spent its workers' time: finished trials grouped by the params that
    decide a trial's cost (the net, how often it trains), the costliest groups first. The
    ratio per trial moves with where each side's TPE settles, so every run says where that was.
    A value fixed outside tuner's space (an enqueued config's) is read from its config."""
    groups: dict[tuple, list[float]] = {}
    for t in finished:
        config = t.user_attrs.get("config", {})
        key = tuple(_label(t.params.get(k, config.get(k))) for k in keys)
        groups.setdefault(key, []).append((t.datetime_complete - t.datetime_start).total_seconds())
    total = sum(map(sum, groups.values())) or 1.0
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    return [
        {
            "params": dict(zip(keys, key)),
            "trials": len(secs),
            "worker_s": round(sum(secs), 1),
            "share": round(sum(secs) / total, 3),
            "s_each": round(sum(secs) / len(secs), 2),
        }
        for key, secs in ranked[:top]
    ]


def time_line(groups: list[dict]) -> str:
    """time_by's groups on one line: 'hidden_sizes 128x128, train_frequency 1: 116 trials, 85%
    (9.5 s each); ...'."""
    cells = []
    for g in groups:
        params = ", ".join(f"{k} {v}" for k, v in g["params"].items())
        n = g["trials"]
        cells.append(
            f"{params}: {n} trial{'s' * (n != 1)}, {g['share']:.0%} ({g['s_each']:.1f} s each)"
        )
    return "; ".join(cells)


def show(summary: dict) -> None:
    """A side's summary, then where its workers' time went on a line of its own."""
    print(f"  { {k: v for k, v in summary.items() if k != 'time_by'} }", flush=True)
    print(f"  its workers' time: {time_line(summary['time_by'])}", flush=True)


def summarize(url: str, name: str, wall: float, keys: tuple[str, ...]) -> dict:
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    return {
        "time_by": time_by(finished, keys),
        "wall_s": round(wall, 1),
        "finished": len(finished),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "pruned_share": round(pruned / max(len(finished), 1), 3),
        "s_per_finished_trial": round(wall / max(len(finished), 1), 2),
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "best_params": study.best_trial.params,
    }


def run_zoo(tmp: Path, trials: int, steps: int, evals: int, episodes: int) -> dict:
    url = f"sqlite:///{tmp / 'zoo.db'}"
    base = [sys.executable, "-m", "rl_zoo3.train", "--algo", "dqn", "--env", "CartPole-v1"]
    base += ["-optimize", "--sampler", "tpe", "--pruner", "median", "--n-jobs", "1"]
    base += ["--n-timesteps", str(steps), "--n-evaluations", str(evals)]
    base += ["--eval-episodes", str(episodes), "--storage", url, "--study-name", "zoo"]
    base += ["--no-optim-plots", "--max-total-trials", str(trials), "--n-trials", str(trials)]
    start = time.perf_counter()
    procs = []
    for i in range(2):  # the first process creates the study; the second joins it
        err = open(tmp / f"zoo-{i}.err", "w")  # noqa: SIM115
        cmd = base + ["--seed", str(i), "-f", str(tmp / f"zoo-logs-{i}")]
        # one torch thread per process, as tuner's 2 workers get: 2 processes at torch's
        # default of one thread per core would oversubscribe the 2 cores and slow RL Zoo down
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env))
        time.sleep(5)
    for proc in procs:
        proc.wait()
    wall = time.perf_counter() - start
    if any(proc.returncode for proc in procs):
        err = (tmp / "zoo-0.err").read_text()[-800:] + (tmp / "zoo-1.err").read_text()[-800:]
        raise SystemExit(f"rl_zoo3 failed:\n{err}")
    return summarize(url, "zoo", wall, ("net_arch", "train_freq"))


def zoo_retrain(params: dict, steps: int, seeds: list[int], episodes: int) -> list[float]:
    """RL Zoo's best params, turned into SB3 kwargs by RL Zoo's own converter, on fresh seeds."""
    import rl_zoo3
    import yaml
    from rl_zoo3.hyperparams_opt import convert_offpolicy_params
    from stable_baselines3 import DQN

    kwargs = convert_offpolicy_params(dict(params))
    zoo_yml = Path(rl_zoo3.__file__).parent / "hyperparams" / "dqn.yml"
    fixed = yaml.safe_load(zoo_yml.read_text())["CartPole-v1"]  # what -optimize does not sample
    kwargs = {k: v for k, v in fixed.items() if k not in ("n_timesteps", "policy")} | kwargs
    returns = []
    for seed in seeds:
        model = DQN("MlpPolicy", "CartPole-v1", seed=seed, device="cpu", **kwargs)
        model.learn(steps)
        returns.append(float(sb3_returns(model, episodes).mean()))
    return returns


def run_tuner(tmp: Path, trials: int) -> dict:
    url = f"sqlite:///{tmp / 'tuner.db'}"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuner.run", "--storage", url, "--trials", str(trials)]
        + ["--jobs", "2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tuner.run failed: {done.stderr[-800:]}")
    return summarize(url, "cartpole", wall, ("hidden_sizes", "train_frequency"))


def tuner_retrain(url: str, tmp: Path, seeds: list[int], episodes: int) -> dict:
    """What `python -m tuner.export` picks (it races the study's ties on fresh seeds of its own
    and verifies the best on 10 more), retrained on the benchmark's fresh seeds: the config a
    user of the product gets, as RL Zoo's best trial is the config its user gets."""
    out = tmp / "export"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuner.export", "--storage", url, "--study-name", "cartpole"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"tuner.export failed: {done.stderr[-800:]}")
    wall = time.perf_counter() - start
    best = yaml.safe_load((out / "best.yaml").read_text())
    config = DQNConfig.from_dict(best, source="best.yaml").replace(seed=seeds[0])
    verified = json.loads((out / "best" / "verification.json").read_text())
    result = train(config, seeds=len(seeds), device="cpu")
    return {
        "export_wall_s": round(wall, 1),
        "retrained_trial": verified.get("trial"),
        # what the export itself saw on its own seeds before the user got the config
        "export_verified": {
            k: verified.get(k) for k in ("seeds", "per_seed_mean", "successes", "success_rate_95")
        },
        "retrained_config": best,  # the export's pick as its user gets it: best.yaml
        "retrained": evaluate(result.network, config.env, episodes).mean(1).tolist(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--retrain-seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vs_zoo.json")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep zoo.db, tuner.db, RL Zoo's logs and the export in DIR (a new or empty "
        "folder) instead of deleting them, so later runs can be compared trial by trial",
    )
    args = p.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        # a study already in DIR would be joined and extended, not run afresh
        p.error(f"--keep {args.keep} is not empty; name a new or empty folder")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_study_spec(ROOT / "studies/cartpole.yaml")
    evals = spec.steps // spec.eval_every
    seeds = list(range(FRESH, FRESH + args.retrain_seeds))

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    keep = contextlib.nullcontext(str(args.keep.resolve())) if args.keep is not None else None
    with keep or tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"on {cpu_name()}, {os.cpu_count()} cores", flush=True)
        print(
            f"RL Zoo: {args.trials} trials, {spec.steps:,} steps, {evals} evaluations", flush=True
        )
        zoo = run_zoo(tmp, args.trials, spec.steps, evals, spec.eval_episodes)
        show(zoo)
        print(f"tuner: {args.trials} trials", flush=True)
        ours = run_tuner(tmp, args.trials)
        show(ours)
        print("retraining each side's best on fresh seeds", flush=True)
        zoo["retrained"] = zoo_retrain(zoo["best_params"], spec.steps, seeds, args.episodes)
        ours.update(tuner_retrain(f"sqlite:///{tmp / 'tuner.db'}", tmp, seeds, args.episodes))

    rows = {"rl_zoo": zoo, "tuner": ours}
    print(
        f"\n{'':>8} {'s/trial':>8} {'pruned':>7} {'best':>7} {'retrained mean':>15} {'seeds>=475':>10}"
    )
    for name, r in rows.items():
        ret = np.array(r["retrained"])
        r["retrained_mean"] = round(float(ret.mean()), 1)
        r["retrained_solved"] = int((ret >= 475).sum())
        print(
            f"{name:>8} {r['s_per_finished_trial']:>8.2f} {r['pruned_share']:>7.0%} "
            f"{r['best_value']:>7.1f} {r['retrained_mean']:>15.1f} "
            f"{r['retrained_solved']:>6}/{len(ret)}"
        )
    print(
        f"retrained: RL Zoo's best trial {zoo['best_trial']}; tuner.export's pick, trial "
        f"{ours['retrained_trial']} (the export took {ours['export_wall_s']:.0f} s; on its own "
        f"{len(ours['export_verified']['seeds'] or [])} seeds the pick solved "
        f"{ours['export_verified']['successes']})"
    )
    ratio = zoo["s_per_finished_trial"] / ours["s_per_finished_trial"]
    print(f"wall time per finished trial: tuner is {ratio:.1f}x faster (target 10x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpu": cpu_name(),
                "trials": args.trials,
                "steps_per_trial": spec.steps,
                "evaluations": evals,
                "retrain_seeds": seeds,
                "sides": rows,
                "speedup_per_trial": round(ratio, 2),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    if args.keep is not None:
        print(f"kept both studies in {args.keep}: zoo.db (study 'zoo'), tuner.db ('cartpole')")


if __name__ == "__main__":
    main()
