"""The journal store (the default of one server process): durable across a kill,
one process per folder, memory bounded by the sessions in progress, old
segments deleted once everything in them has expired, damage at the end of a
segment read past with a warning, secrets sealed on disk.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest

from smdpp.rsp.session import Session, SessionState
from smdpp.store import journal
from smdpp.store.journal import JournalStore, StoreInUseError

SECRET = bytes(range(40, 40 + 121))  # stands for a PKCS#8 one-time key
FUTURE = time.time() + 3600


def _session(n: int, state: SessionState = SessionState.AUTHENTICATED,
             expires: float = FUTURE) -> Session:
    session = Session(transaction_id=f"{n:032X}", state=SessionState.INITIATED, created=0.0,
                      expires=expires, smdp_address="smdp.example", euicc_challenge=b"\x01" * 16,
                      server_challenge=b"\x02" * 16, ci_pkid=b"\x03" * 20, eid=f"{n:032d}")
    if state is not SessionState.INITIATED:
        session.state = SessionState.AUTHENTICATED
        session.euicc_otpk = b"\x04" * 65
        session.smdp_ot_key = SECRET
    if state.finished:
        session.finish(state, {"success": True, "n": n})
    elif state is not SessionState.INITIATED:
        session.state = state
    return session


def _segments(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "sessions").glob("*.journal"))


def _write_and_die(folder: Path) -> None:
    """A server process that journals a few sessions and is killed: no close()."""
    store = JournalStore(folder)
    store.put(_session(1))  # in progress, its one-time key sealed in the journal
    store.put(_session(2, SessionState.DONE))
    store.put(_session(3))
    store.delete(_session(3).transaction_id)
    store.put(_session(5, SessionState.CANCELLED))
    store.delete(_session(5).transaction_id)
    store.put(_session(4, expires=10.0))  # expired by the time anyone reads it
    os.kill(os.getpid(), signal.SIGKILL)


def test_sessions_survive_a_killed_process(tmp_path: Path) -> None:
    child = multiprocessing.get_context("fork").Process(target=_write_and_die, args=(tmp_path,))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    store = JournalStore(tmp_path)  # the killed process's lock went with it
    try:
        live = store.get(_session(1).transaction_id)
        assert live == _session(1) and live is not None and live.smdp_ot_key == SECRET
        done = store.get(_session(2).transaction_id)
        assert done is not None and done.state is SessionState.DONE
        assert done.result == {"success": True, "n": 2}
        assert store.get(_session(3).transaction_id) is None  # deleted stays deleted
        assert store.get(_session(5).transaction_id) is None  # finished, then deleted
        assert store.get(_session(4).transaction_id) is None  # expired is not loaded
        assert len(store) == 2
    finally:
        store.close()


def test_one_process_per_folder(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    with pytest.raises(StoreInUseError, match=rf"in use by another smdpp process \(pid {os.getpid()}\)"):
        JournalStore(tmp_path)  # another open file: refused as another process would be
    store.close()
    again = JournalStore(tmp_path)  # closing released the lock
    again.close()


def test_put_if_is_a_compare_and_set_that_a_reopen_keeps(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    tid = _session(7).transaction_id
    assert store.put_if(_session(7, SessionState.INITIATED), None) is True
    assert store.put_if(_session(7, SessionState.INITIATED), None) is False
    assert store.put_if(_session(7), SessionState.INITIATED) is True
    assert store.put_if(_session(7, SessionState.BPP_DELIVERED), SessionState.INITIATED) is False
    store.close()
    store = JournalStore(tmp_path)
    loaded = store.get(tid)
    assert loaded is not None and loaded.state is SessionState.AUTHENTICATED  # the replay lost
    assert store.put_if(_session(7, SessionState.INITIATED), None) is False  # known after reopen
    assert store.put_if(_session(7, SessionState.DONE), SessionState.AUTHENTICATED) is True
    assert store.put_if(_session(7, SessionState.DONE), SessionState.AUTHENTICATED) is False
    assert store.put_if(_session(7, SessionState.INITIATED), None) is False  # finished, not new
    store.close()


def test_memory_holds_sessions_in_progress_and_a_bounded_number_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "MAX_FINISHED", 5)
    store = JournalStore(tmp_path)
    for n in range(20):
        store.put(_session(n))
        store.put(_session(n, SessionState.DONE))
    store.put(_session(100))
    assert len(store) == 6  # the 5 most recently finished and the one in progress
    assert store.get(_session(14).transaction_id) is None  # finished long ago: journal only
    assert store.get(_session(15).transaction_id) is not None
    assert store.get(_session(100).transaction_id) is not None
    store.close()
    store = JournalStore(tmp_path)  # reading the journal keeps the same ones
    assert len(store) == 6
    assert store.get(_session(14).transaction_id) is None
    recent = store.get(_session(19).transaction_id)
    assert recent is not None and recent.result == {"success": True, "n": 19}
    store.close()


def test_old_segments_go_once_everything_in_them_has_expired(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    store = JournalStore(tmp_path, segment_bytes=2000)  # a few frames per segment
    for n in range(12):
        store.put(_session(n, expires=100.0 + n))
    store.put(_session(50, expires=FUTURE))  # still in progress, in the newest segment
    names = _segments(tmp_path)
    assert len(names) >= 4
    with caplog.at_level(logging.INFO, logger="smdpp.store.journal"):
        assert store.expire(104.5) == 5  # sessions 0..4
    kept = _segments(tmp_path)
    assert kept and kept == names[len(names) - len(kept):]  # only the oldest went, in order
    assert len(kept) < len(names)
    assert "deleted: every session in it has expired" in caplog.text
    store.expire(FUTURE + 1)
    assert _segments(tmp_path) == names[-1:]  # the segment being written stays
    store.close()
    store = JournalStore(tmp_path, now=FUTURE + 1)  # nothing left worth keeping
    assert len(store) == 0 and len(_segments(tmp_path)) == 1  # only the new one
    store.close()


def test_segments_go_oldest_first_only(tmp_path: Path) -> None:
    """A segment with an unexpired session keeps every later one: a frame that deletes a
    session must never go before an older frame that holds its record."""
    store = JournalStore(tmp_path, segment_bytes=2000)
    store.put(_session(0, expires=FUTURE))
    for n in range(1, 12):
        store.put(_session(n, expires=100.0 + n))
    names = _segments(tmp_path)
    assert len(names) >= 4
    assert store.expire(200.0) == 11
    assert _segments(tmp_path) == names  # the first segment still holds session 0
    assert store.get(_session(0).transaction_id) is not None
    store.close()


def test_a_frame_cut_short_refuses_the_sessions_before_it(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The lost frame may have ended any session in progress: they are in doubt and refused."""
    store = JournalStore(tmp_path)
    store.put(_session(1))
    store.put(_session(3, SessionState.DONE))
    store.put(_session(2))
    store.close()
    [name] = _segments(tmp_path)
    path = tmp_path / "sessions" / name
    data = path.read_bytes()
    last = len(data) - 8 - struct.unpack(">I", _frame_offsets(data)[-1][1])[0]
    path.write_bytes(data[:-10])  # the process died inside its last write()
    with caplog.at_level(logging.WARNING):
        store = JournalStore(tmp_path)
    assert store.get(_session(1).transaction_id) is None  # in doubt
    assert store.get(_session(2).transaction_id) is None  # its frame is lost
    assert store.get(_session(3).transaction_id).state is SessionState.DONE
    assert (f"{len(data) - 10 - last} damaged byte(s) at offsets {last}-{len(data) - 11} "
            "skipped (to the end") in caplog.text
    assert f"refused (the damage may have ended them): {_session(1).transaction_id}" in caplog.text
    store.close()


