"""Do the held-out seeds that fail at the export's steps learn with more, and how do their
episodes end?

    python benchmarks/longer_retrain.py --storage sqlite:////tmp/s5/cartpole.db [--storage ...]

With the file as it shipped before 2026-12-07's change (the export retraining 40,000 steps),
the export's pick met the quality target (all 5 held-out seeds at 475 or more) in 27 of 30
studies, and most held-out runs that still failed never reached 475 at any of their 10
evaluations: seeds that learn slowly or not at all, which no choice of weights saves. Would a
longer retrain (a larger `budget.export_steps`) let them finish, at what cost, and does it lose
runs that had finished? And are they seeds whose cart drifts off the track while the
pole stays up (a policy that balances but does not steer back), or whose pole falls?

This retrains every tie of each study (the trials within 1% of the best, as the export considers
them: at most 20) on S held-out seeds (5,000,000 up, as benchmarks/export_pick.py: its 5 are the
first 5 here) twice, rechecking tied evaluations as the export does (budget.export_recheck):
for the export's steps (budget.export_steps) and for `--steps` (default twice those). Without
prioritized replay the longer run is the shorter one continued, evaluation for evaluation; with
it, another run from the first evaluation on (its sum tree is sized by the run's length where
that is below replay_size, and its beta anneals over the run), so its saved and lost runs are
partly a reroll of the seed: the tables count the runs continued apart. Each run's kept
weights play the same 100 greedy episodes (those export_pick.py judges by), and every
episode's end is recorded: 500 steps, the cart off the track (|x| > 2.4), or the pole down
(|angle| > 12 degrees).

Prints per study and in all: the runs that fail with each length, the runs saved and lost, the
runs that never reach 475 at any evaluation, how the failed runs' episodes end, the ties solving
all S seeds and all of the first 5, and the longer retrain's training time; writes JSON with
every run's curve and means. CartPole-v1 only (its physics tells how an episode ended).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
from engine_ab import cpu_name  # this script's folder is on sys.path
from export_pick import HELD_OUT, SOLVED

from tuner.config import DQNConfig
from tuner.dqn import evaluate, play_cartpole_to_end, train
from tuner.envs import make_env
from tuner.export import contenders
from tuner.study import recorded

ROOT = Path(__file__).resolve().parent.parent
EPISODES = 100  # episodes 0-99, as export_pick.py's held-out runs
ENDS = ("500 steps", "cart off the track", "pole down")


def play(network, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy CartPole-v1 episodes 0 .. episodes - 1 of every seed, played as tuner.dqn.evaluate
    plays them: (returns [K, episodes], how each ended [K, episodes]: an index into ENDS)."""
    k = len(network.seeds)
    env = make_env("CartPole-v1")
    try:
        returns, last = play_cartpole_to_end(network, env, list(range(episodes)))
        cart = env.unwrapped
        off_track = np.abs(last[0]) > cart.x_threshold
        pole_down = np.abs(last[2]) > cart.theta_threshold_radians
    finally:
        env.close()
    end = np.where(off_track, 1, np.where(pole_down, 2, 0))
    return returns.reshape(k, episodes), end.reshape(k, episodes)


def retrain(trial: optuna.trial.FrozenTrial, seeds: int, lengths: dict[str, int], recheck: int):
    """One tie on the held-out seeds, trained once for each of `lengths` ({"short": the
    export's steps, "long": more}) env steps; each run's kept weights played EPISODES times."""
    config = DQNConfig.from_dict(trial.user_attrs["config"], source=f"trial {trial.number}")
    if config.env != "CartPole-v1":
        raise SystemExit(f"trial {trial.number}: this benchmark needs CartPole-v1")
    done = {}
    for name, steps in lengths.items():
        run = config.replace(seed=HELD_OUT, total_steps=steps, recheck_episodes=recheck)
        result = train(run, seeds=seeds, device="cpu")
        returns, ends = play(result.kept, EPISODES)
        check = evaluate(result.kept, run.env, EPISODES)
        assert np.array_equal(returns, check), "play() must play evaluate()'s episodes"
        done[name] = {
            "wall_seconds": round(result.wall_seconds, 1),
            "curve": result.eval_returns.T.round(2).tolist(),  # [seed][evaluation]
            "means": returns.mean(1).round(2).tolist(),
            "kept_steps": result.kept_steps,
            "ends": [np.bincount(e, minlength=len(ENDS)).tolist() for e in ends],
        }
    return done


def summarize(runs: dict, first: int) -> dict:
    """Counts over one study's (or every study's) ties: see the module docstring."""
    s = {"ties": len(runs), "runs": 0}
    for name in ("short", "long"):
        s |= {f"{key}_{name}": 0 for key in ("failed", "never", "robust", "robust_first")}
        s |= {f"failed_ends_{name}": [0] * len(ENDS), f"wall_seconds_{name}": 0.0}
    s |= {"saved": 0, "lost": 0, "continued": 0, "saved_continued": 0, "lost_continued": 0}
    for r in runs.values():
        ok = {}
        for name in ("short", "long"):
            run = r[name]
            ok[name] = np.array(run["means"]) >= SOLVED
            s[f"wall_seconds_{name}"] += run["wall_seconds"]
            s[f"never_{name}"] += int((np.array(run["curve"]).max(1) < SOLVED).sum())
            s[f"failed_{name}"] += int((~ok[name]).sum())
            s[f"robust_{name}"] += int(ok[name].all())
            s[f"robust_first_{name}"] += int(ok[name][:first].all())
            for k in np.flatnonzero(~ok[name]):
                for i, n in enumerate(run["ends"][k]):
                    s[f"failed_ends_{name}"][i] += n
        s["runs"] += len(ok["short"])
        saved, lost = ~ok["short"] & ok["long"], ok["short"] & ~ok["long"]
        s["saved"] += int(saved.sum())
        s["lost"] += int(lost.sum())
        # the longer run is the shorter one continued where its curve starts with the other's
        short_curve = r["short"]["curve"]
        same = np.array([b[: len(a)] == a for a, b in zip(short_curve, r["long"]["curve"])])
        s["continued"] += int(same.sum())
        s["saved_continued"] += int((saved & same).sum())
        s["lost_continued"] += int((lost & same).sum())
    return s


