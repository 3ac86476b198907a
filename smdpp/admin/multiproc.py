"""prometheus-client's multiprocess mode for ``--workers N``, set up by the parent process.

prometheus-client chooses between counting in memory and counting in
memory-mapped files (one set per process, in ``PROMETHEUS_MULTIPROC_DIR``)
when it is first imported.  So the parent, which never counts, prepares an
empty folder and sets the variable before any worker is forked and before
anything imports prometheus-client: this module does not import it.  The
workers also share their recent sessions through this folder
(:mod:`smdpp.admin.worker_sessions`).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MULTIPROC_ENV", "multiprocess_dir", "prepare", "mark_process_dead"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, when this process counts in it."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare(folder: Path) -> None:
    """An empty folder for multiprocess mode, set in the environment for the workers to come."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # counts (and workers' recent sessions, smdpp/admin/worker_sessions.py) of an earlier
    # run must not add up with ours
    for old in (*folder.glob("*.db"), *folder.glob("recent-*.json")):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)


def mark_process_dead(pid: int) -> None:
    """Drop a stopped worker's live gauges (open connections); its counters stay counted."""
    if multiprocess_dir():
        from prometheus_client import multiprocess  # the variable is set: no harm to import
        multiprocess.mark_process_dead(pid)