def test_a_frame_failing_its_crc_is_skipped_and_reading_resumes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = JournalStore(tmp_path)
    store.put(_session(1))
    store.put(_session(1, SessionState.DONE))  # the frame to damage: it ends session 1
    store.put(_session(2))
    store.close()
    [name] = _segments(tmp_path)
    path = tmp_path / "sessions" / name
    data = bytearray(path.read_bytes())
    (_, first), (second, _), (third, _) = _frame_offsets(bytes(data))
    data[second + 40] ^= 0x01  # one bit of the second frame
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        store = JournalStore(tmp_path)
    assert store.get(_session(1).transaction_id) is None  # never back in progress
    assert store.get(_session(2).transaction_id).state is SessionState.AUTHENTICATED
    assert (f"{third - second} damaged byte(s) at offsets {second}-{third - 1} skipped, "
            f"reading resumed at offset {third}") in caplog.text
    store.close()


def _frame_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, length field) of every frame of an undamaged segment."""
    offsets, offset = [], 0
    while offset < len(data):
        length = struct.unpack_from(">I", data, offset)[0]
        offsets.append((offset, data[offset:offset + 4]))
        offset += 8 + length
    return offsets


def _history() -> list[tuple[str, Session | None]]:
    """What a small journal records, in order: (transactionId, session or None = deleted)."""
    steps: list[tuple[str, Session | None]] = []
    for n, states in ((1, [SessionState.INITIATED, SessionState.AUTHENTICATED,
                           SessionState.BPP_DELIVERED, SessionState.DONE]),
                      (2, [SessionState.INITIATED, SessionState.AUTHENTICATED]),
                      (3, [SessionState.INITIATED, None]),
                      (4, [SessionState.AUTHENTICATED, SessionState.CANCELLED]),
                      (5, [SessionState.INITIATED, SessionState.AUTHENTICATED,
                           SessionState.BPP_DELIVERED])):
        for state in states:
            steps.append((_session(n).transaction_id, None if state is None else _session(n, state)))
    # interleaved as concurrent downloads would be: round-robin over the sessions' steps
    by_tid: dict[str, list[tuple[str, Session | None]]] = {}
    for tid, session in steps:
        by_tid.setdefault(tid, []).append((tid, session))
    order: list[tuple[str, Session | None]] = []
    while any(by_tid.values()):
        for queue in by_tid.values():
            if queue:
                order.append(queue.pop(0))
    return order


def test_one_damaged_byte_anywhere_costs_only_its_frame(tmp_path: Path) -> None:
    """A dense sample of the bytes of a small journal damaged in turn: no crash, no finished or deleted
    session back in progress, every frame after the damaged one recovered, and only
    the sessions in progress before the damage (in doubt) refused."""
    history = _history()
    store = JournalStore(tmp_path)
    for tid, session in history:
        if session is None:
            store.delete(tid)
        else:
            store.put(session)
    store.close()
    [name] = _segments(tmp_path)
    path = tmp_path / "sessions" / name
    original = path.read_bytes()
    frames = [offset for offset, _ in _frame_offsets(original)]
    assert len(frames) == len(history)
    last_frame = {tid: index for index, (tid, _) in enumerate(history)}
    final = {tid: session for tid, session in history}
    # every byte of each frame's header and TransactionId, of its last 8 bytes, and every
    # 7th byte elsewhere: ~2000 of the ~7200 positions, each one a reopening of the store
    dense = {offset + i for offset in frames for i in range(8 + 18 + 32)}
    dense |= {offset - i for offset in frames[1:] + [len(original)] for i in range(1, 9)}
    positions = sorted(dense | set(range(0, len(original), 7)))
    logging.getLogger("smdpp.store.journal").setLevel(logging.ERROR)
    try:
        for position in positions:
            damaged = bytearray(original)
            damaged[position] ^= 0xFF
            path.write_bytes(bytes(damaged))
            for extra in _segments(tmp_path):
                if extra != name:  # the segment each opening begins
                    (tmp_path / "sessions" / extra).unlink()
            hit = max(i for i, offset in enumerate(frames) if offset <= position)
            store = JournalStore(tmp_path)
            try:
                for tid, session in final.items():
                    got = store.get(tid)
                    where = f"byte {position} (frame {hit}), {tid}"
                    if session is None or last_frame[tid] == hit:
                        assert got is None, where
                    elif last_frame[tid] > hit or session.state.finished:
                        assert got is not None and got.to_record() == session.to_record(), where
                    else:  # in progress before the damage: in doubt
                        assert got is None, where
            finally:
                store.close()
    finally:
        logging.getLogger("smdpp.store.journal").setLevel(logging.NOTSET)


def test_a_planted_record_is_dropped_not_run(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A frame with a valid CRC whose record pickles a callable: refused, the rest loads."""
    store = JournalStore(tmp_path)
    store.put(_session(1))
    store.close()
    [name] = _segments(tmp_path)
    tid = _session(2).transaction_id.encode()
    body = struct.pack(">BdB", 0, FUTURE, len(tid)) + tid + b"cos\nsystem\n(S'true'\ntR."
    with (tmp_path / "sessions" / name).open("ab") as f:
        f.write(struct.pack(">II", len(body), zlib.crc32(body)) + body)
    with caplog.at_level(logging.WARNING):
        store = JournalStore(tmp_path)
    assert store.get(_session(1).transaction_id) is not None
    assert store.get(_session(2).transaction_id) is None
    assert f"transactionId={_session(2).transaction_id} unreadable" in caplog.text
    store.close()


