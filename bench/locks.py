"""Per-run locks: two grid processes (two shells, overlapping Slurm arrays) never train the same run at once.

The lock is `results/runs/<preset>/<run_id>.lock`, held with `flock` for as long as the run trains. The kernel
drops a flock when its process dies, however it dies (SIGKILL included), so a lock whose owner is dead is free
and the next process takes it over; the file only records who holds it (host, pid, start) for `show`.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


def lock_path(results_dir, preset: str, run_id: str) -> Path:
    return Path(results_dir) / "runs" / preset / f"{run_id}.lock"


class Busy(Exception):
    """Another live process holds the run's lock."""


@contextmanager
def run_lock(path: Path):
    """Hold the lock at `path` for the block, or raise Busy at once when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(holder(path) or str(path)) from None
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        try:
            yield owner
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether a live process holds the lock now (a file left by a dead owner is not a lock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return ""
    return f"pid {owner.get('pid')} on {owner.get('host')}" if owner else ""
