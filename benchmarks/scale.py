"""Finished trials per minute with 1 and 2 workers, on SQLite and on PostgreSQL, same study.

    python benchmarks/scale.py                       # 40 trials per run, about 4 minutes
    python benchmarks/scale.py --trials 8            # a quick look

Each run is a fresh study (a new SQLite file, or a new PostgreSQL database that is dropped
afterwards) of benchmarks/scale.yaml, tuned by `python -m tuner.run --jobs J` exactly as a user
runs it. PostgreSQL rows are skipped, with the reason, when no server answers at --postgres.
Prints a table and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "benchmarks/scale.yaml"


def tune(url: str, jobs: int, trials: int) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuner.run", "--study", str(STUDY), "--storage", url]
        + ["--trials", str(trials), "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"tuner.run failed on {url}: {done.stderr.strip()[-500:]}")
    study = optuna.load_study(study_name="scale", storage=url)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {
        "wall_s": round(wall, 1),
        "finished": states.count("COMPLETE") + states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "trials_per_minute": round(60 * trials / wall, 2),
    }


def postgres_database(server: str):
    """A throwaway database on the server, or the reason there is none."""
    try:
        import psycopg

        admin = psycopg.connect(f"{server}/postgres", connect_timeout=3, autocommit=True)
    except Exception as exc:  # no driver, no server
        return None, None, str(exc).strip().splitlines()[0]
    name = f"tuner_scale_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    return admin, name, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/scale.json")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    rows, skipped = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            url = f"sqlite:///{Path(tmp) / f'scale-{jobs}.db'}"
            rows.append({"storage": "sqlite", "jobs": jobs, **tune(url, jobs, args.trials)})
            print(rows[-1], flush=True)
    for jobs in (1, 2):
        admin, name, skipped = postgres_database(args.postgres)
        if admin is None:
            print(f"PostgreSQL skipped: {skipped}")
            break
        try:
            url = f"{args.postgres}/{name}"
            rows.append({"storage": "postgresql", "jobs": jobs, **tune(url, jobs, args.trials)})
            print(rows[-1], flush=True)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()

    print(
        f"\n{'storage':>10} {'jobs':>5} {'trials':>7} {'wall s':>8} {'trials/min':>11} {'vs 1 job':>9}"
    )
    for row in rows:
        one = next(r for r in rows if r["storage"] == row["storage"] and r["jobs"] == 1)
        row["speedup"] = round(row["trials_per_minute"] / one["trials_per_minute"], 2)
        print(
            f"{row['storage']:>10} {row['jobs']:>5} {row['finished']:>7} {row['wall_s']:>8.1f} "
            f"{row['trials_per_minute']:>11.2f} {row['speedup']:>8.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "study": STUDY.name,
                "trials": args.trials,
                "rows": rows,
                "postgres_skipped": skipped,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
