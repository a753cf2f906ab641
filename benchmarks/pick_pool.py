"""What every export_pick.py run so far says about choosing among tied trials, pooled.

    python benchmarks/pick_pool.py          # reads benchmarks/results/export_pick_*.json, no training

Each export_pick run retrained every tie of one finished study on 5 held-out seeds (the ground
truth: a tie is robust when all 5 reach 475) and recorded how the export's ways of choosing did.
One run holds 1-20 ties, too few to say whether a way of choosing beats picking a tie at random;
pooled over every run, this says how often each way met the target against that baseline, how
robust the ties are by their place in the study's order and in the race, how often a pick that
solved all of the export's own 10 seeds then solved all 5 held-out ones, and how both depend on
how many ties a study ended with (tuner.study.FEW_TIES, the count below which tuner.run and
tuner.export advise a new study, comes from that table). All of that judges ties and picks by
their final weights, the one truth every run recorded; the runs that also played each held-out
seed with its best evaluation's weights (export_pick since 2026-12-06) are then compared both ways
on the same studies; runs that exported with best weights only (export_pick --longer or
--recheck, and every run of the shipped study since 2026-12-07) are left out of the
final-weights tables, and those with --longer are pooled in a table of their own: the ties and
the picks retrained for fewer steps against more. The table by retrain pools every run that
played best weights, by how the export retrained (20,000, 40,000 or 80,000 steps, ties rechecked
or not), as the shipped export now keeps them. A last look: where two or more of the export's
finalists solved all their verification seeds and it kept the race's order, would their
verification curves (how soon and how steadily their seeds learned) have picked a robust one
more often?
Prints tables and writes benchmarks/results/pick_pool.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tuner.export import success_interval
from tuner.study import FEW_TIES

ROOT = Path(__file__).resolve().parent.parent
SOLVED = 475.0  # CartPole-v1's reward threshold


def rate(k: int, n: int) -> str:
    """k of n with its 95% (Wilson) interval, the one tuner.export reports."""
    low, high = success_interval(k, n) if n else (0.0, 1.0)
    return f"{k}/{n} ({k / max(n, 1):.0%}, 95% {low:.2f}-{high:.2f})"


def tie_group(n: int) -> str:
    """A study's tie count as a row of the by-ties table; export_pick checks at most 20 ties
    (what the export considers), so 20 stands for 20 or more."""
    if n < FEW_TIES:
        return f"1-{FEW_TIES - 1}"
    if n < 13:
        return f"{FEW_TIES}-12"
    return "13-19" if n < 20 else "20 or more"


def quartile(place: int, n: int) -> int:
    """0 for the first quarter of n places (1-based) ... 3 for the last."""
    return min(4 * (place - 1) // n, 3)


def final_weights(exports: dict) -> dict:
    """The export ways that played final weights, under the names the pooled tables use: a study
    whose trials keep their best evaluation's weights (the shipped study since 2026-12-06) ran
    its final-weights race as "race, keep final" (whose race order files keep from 2026-12-07 on;
    by_race skips the earlier ones, which have none).
    Files written before keep_weights existed all played final weights."""
    final = {w: e for w, e in exports.items() if e.get("keep_weights", "final") == "final"}
    if "race, keep final" in final:
        final["race"] = final.pop("race, keep final")
    return final


def weights_compared(files: list[dict]) -> dict:
    """On the runs that judged every tie both ways and exported both ways: robust ties and the
    race's pick with final weights against those with each seed's best evaluation's weights."""
    keys = ("studies", "ties", "robust_final", "robust_best", "with_robust_final")
    both = dict.fromkeys((*keys, "with_robust_best", "met_final", "met_best"), 0)
    for data in files:
        ways = {e.get("keep_weights", "final"): e for e in data["exports"].values()}
        if "ties_keep_best" not in data or set(ways) != {"final", "best"}:
            continue
        final = [all(m >= SOLVED for m in v) for v in data["ties"].values()]
        best = [all(m >= SOLVED for m in v) for v in data["ties_keep_best"].values()]
        both["studies"] += 1
        both["ties"] += len(final)
        both["robust_final"] += sum(final)
        both["robust_best"] += sum(best)
        both["with_robust_final"] += any(final)
        both["with_robust_best"] += any(best)
        both["met_final"] += bool(ways["final"]["target_met"])
        both["met_best"] += bool(ways["best"]["target_met"])
    return both


