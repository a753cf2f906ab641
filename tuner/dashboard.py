"""python -m tuner.dashboard: optuna-dashboard on a study's storage and its artifact store.

Each trial shows its learning curve (the intermediate values), its config (user attributes) and,
on an exported trial, the report and plots `tuner.export` attached.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import optuna

from tuner.cli import run_main
from tuner.errors import TunerError
from tuner.run import open_storage, read_study
from tuner.study import study_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tuner.dashboard", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--study", type=Path, default=None, help="study file (default studies/cartpole.yaml)"
    )
    p.add_argument("--storage", default=None, help="SQLAlchemy URL of the storage to show")
    p.add_argument(
        "--artifact-dir",
        type=Path,
        default=None,
        help="artifact store (default studies/<name>/artifacts)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    args = p.parse_args(argv)
    if args.study is not None and args.storage is not None:
        raise TunerError("give --study FILE or --storage URL, not both")
    return args


def resolve(args: argparse.Namespace) -> tuple[str, optuna.storages.RDBStorage, Path | None]:
    """The storage URL, the opened storage, and the artifact directory the command serves."""
    spec = None if args.storage else read_study(args.study)
    url = args.storage or spec.default_storage
    storage = open_storage(url, existing=True)
    if args.artifact_dir is not None or spec is not None:
        return url, storage, args.artifact_dir or study_dir(spec.name, spec.path) / "artifacts"
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]
    if len(names) == 1:
        return url, storage, study_dir(names[0], None) / "artifacts"
    print(f"{url} holds {len(names)} studies; give --artifact-dir to show one's exports")
    return url, storage, None


def command_line(url: str, artifacts: Path | None, host: str, port: int) -> str:
    """The plain optuna-dashboard command that serves the same thing."""
    store = f" --artifact-dir {artifacts}" if artifacts is not None else ""
    return f"optuna-dashboard {url}{store} --host {host} --port {port}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url, storage, artifacts = resolve(args)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise TunerError(
                f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another --port"
            ) from None
    import optuna_dashboard

    store = None
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
        store = optuna.artifacts.FileSystemArtifactStore(str(artifacts))
    print(f"optuna-dashboard on {url}, artifacts in {artifacts or '(none)'}")
    print(f"open http://{args.host}:{args.port}/  (Ctrl-C stops it)")
    print(f"the same with the plain command: {command_line(url, artifacts, args.host, args.port)}")
    sys.stdout.flush()
    optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
