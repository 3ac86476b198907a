"""``--workers N``: every worker's recent sessions on the status page, whichever worker answers.

Each worker keeps its own :class:`~smdpp.admin.recent.RecentSessions` (the
calls it answered).  :class:`SessionFiles` writes that ring, when it changed
and at most every :data:`WRITE_INTERVAL` seconds, to ``recent-<pid>.json`` in
the per-run folder that the supervisor prepares for prometheus-client's
multiprocess mode (:mod:`smdpp.admin.multiproc`): written to a temporary
file, then renamed over the old one, so a reader sees a whole ring or the
previous one.  The page merges its own ring (current) with every other
file (at most that interval old): a session whose calls reached several
workers (the kernel spreads connections over them) becomes one again, its
steps in time order.  The files of a worker that died stay until the
supervisor empties the folder at the next start, so its sessions stay shown.
No process is added; a damaged file is skipped and named on the page.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from smdpp.admin.recent import MAX_STEPS, RecentSessions, SessionView, Step
from smdpp.observe import bounded

log = logging.getLogger(__name__)

__all__ = ["SessionFiles", "WRITE_INTERVAL", "FILE_GLOB"]

WRITE_INTERVAL = 0.25  # seconds between two writes of one worker's ring, at most
FILE_GLOB = "recent-*.json"
MAX_FILE = 4 * 1024 * 1024  # bytes; a ring of 200 sessions x 16 steps is far below


def _file(folder: Path, pid: int) -> Path:
    return folder / f"recent-{pid}.json"


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not a string")
    return bounded(value, 200)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    return float(value)


def _view(entry: Any) -> SessionView:
    """A session as written by :meth:`SessionFiles.write`, checked field by field."""
    if not isinstance(entry, dict) or not isinstance(entry.get("steps"), list):
        raise ValueError("not a session")
    installed = entry.get("installed")
    if installed is not None and not isinstance(installed, bool):
        raise ValueError("installed is not true/false")
    steps = []
    for step in entry["steps"][:MAX_STEPS]:
        if not isinstance(step, dict):
            raise ValueError("not a step")
        steps.append(Step(_str(step.get("function")) or "-", _number(step.get("started")),
                          _number(step.get("duration")), _str(step.get("code")) or "-",
                          _str(step.get("message"))))
    return SessionView(_str(entry.get("key")) or "-", _str(entry.get("transaction_id")),
                       _number(entry.get("started")), _str(entry.get("eid")),
                       _str(entry.get("matching_id")), _str(entry.get("iccid")),
                       _str(entry.get("state")), installed, steps)


def _last_active(view: SessionView) -> float:
    return max((step.started for step in view.steps), default=view.started)


def _merge(views: Sequence[SessionView]) -> SessionView:
    """The parts of one session that several workers saw, as one (steps in time order)."""
    ordered = sorted(views, key=_last_active)
    steps = sorted((step for view in views for step in view.steps), key=lambda s: s.started)
    merged = SessionView(ordered[0].key, ordered[0].transaction_id,
                         min(view.started for view in views), steps=steps[:MAX_STEPS])
    for view in ordered:  # the latest part wins where it knows something
        merged.eid = view.eid or merged.eid
        merged.matching_id = view.matching_id or merged.matching_id
        merged.iccid = view.iccid or merged.iccid
        merged.state = view.state or merged.state
        if view.installed is not None:
            merged.installed = view.installed
    return merged


class SessionFiles:
    """One worker's ring in the shared folder, and every worker's sessions merged."""

    def __init__(self, recent: RecentSessions, folder: Path, pid: int | None = None) -> None:
        self.recent = recent
        self.folder = Path(folder)
        self.pid = os.getpid() if pid is None else pid
        self._written = -1  # recent.changes when last written
        self._failing = False  # the last write failed (logged once)

    def write(self) -> bool:
        """Write the ring if it changed since the last write (write + rename); True if written."""
        if self.recent.changes == self._written:
            return False
        changes = self.recent.changes
        entries = [asdict(view) for view in self.recent.newest_first()]
        target = _file(self.folder, self.pid)
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                json.dump({"pid": self.pid, "sessions": entries}, out, separators=(",", ":"))
            os.replace(temporary, target)
        except OSError as exc:  # a full disk: the page shows this worker's older ring
            if not self._failing:  # once, not every interval, until a write succeeds again
                log.warning("cannot write %s: %s (the status page shows its older sessions "
                            "until a write succeeds)", target, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("%s written again", target)
        self._failing = False
        self._written = changes
        return True

    def start(self, clock: Any, interval: float = WRITE_INTERVAL) -> Any:
        """Write whenever it changed, at most every ``interval`` s (a LoopingCall on ``clock``)."""
        from twisted.internet import task
        loop = task.LoopingCall(self.write)
        loop.clock = clock
        loop.start(interval, now=True)
        return loop

    def sessions(self, limit: int) -> tuple[list[SessionView], list[str]]:
        """Every worker's sessions, most recently active first, and the files that were skipped."""
        parts: dict[str, list[SessionView]] = {}
        problems = []
        own = _file(self.folder, self.pid)
        groups: list[tuple[int | str, list[SessionView]]] = [(self.pid, self.recent.newest_first())]
        for path in sorted(self.folder.glob(FILE_GLOB)):
            if path == own:
                continue  # this worker's ring is read from memory: it is current
            try:
                if path.stat().st_size > MAX_FILE:
                    raise ValueError(f"larger than {MAX_FILE} bytes")
                data = json.loads(path.read_text(encoding="utf-8"))
                entries = data["sessions"] if isinstance(data, dict) else None
                if not isinstance(entries, list):
                    raise ValueError("no list of sessions")
                groups.append((path.stem, [_view(entry) for entry in entries]))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{path.name} skipped: {bounded(str(exc), 120)}")
        for origin, views in groups:
            for view in views:  # a session-less failure's key is local to its worker
                key = view.transaction_id or f"{origin}{view.key}"
                parts.setdefault(key, []).append(view)
        merged = [views[0] if len(views) == 1 else _merge(views) for views in parts.values()]
        merged.sort(key=_last_active, reverse=True)
        return merged[:limit], problems