def trained_steps(data: dict) -> int:
    """The env steps an export_pick run's ties trained in their study (the last step of their
    curves; every tie of a study trains as long)."""
    return next(c for c in data["ties_study_curves"].values() if c)[-1][0]


def longer_compared(files: list[dict]) -> dict:
    """On the runs that also retrained every tie for another number of steps (export_pick
    --longer), all with each seed's best evaluation's weights: robust ties, held-out runs that
    failed, runs that solve only one way, and the race's pick, the shorter retrain against the
    longer (their steps in "steps")."""
    keys = ("studies", "ties", "robust", "robust_longer", "runs", "failed", "failed_longer")
    both: dict = dict.fromkeys((*keys, "saved", "lost", "met", "met_longer"), 0)
    both["steps"] = []  # [shorter, longer] of each study
    for data in files:
        longer = data.get("longer")
        if not longer:
            continue
        # the export's default, as long as the trials trained where the file does not say
        base = data.get("held_out_steps") or trained_steps(data)
        ways = data["exports"]["race"], data["exports"][f"race, {longer['steps']:,} steps"]
        runs = data["ties_keep_best"], longer["ties_keep_best"]
        if longer["steps"] < base:  # judge the longer retrain against the shorter either way
            ways, runs = ways[::-1], runs[::-1]
        both["steps"].append(sorted((base, longer["steps"])))
        for trial, means in runs[0].items():
            short = [m >= SOLVED for m in means]
            long = [m >= SOLVED for m in runs[1][trial]]
            both["ties"] += 1
            both["robust"] += all(short)
            both["robust_longer"] += all(long)
            both["runs"] += len(short)
            both["failed"] += short.count(False)
            both["failed_longer"] += long.count(False)
            both["saved"] += sum(b and not a for a, b in zip(short, long))
            both["lost"] += sum(a and not b for a, b in zip(short, long))
        both["studies"] += 1
        both["met"] += bool(ways[0]["target_met"])
        both["met_longer"] += bool(ways[1]["target_met"])
    return both


def flag(args: list[str], name: str, default: int) -> int:
    """The value an export way's arguments give `name` (as `--steps 40000`), else `default`."""
    return int(args[args.index(name) + 1]) if name in args else default


def kept(way: dict) -> tuple[str, int]:
    """The weights an export way was judged by: ("final", 0), ("best", 0), or ("best", N) when
    evaluations tied at a seed's best were rechecked on N more episodes. Runs record N from
    2026-12-07's Intel day on; before, only a `--recheck N` way rechecked."""
    if way.get("keep_weights", "final") == "final":
        return "final", 0
    n = way.get("recheck_episodes")
    return "best", flag(way["args"], "--recheck", 0) if n is None else n


def judged(runs: dict, way: dict) -> dict[str, list[float]] | None:
    """Each tie's held-out means in `runs` (an export_pick JSON, or its "longer" part) with the
    weights the export `way` kept, as kept() says; None where those were not recorded."""
    weights, recheck = kept(way)
    if weights == "final":
        return runs["ties"]
    return runs.get("ties_keep_rechecked" if recheck else "ties_keep_best")


