"""Reading a command's worker processes from /proc: which a parent started, and which still run."""

from __future__ import annotations

from pathlib import Path


def worker_pids(parent: int) -> list[int]:
    """The parent's spawned worker processes once they run Python's spawn code (not
    multiprocessing's resource tracker; a fresh fork still shows its parent's command line)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    ]


def running(pid: int) -> bool:
    """Whether a process exists and has not exited (an exited one waits, a zombie, until its
    new parent reaps it). The state follows the last ')': a command name may hold one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