def test_the_one_time_key_never_reaches_the_disk_in_clear(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    store.put(_session(1))
    store.close()
    disk = b"".join(p.read_bytes() for p in (tmp_path / "sessions").iterdir())
    assert b"smdp.example" in disk and SECRET not in disk


def test_files_are_private(tmp_path: Path) -> None:
    store = JournalStore(tmp_path)
    store.put(_session(1))
    folder = tmp_path / "sessions"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (folder / "lock").read_text() == f"{os.getpid()}\n"
    store.close()


def test_a_failed_write_is_undone_without_a_new_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A short or failed write (a full disk) is an error, cut back to the last whole frame;
    no file is created per failure, and writing resumes when space returns."""
    store = JournalStore(tmp_path)
    store.put(_session(1))
    real_write = os.write
    monkeypatch.setattr(journal.os, "write", lambda fd, data: real_write(fd, data[:5]))
    with pytest.raises(OSError, match="only 5 of"):
        store.put(_session(2))
    monkeypatch.setattr(journal.os, "write", real_write)
    assert store.get(_session(2).transaction_id) is None  # not kept: it is not durable
    store.put(_session(3))

    def no_space(fd: int, data: bytes) -> int:
        real_write(fd, data[:7])  # part of it reached the file before the error
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(journal.os, "write", no_space)
    for _ in range(18):
        with pytest.raises(OSError, match="No space"):
            store.put(_session(4))
    monkeypatch.setattr(journal.os, "write", real_write)
    store.put(_session(5))
    assert len(_segments(tmp_path)) == 1
    store.close()
    store = JournalStore(tmp_path)
    for n, kept in ((1, True), (2, False), (3, True), (4, False), (5, True)):
        assert (store.get(_session(n).transaction_id) is not None) is kept, n
    store.close()


def test_a_write_that_cannot_be_undone_moves_on_to_a_new_segment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JournalStore(tmp_path)
    store.put(_session(1))
    real_write = os.write

    def fail(*args: object) -> int:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(journal.os, "write", lambda fd, data: real_write(fd, data[:5]))
    monkeypatch.setattr(journal.os, "ftruncate", fail)
    with pytest.raises(OSError, match="only 5 of"):
        store.put(_session(2))
    monkeypatch.undo()
    store.put(_session(3))
    assert len(_segments(tmp_path)) == 2  # never after half a frame
    store.close()