def by_retrain(files: list[dict]) -> dict[str, dict]:
    """The race's picks played with each seed's best evaluation's weights (the shipped export
    since 2026-12-06), pooled by how the export retrained: env steps, and whether tied
    evaluations were rechecked. Per group: studies, the pick meeting the target, robust ties and
    held-out runs failed (every tie, with those weights; "never": no evaluation of the run
    reached 475, so no choice of its weights could have solved), and how often a pick that
    solved all of the export's own seeds then solved all held-out ones. A study counts once in
    every group it ran (its race, keep best, --steps, --recheck or no-recheck way). A rechecked
    group also counts the held-out runs that solve only with the recheck ("saved") and only
    without it ("lost"): the same training runs played with the weights of their latest best
    evaluation."""
    groups: dict[tuple[int, int], dict] = {}
    keys = ("studies", "met", "ties", "robust", "runs", "failed", "never", "all_own", "all_own_met")
    for data in files:
        best = [
            (e, kept(e)[1])
            for way, e in data["exports"].items()
            if kept(e)[0] == "best" and way.startswith("race") and way != "race, 20 seeds"
        ]
        if not best:  # a run from before best weights (and before it kept the ties' curves)
            continue
        base = data.get("held_out_steps") or trained_steps(data)
        seen = set()
        for e, recheck in best:
            steps = flag(e["args"], "--steps", base)
            if (steps, recheck) in seen:
                continue
            seen.add((steps, recheck))
            # export_pick's held-out runs recheck as often as its rechecking ways (or not at all)
            runs = data if steps == base else data["longer"]
            truth = judged(runs, e)
            g = groups.setdefault((steps, recheck), dict.fromkeys((*keys, "saved", "lost"), 0))
            solved = [[m >= SOLVED for m in means] for means in truth.values()]
            g["studies"] += 1
            g["met"] += bool(e["target_met"])
            g["ties"] += len(solved)
            g["robust"] += sum(map(all, solved))
            g["runs"] += sum(map(len, solved))
            g["failed"] += sum(r.count(False) for r in solved)
            # of those, the runs no choice of weights could save: no evaluation reached 475
            curves = runs["ties_held_out_curves"]
            g["never"] += sum(
                m < SOLVED and max(curve) < SOLVED
                for trial, means in truth.items()
                for m, curve in zip(means, curves[trial])
            )
            if e["export_seeds_solved"] == e["export_seeds"]:
                g["all_own"] += 1
                g["all_own_met"] += bool(e["target_met"])
            if recheck:
                for trial, means in truth.items():
                    plain = runs["ties_keep_best"][trial]
                    g["saved"] += sum(a >= SOLVED > b for a, b in zip(means, plain))
                    g["lost"] += sum(b >= SOLVED > a for a, b in zip(means, plain))
    return {
        f"{steps:,} steps" + (f", rechecked on {n}" if n else ""): groups[steps, n]
        for steps, n in sorted(groups)
    }