def table(rows: dict[str, dict], short: int, long: int, seeds: int, first: int) -> str:
    def ends(counts: list[int]) -> str:
        total = sum(counts)
        if not total:
            return "-"
        return ", ".join(f"{100 * n / total:.0f}% {e}" for n, e in zip(counts, ENDS))

    lines = [
        f"| study | ties | runs failed, {short:,} / {long:,} steps | saved / lost (of them, in "
        f"runs continued) | never 475, "
        f"{short:,} / {long:,} | ties solving all {seeds} | ties solving the first {first} | "
        f"failed runs' episodes, {short:,} steps | failed runs' episodes, {long:,} steps | "
        "training time, long / short |",
        "|---|---:|---|---|---|---|---|---|---|---:|",
    ]
    for name, s in rows.items():
        lines.append(
            f"| {name} | {s['ties']} | {s['failed_short']} / {s['failed_long']} of {s['runs']} | "
            f"{s['saved']} / {s['lost']} ({s['saved_continued']} / {s['lost_continued']} of "
            f"{s['continued']}) | {s['never_short']} / {s['never_long']} | "
            f"{s['robust_short']} / {s['robust_long']} | "
            f"{s['robust_first_short']} / {s['robust_first_long']} | "
            f"{ends(s['failed_ends_short'])} | {ends(s['failed_ends_long'])} | "
            f"{s['wall_seconds_long'] / max(s['wall_seconds_short'], 1e-9):.2f}x |"
        )
    return "\n".join(lines)


def run_studies(args: argparse.Namespace) -> dict:
    """Every study's ties retrained both lengths: the JSON this script writes."""
    studies, lengths = {}, set()
    for url in args.storage:
        study = optuna.load_study(study_name=args.study_name, storage=url)
        budget = recorded(study, "budget")
        short = budget.get("export_steps") or budget.get("steps")
        long = args.steps or 2 * short
        if long <= short or long % budget.get("eval_every", 1):
            raise SystemExit(
                f"--steps {long}: give more than the export's {short:,} steps, a multiple of the "
                "evaluation interval"
            )
        recheck = budget.get("export_recheck") or 0
        lengths.add((short, long))
        ties = contenders(study, args.ties)
        print(
            f"{url}: {len(ties)} ties, {args.seeds} held-out seeds each, {short:,} and {long:,} "
            f"steps, recheck {recheck}",
            flush=True,
        )
        done = {}
        for n, trial in enumerate(ties, 1):
            r = retrain(trial, args.seeds, {"short": short, "long": long}, recheck)
            done[str(trial.number)] = r
            failed = [sum(m < SOLVED for m in r[k]["means"]) for k in ("short", "long")]
            print(
                f"  {n}/{len(ties)} trial {trial.number}: failed {failed[0]} / {failed[1]} of "
                f"{args.seeds} ({r['short']['wall_seconds'] + r['long']['wall_seconds']:.0f} s)",
                flush=True,
            )
        studies[url] = done
    if len(lengths) > 1:
        raise SystemExit(f"the studies retrain for different steps: {sorted(lengths)}")
    short, long = lengths.pop()
    return {
        "cpu": cpu_name(),
        "held_out_seeds": list(range(HELD_OUT, HELD_OUT + args.seeds)),
        "episodes": EPISODES,
        "short_steps": short,
        "long_steps": long,
        "ends": ENDS,
        "studies": studies,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", action="append", help="a study's URL; repeatable")
    p.add_argument("--study-name", default="cartpole")
    p.add_argument("--seeds", type=int, default=10, help="held-out seeds per tie (default 10)")
    p.add_argument("--ties", type=int, default=20, help="at most this many ties a study")
    p.add_argument("--steps", type=int, help="the longer retrain (default: 2x export_steps)")
    p.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="no training: this script's JSON files, tabled together (one run per CPU or core)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/longer_retrain.json")
    args = p.parse_args()
    if bool(args.storage) == bool(args.merge):
        p.error("give --storage (to retrain) or --merge (to table earlier runs)")
    if args.merge:
        parts = [json.loads(f.read_text()) for f in args.merge]
        if len({(d["short_steps"], d["long_steps"], len(d["held_out_seeds"])) for d in parts}) > 1:
            raise SystemExit("the files retrained for different steps or seeds")
        data = parts[0] | {
            "cpu": "; ".join(sorted({d["cpu"] for d in parts})),
            "studies": {url: r for d in parts for url, r in d["studies"].items()},
        }
    else:
        data = run_studies(args)
    seeds, first = len(data["held_out_seeds"]), min(5, len(data["held_out_seeds"]))
    rows = {url.rsplit("/", 2)[-2]: summarize(d, first) for url, d in data["studies"].items()}
    every = {f"{u} {t}": r for u, d in data["studies"].items() for t, r in d.items()}
    rows["all"] = summarize(every, first)
    data["summary"] = rows
    print(
        f"\n{data['cpu']}: held-out seeds {data['held_out_seeds'][0]}-"
        f"{data['held_out_seeds'][-1]}, {EPISODES} greedy episodes each"
    )
    print(table(rows, data["short_steps"], data["long_steps"], seeds, first))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
