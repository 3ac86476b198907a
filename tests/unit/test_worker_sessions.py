"""Every worker's recent sessions merged on the page (smdpp.admin.worker_sessions)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from smdpp.admin.recent import RecentSessions
from smdpp.admin.worker_sessions import SessionFiles
from smdpp.observe import CallOutcome

TID = "0A" * 16


def _call(recent: RecentSessions, function: str, at: float, tid: str | None = TID, **more) -> None:
    recent(CallOutcome("ES9+", function, at, 0.001, tid, **more))


def test_a_session_split_over_two_workers_is_one_again(tmp_path: Path) -> None:
    first, second = RecentSessions(), RecentSessions()
    _call(first, "initiateAuthentication", 1.0)
    _call(second, "authenticateClient", 2.0, eid="8904", matching_id="M", iccid="8900")
    _call(first, "getBoundProfilePackage", 3.0, state="downloaded")
    _call(second, "handleNotification", 4.0, state="done", installed=True)
    _call(second, "initiateAuthentication", 5.0, None, subject_code="8.8.1", reason_code="3.8")
    _call(first, "initiateAuthentication", 0.5, None, subject_code="8.8.1", reason_code="3.8")
    files_first = SessionFiles(first, tmp_path, pid=101)
    files_second = SessionFiles(second, tmp_path, pid=102)
    assert files_second.write() and not files_second.write()  # only when it changed
    assert not list(tmp_path.glob(".*.tmp"))  # written, then renamed
    sessions, problems = files_first.sessions(limit=10)
    assert problems == []
    assert len(sessions) == 3  # the split session once, each worker's session-less failure
    merged = next(view for view in sessions if view.transaction_id == TID)
    assert [step.function for step in merged.steps] == [
        "initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
        "handleNotification"]
    assert (merged.eid, merged.matching_id, merged.state, merged.outcome) == (
        "8904", "M", "done", "installed")
    assert sessions[0].transaction_id is None and sessions[0].started == 5.0  # newest first
    assert files_first.sessions(limit=1)[0] == sessions[:1]  # bounded


def test_damaged_and_hostile_files_are_skipped_and_named(tmp_path: Path) -> None:
    own = RecentSessions()
    _call(own, "initiateAuthentication", 1.0)
    (tmp_path / "recent-7.json").write_text("{not json")
    (tmp_path / "recent-8.json").write_text(json.dumps({"sessions": [{"steps": "x"}]}))
    (tmp_path / "recent-9.json").write_text(json.dumps({"sessions": [{
        "key": "k", "transaction_id": "<b>" * 100, "started": 1.0, "installed": None,
        "steps": [{"function": "f", "started": "soon", "duration": 0, "code": "ok"}]}]}))
    sessions, problems = SessionFiles(own, tmp_path, pid=1).sessions(limit=10)
    assert [view.transaction_id for view in sessions] == [TID]
    assert [p.split(" ")[0] for p in problems] == ["recent-7.json", "recent-8.json",
                                                   "recent-9.json"]



def test_a_write_that_fails_is_logged_once_until_one_succeeds(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="smdpp.admin.worker_sessions")
    recent = RecentSessions()
    folder = tmp_path / "gone"  # a folder that cannot be written in (as on a full disk)
    files = SessionFiles(recent, folder, pid=5)
    for at in (1.0, 2.0, 3.0):
        _call(recent, "initiateAuthentication", at, None)
        assert not files.write()
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
    folder.mkdir()
    assert files.write() and (folder / "recent-5.json").is_file()
    assert any("written again" in r.getMessage() for r in caplog.records)
    _call(recent, "initiateAuthentication", 4.0, None)
    folder.rename(tmp_path / "moved")
    assert not files.write()
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 2  # a new failure