def curve_rules(curve: list[list[float | None]]) -> dict[str, float]:
    """Scores (higher is better) one verification's curves [seed][evaluation] by each rule that
    tiebreaks() tries on the finalists that solved all their seeds."""
    rows = [[x for x in seed if x is not None] for seed in curve]
    flat = [x for row in rows for x in row]
    late = [x for row in rows for x in row[len(row) // 2 :]]
    reached = [next((i for i, x in enumerate(row) if x >= SOLVED), len(row)) for row in rows]
    return {
        "highest mean over every evaluation": sum(flat) / len(flat),
        "lowest seed's mean highest": min(sum(row) / len(row) for row in rows),
        "earliest to 475, on average": -sum(reached) / len(reached),
        "most evaluations at 500": sum(x >= 500 for x in flat) / len(flat),
        "highest worst evaluation, second half": min(late),
    }


def tiebreaks(files: list[dict]) -> dict:
    """Could the verification's learning curves tell apart the finalists that all solved every
    verification seed (the export then keeps the race's order)? On each study whose race way
    verified two or more such finalists, judged on the held-out seeds with the weights that way
    kept: how often the export's pick met the target, how often each curve rule's pick would
    have (a rule's tie is split evenly among its picks), and a perfect finalist at random."""
    rules = list(curve_rules([[0.0]]))
    out = {"studies": 0, "shipped": 0, "random": 0.0} | dict.fromkeys(rules, 0.0)
    for data in files:
        e = data["exports"].get("race")
        verified = [v for v in (e or {}).get("verified") or [] if "eval_curve" in v]
        if not verified:  # a run from before the export kept its verification's curves
            continue
        base = data.get("held_out_steps") or trained_steps(data)
        if flag(e["args"], "--steps", base) != base:
            continue
        truth = judged(data, e)
        if not truth:
            continue
        perfect = [
            v for v in verified if min(v["per_seed_mean"]) >= SOLVED and str(v["trial"]) in truth
        ]
        if len(perfect) < 2:
            continue
        met = {v["trial"]: all(m >= SOLVED for m in truth[str(v["trial"])]) for v in perfect}
        out["studies"] += 1
        out["shipped"] += all(m >= SOLVED for m in truth[str(e["trial"])])
        out["random"] += sum(met.values()) / len(met)
        scores = {v["trial"]: curve_rules(v["eval_curve"]) for v in perfect}
        for rule in rules:
            top = max(s[rule] for s in scores.values())
            picks = [t for t, s in scores.items() if s[rule] == top]
            out[rule] += sum(met[t] for t in picks) / len(picks)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks/results")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pick_pool.json")
    args = p.parse_args()

    runs, files, best_only, best_only_longer = [], [], 0, 0
    for path in sorted(args.results.glob("export_pick_*.json")):
        data = json.loads(path.read_text())
        files.append(data)
        exports = final_weights(data["exports"])
        if "race" not in exports:  # no export played final weights: not in these tables
            best_only += 1
            best_only_longer += bool(data.get("longer"))
            continue
        ties = {int(t): all(m >= SOLVED for m in means) for t, means in data["ties"].items()}
        runs.append((path.name, ties, exports))

    ways = ["race", "first 3", "race, 20 seeds"]
    met = {w: [0, 0] for w in ways}
    chance = 0.0
    print(f"{'run':<44} {'ties':>4} {'robust':>6} {'random':>6}  " + "  ".join(ways))
    for name, ties, exports in runs:
        share = sum(ties.values()) / len(ties)
        chance += share
        cells = []
        for w in ways:
            if w in exports:
                met[w][0] += bool(exports[w]["target_met"])
                met[w][1] += 1
                cells.append("met " if exports[w]["target_met"] else "miss")
            else:
                cells.append("  - ")
        print(
            f"{name:<44} {len(ties):>4} {sum(ties.values()):>6} {share:>6.2f}  " + "  ".join(cells)
        )

    # where the robust ties sit: by study rank (the order of `ties`) and by race place
    by_rank, by_race = [[0, 0] for _ in range(4)], [[0, 0] for _ in range(4)]
    ten_of_ten = [0, 0]  # picks that solved all of the export's own seeds: held-out met?
    counted = set()  # (run, trial): two ways that picked the same trial count once
    for name, ties, exports in runs:
        if len(ties) >= 4:
            for place, robust in enumerate(ties.values(), 1):
                q = quartile(place, len(ties))
                by_rank[q][0] += robust
                by_rank[q][1] += 1
            order = exports["race"].get("race_order") or []
            for place, trial in enumerate(order, 1):
                q = quartile(place, len(order))
                by_race[q][0] += ties[trial]
                by_race[q][1] += 1
        for w in ways:
            e = exports.get(w)
            if (
                e
                and e["export_seeds"] == 10
                and e["export_seeds_solved"] == e["export_seeds"]
                and (name, e["trial"]) not in counted
            ):
                counted.add((name, e["trial"]))
                ten_of_ten[0] += bool(e["target_met"])
                ten_of_ten[1] += 1

    n_runs = len(runs)
    print(f"\n{n_runs} studies; the target is met when the pick solves all 5 held-out seeds")
    if best_only:
        print(
            f"  ({best_only} more exported with best weights only, pooled in the table by retrain; "
            f"the one before it pools the {best_only_longer} of them run with --longer)"
        )
    reachable = sum(any(ties.values()) for _, ties, _ in runs)
    print(f"  a tie picked at random: {chance:.1f} of {n_runs} expected")
    print(
        f"  studies with a robust tie to find: {reachable} of {n_runs} (no way of choosing can do better)"
    )
    for w in ways:
        print(f"  {w:<8} met {rate(*met[w])}")
    both = [e for _, _, e in runs if "race, 20 seeds" in e]
    if both:
        print(
            f"  on the {len(both)} studies that ran both: race met "
            f"{sum(e['race']['target_met'] for e in both)}, race with 20 verification seeds met "
            f"{sum(e['race, 20 seeds']['target_met'] for e in both)}"
        )
    print("\nrobust ties by quarter of the order (studies with 4 or more ties):")
    for q in range(4):
        print(
            f"  quarter {q + 1}: study rank {rate(*by_rank[q]):<28} race place {rate(*by_race[q])}"
        )
    print(
        "\npicks that solved all 10 of the export's own seeds, then all 5 held-out: "
        f"{rate(*ten_of_ten)}"
    )
    groups: dict[str, list[int]] = {}  # ties -> [studies, with a robust tie, race met]
    for _, ties, exports in runs:
        g = groups.setdefault(tie_group(len(ties)), [0, 0, 0])
        g[0] += 1
        g[1] += any(ties.values())
        g[2] += bool(exports["race"]["target_met"])
    print("\nby how many ties a study ended with:")
    print(f"  {'ties':<11} {'studies':>7}  {'with a robust tie':<28} race's pick met the target")
    order = [f"1-{FEW_TIES - 1}", f"{FEW_TIES}-12", "13-19", "20 or more"]
    for key in [k for k in order if k in groups]:
        n, robust, met_ = groups[key]
        print(f"  {key:<11} {n:>7}  {rate(robust, n):<28} {rate(met_, n)}")
    compared = weights_compared(files)
    if compared["studies"]:
        c = compared
        print(
            f"\nfinal weights against each seed's best evaluation's, on the {c['studies']} studies "
            "exported both ways:\n"
            f"  robust ties: {rate(c['robust_final'], c['ties'])} final, "
            f"{rate(c['robust_best'], c['ties'])} best\n"
            f"  studies with a robust tie: {c['with_robust_final']} final, "
            f"{c['with_robust_best']} best\n"
            f"  race's pick met the target: {rate(c['met_final'], c['studies'])} final, "
            f"{rate(c['met_best'], c['studies'])} best"
        )
    longer = longer_compared(files)
    if longer["studies"]:
        c = longer
        print(
            f"\nretrained for fewer steps against more (export_pick --longer; steps "
            f"{', '.join(sorted({f'{a:,} and {b:,}' for a, b in c['steps']}))}), each seed with its "
            f"best evaluation's weights, on {c['studies']} studies:\n"
            f"  robust ties: {rate(c['robust'], c['ties'])} fewer, "
            f"{rate(c['robust_longer'], c['ties'])} more\n"
            f"  held-out runs failed: {c['failed']} and {c['failed_longer']} of {c['runs']}; "
            f"solved only with more steps {c['saved']}, only with fewer {c['lost']}\n"
            f"  race's pick met the target: {rate(c['met'], c['studies'])} fewer, "
            f"{rate(c['met_longer'], c['studies'])} more"
        )
    retrained = by_retrain(files)
    if retrained:
        print(
            "\nthe race's pick played with each seed's best evaluation's weights, by how the "
            "export retrained\n(a study counts in every group it ran; ties and runs judged with "
            "the same weights):"
        )
        print(
            f"  {'retrain':<29} {'studies':>7}  {'pick met the target':<27} {'robust ties':<29} "
            f"{'held-out runs failed (never 475)':<32}  picks solving all own seeds, then held-out"
        )
        for label, g in retrained.items():
            failed = f"{g['failed']} of {g['runs']} ({g['never']} never)"
            print(
                f"  {label:<29} {g['studies']:>7}  {rate(g['met'], g['studies']):<27} "
                f"{rate(g['robust'], g['ties']):<29} {failed:<32}  "
                f"{rate(g['all_own_met'], g['all_own'])}"
            )
        for label, g in retrained.items():
            if ", rechecked" in label:
                print(
                    f"  {label}: {g['saved']} held-out runs solve only with the recheck, "
                    f"{g['lost']} only without it"
                )
    broken = tiebreaks(files)
    if broken["studies"]:
        print(
            f"\nthe export's finalists that solved all their verification seeds, on the "
            f"{broken['studies']} studies with two or more: picked by their verification curves "
            "rather than the race's order\n(held-out, with the weights each export kept; a "
            "rule's tie split evenly):"
        )
        print(f"  {'the export (the race order)':<40} met in {broken['shipped']}")
        print(f"  {'a perfect finalist at random':<40} met in {broken['random']:.1f} (expected)")
        for rule in curve_rules([[0.0]]):
            print(f"  {rule:<40} met in {broken[rule]:.1f}")
    args.out.write_text(
        json.dumps(
            {
                "studies": [name for name, _, _ in runs],
                "random_pick_expected": round(chance, 2),
                "studies_with_a_robust_tie": reachable,
                "met": {w: {"met": k, "runs": n} for w, (k, n) in met.items()},
                "robust_by_study_rank_quarter": by_rank,
                "robust_by_race_place_quarter": by_race,
                "all_export_seeds_solved_then_held_out_met": ten_of_ten,
                "by_ties": {
                    k: dict(zip(("studies", "with_a_robust_tie", "race_met"), v))
                    for k, v in groups.items()
                },
                "final_against_best_weights": compared,
                "fewer_against_more_steps": longer,
                "best_weights_by_retrain": retrained,
                "perfect_finalists_by_curve": broken,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
