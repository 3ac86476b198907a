"""Session stores: records survive a reopen, secrets never reach the disk in clear,
put_if is atomic across processes, the sqlite shelve stays O(log n).

Redis and PostgreSQL run the same put_if checks in ``tests/e2e/test_scale.py``,
beside the fixtures that start those servers.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import stat
import time
from pathlib import Path

import pytest

from smdpp.rsp.session import Session, SessionState
from smdpp.store import (JournalStore, MemoryStore, ShelveStore, SessionStore, default_url,
                         is_shared, open_store, redact_url)
from smdpp.store.record import RecordCodec
from smdpp.store.sealer import Sealer

SECRET = bytes(range(7, 7 + 67))  # stands for a PKCS#8 one-time key


def _session(tid: str = "00112233445566778899AABBCCDDEEFF", expires: float = 1000.0) -> Session:
    return Session(transaction_id=tid, state=SessionState.BPP_DELIVERED, created=0.0,
                   expires=expires, smdp_address="smdp.example", euicc_challenge=b"\x01" * 16,
                   server_challenge=b"\x02" * 16, ci_pkid=b"\x03" * 20, eid="8" * 32,
                   euicc_otpk=b"\x04" * 65, smdp_ot_key=SECRET)


KINDS = ("memory", "shelve", "journal")


def _store(kind: str, folder: Path) -> SessionStore:
    return {"memory": lambda _: MemoryStore(), "shelve": ShelveStore,
            "journal": JournalStore}[kind](folder)


def _disk_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_shelve_round_trip_across_reopen(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    store.put(_session())
    store.close()
    again = ShelveStore(tmp_path)
    loaded = again.get("00112233445566778899AABBCCDDEEFF")
    assert loaded == _session()
    assert loaded is not None and loaded.state is SessionState.BPP_DELIVERED
    again.close()


def test_shelve_never_writes_the_one_time_key_in_clear(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    store.put(_session())
    store.close()
    disk = _disk_bytes(tmp_path)
    assert b"smdp.example" in disk  # the record itself is there ...
    assert SECRET not in disk  # ... its secret is not


def test_shelve_files_are_private(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    store.put(_session())
    store.close()
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_sealed_value_cannot_move_to_another_session(tmp_path: Path) -> None:
    sealer = Sealer.from_file(tmp_path / "k")
    sealed = sealer.seal(SECRET, b"A")
    assert sealer.unseal(sealed, b"A") == SECRET
    with pytest.raises(ValueError):
        sealer.unseal(sealed, b"B")
    with pytest.raises(ValueError):
        sealer.unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"A")


def test_shelve_with_another_key_drops_the_secret_not_the_session(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    store.put(_session())
    store.close()
    os.remove(tmp_path / "session-store.key")
    again = ShelveStore(tmp_path)  # creates a new key: the old sealed value is unreadable
    loaded = again.get("00112233445566778899AABBCCDDEEFF")
    assert loaded is not None and loaded.smdp_ot_key is None and loaded.eid == "8" * 32
    again.close()


@pytest.mark.parametrize("kind", KINDS)
def test_expire_and_delete(tmp_path: Path, kind: str) -> None:
    store = _store(kind, tmp_path)
    store.put(_session("01", expires=10.0))
    store.put(_session("02", expires=20.0))
    assert store.expire(15.0) == 1
    assert store.get("01") is None and store.get("02") is not None
    store.delete("02")
    store.delete("02")
    assert store.get("02") is None
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_count_by_state_counts_unexpired_sessions(tmp_path: Path, kind: str) -> None:
    """What the smdpp_sessions{state} gauge of /metrics reads at each scrape."""
    store = _store(kind, tmp_path)
    store.put(_session("01", expires=10.0))
    store.put(_session("02", expires=20.0))
    done = _session("03", expires=30.0)
    done.finish(SessionState.DONE, {"success": True})
    store.put(done)
    assert store.count_by_state(5.0) == {"bpp_delivered": 2, "done": 1}
    assert store.count_by_state(15.0) == {"bpp_delivered": 1, "done": 1}
    assert store.count_by_state(40.0) == {}
    store.close()


def test_memory_store_hands_out_copies() -> None:
    store = MemoryStore()
    store.put(_session())
    loaded = store.get("00112233445566778899AABBCCDDEEFF")
    assert loaded is not None
    loaded.state = SessionState.DONE
    again = store.get("00112233445566778899AABBCCDDEEFF")
    assert again is not None and again.state is SessionState.BPP_DELIVERED


def test_finish_forgets_keys_and_keeps_the_result() -> None:
    session = _session()
    session.finish(SessionState.DONE, {"success": True})
    assert session.smdp_ot_key is None and session.euicc_otpk is None
    assert session.result == {"success": True} and session.state.finished


# -- put_if -----------------------------------------------------------------


def _initiated(tid: str) -> Session:
    session = _session(tid, expires=time.time() + 600)
    session.state = SessionState.INITIATED
    return session


@pytest.mark.parametrize("kind", KINDS)
def test_put_if_writes_only_from_the_expected_state(tmp_path: Path, kind: str) -> None:
    store = _store(kind, tmp_path)
    session = _initiated("0A")
    assert store.put_if(session, SessionState.INITIATED) is False  # no record yet
    assert store.get("0A") is None
    assert store.put_if(session, None) is True
    assert store.put_if(session, None) is False  # exists now
    session.state = SessionState.AUTHENTICATED
    session.eid = "1" * 32
    assert store.put_if(session, SessionState.AUTHENTICATED) is False  # stored: initiated
    loaded = store.get("0A")
    assert loaded is not None and loaded.state is SessionState.INITIATED and loaded.eid == "8" * 32
    assert store.put_if(session, SessionState.INITIATED) is True
    loaded = store.get("0A")
    assert loaded is not None and loaded.state is SessionState.AUTHENTICATED
    assert loaded.eid == "1" * 32 and loaded.smdp_ot_key == SECRET
    assert store.put_if(session, SessionState.INITIATED) is False  # the replay loses
    store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_put_if_writes_a_changed_expiry(tmp_path: Path, kind: str) -> None:
    """The shelve's usual update leaves ``expires`` alone; a changed one must still be written."""
    store = _store(kind, tmp_path)
    session = _initiated("0B")
    assert store.put_if(session, None) is True
    session.state = SessionState.AUTHENTICATED
    session.expires = 50.0
    assert store.put_if(session, SessionState.BPP_DELIVERED) is False  # wrong state: nothing
    loaded = store.get("0B")
    assert loaded is not None and loaded.state is SessionState.INITIATED
    assert loaded.expires > 50.0
    assert store.put_if(session, SessionState.INITIATED) is True
    loaded = store.get("0B")
    assert loaded is not None and loaded.expires == 50.0
    assert store.expire(60.0) == 1 and store.get("0B") is None  # the expires index saw it
    store.close()


def _race(data_dir: Path, tids: list[str], start: float, out: "multiprocessing.Queue") -> None:
    """One of two processes trying to move every session from initiated to authenticated."""
    store = ShelveStore(data_dir)
    while time.time() < start:  # both begin together
        time.sleep(0.001)
    won = []
    for tid in tids:
        session = _initiated(tid)
        session.state = SessionState.AUTHENTICATED
        session.eid = f"{os.getpid():032d}"
        if store.put_if(session, SessionState.INITIATED):
            won.append(tid)
    store.close()
    out.put(won)


def test_shelve_put_if_is_atomic_across_processes(tmp_path: Path) -> None:
    """Two processes race for the same 300 sessions: each is won exactly once."""
    store = ShelveStore(tmp_path)
    tids = [f"{i:032X}" for i in range(300)]
    for tid in tids:
        store.put(_initiated(tid))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 0.3
    procs = [ctx.Process(target=_race, args=(tmp_path, tids, start, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sorted(results[0] + results[1]) == tids  # no session won twice, none lost
    for tid in tids:
        loaded = store.get(tid)
        assert loaded is not None and loaded.state is SessionState.AUTHENTICATED
    store.close()


# -- the sqlite shelve ------------------------------------------------------


def test_shelve_is_one_sqlite_file_in_wal_mode(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    store.put(_session())
    assert (tmp_path / "sessions.sqlite-wal").exists()  # WAL: readers never block the writer
    for path in tmp_path.iterdir():  # the -wal and -shm files too, while in use
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    store.close()
    assert (tmp_path / "sessions.sqlite").read_bytes()[:16] == b"SQLite format 3\0"


def test_shelve_is_shared_by_two_connections(tmp_path: Path) -> None:
    first, second = ShelveStore(tmp_path), ShelveStore(tmp_path)
    first.put(_session())
    assert second.get("00112233445566778899AABBCCDDEEFF") == _session()
    second.delete("00112233445566778899AABBCCDDEEFF")
    assert first.get("00112233445566778899AABBCCDDEEFF") is None
    first.close()
    second.close()


def _statements(store: ShelveStore) -> list[str]:
    """The SQL statements the store's connection runs from now on."""
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # noqa: SLF001 - observing the connection
    return seen


def test_shelve_answers_its_own_last_write_without_reading_the_file(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    session = _initiated("0B")
    assert store.put_if(session, None)
    seen = _statements(store)
    loaded = store.get("0B")
    assert loaded == session and seen == ["PRAGMA data_version"]
    loaded.state = SessionState.DONE  # the caller's copy: what is kept does not change
    loaded.result["x"] = 1
    again = store.get("0B")
    assert again == session and again.result == {}
    store.close()


def test_shelve_reads_the_file_once_another_process_has_written(tmp_path: Path) -> None:
    """A session moved on by another worker is read from the file, whatever this one kept."""
    mine, other = ShelveStore(tmp_path), ShelveStore(tmp_path)
    session = _initiated("0C")
    assert mine.put_if(session, None)
    assert mine.get("0C").state is SessionState.INITIATED  # kept, and current
    moved = other.get("0C")
    moved.state = SessionState.AUTHENTICATED
    assert other.put_if(moved, SessionState.INITIATED)
    seen = _statements(mine)
    assert mine.get("0C").state is SessionState.AUTHENTICATED
    assert any(s.startswith("SELECT record") for s in seen)
    # and the compare-and-set of the stale copy fails, as it must
    assert mine.put_if(session, SessionState.INITIATED) is False
    other.delete("0C")
    assert mine.get("0C") is None
    mine.close()
    other.close()


def test_shelve_forgets_what_failed_expired_or_was_deleted(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    now = time.time()
    for tid, expires in (("01", now - 1), ("02", now + 600), ("03", now + 600)):
        session = _initiated(tid)
        session.expires = expires
        assert store.put_if(session, None)
    assert store.expire(now) == 1
    store.delete("02")
    late = _initiated("03")
    late.state = SessionState.AUTHENTICATED
    assert store.put_if(late, SessionState.AUTHENTICATED) is False  # stored is INITIATED
    seen = _statements(store)
    assert store.get("01") is None and store.get("02") is None
    assert store.get("03").state is SessionState.INITIATED
    assert sum(s.startswith("SELECT record") for s in seen) == 3
    store.close()


def test_shelve_keeps_a_bounded_number_of_records(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from smdpp.store import shelf
    monkeypatch.setattr(shelf, "MAX_RECENT", 3)
    store = ShelveStore(tmp_path)
    for n in range(5):
        assert store.put_if(_initiated(f"{n:02X}"), None)
    assert list(store._recent) == ["02", "03", "04"]  # noqa: SLF001 - the bound itself
    seen = _statements(store)
    assert store.get("00") is not None and store.get("04") is not None
    assert sum(s.startswith("SELECT record") for s in seen) == 1  # only the evicted one
    store.close()


def test_shelve_never_writes_the_kept_secret_in_clear(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    session = _session(expires=time.time() + 600)
    store.put(session)
    assert store.get(session.transaction_id).smdp_ot_key == SECRET  # kept in memory
    store.close()
    assert SECRET not in _disk_bytes(tmp_path)


def test_shelve_expire_uses_the_expires_index(tmp_path: Path) -> None:
    store = ShelveStore(tmp_path)
    plan = " ".join(row[-1] for row in store._db.execute(  # noqa: SLF001 - the query plan
        "EXPLAIN QUERY PLAN DELETE FROM sessions WHERE expires < ?", (0.0,)))
    assert "USING COVERING INDEX sessions_expires" in plan or \
        "USING INDEX sessions_expires" in plan, plan
    store.close()


def test_shelve_put_cost_stays_flat_up_to_20000_sessions(tmp_path: Path) -> None:
    """No O(n) step per put: the last 1,000 of 20,000 puts cost about what the first did.

    A timing assertion, but of a complexity class: an O(n) put (dbm.dumb's
    index rewrite) makes the last thousand about 20 times slower than the first.
    The fastest of three neighbouring chunks is compared on each side, to keep
    a burst of load on the machine from deciding the result.
    """
    store = ShelveStore(tmp_path)
    chunk, chunks = 1000, 20
    times = []
    n = 0
    for _ in range(chunks):
        started = time.perf_counter()
        for _ in range(chunk):
            store.put(_session(f"{n:032X}", expires=float(n)))
            n += 1
        times.append(time.perf_counter() - started)
    assert len(store) == chunk * chunks
    first, last = min(times[:3]), min(times[-3:])
    assert last < 3 * first, f"first 1,000 puts {first:.3f} s, last 1,000 {last:.3f} s"
    assert store.expire(10_000.0) == 10_000 and len(store) == 10_000
    store.close()


# -- the stored form ----------------------------------------------------------


def test_record_refuses_pickled_code(tmp_path: Path) -> None:
    """A record planted in a shared store can fail to load, never run code."""
    codec = RecordCodec(Sealer.from_file(tmp_path / "k"))
    assert codec.loads("00112233445566778899AABBCCDDEEFF", codec.dumps(_session())) == _session()
    planted = pickle.dumps({"transaction_id": os.system})
    with pytest.raises(pickle.UnpicklingError):
        codec.loads("00", planted)


def test_sealer_key_file_is_created_once(tmp_path: Path) -> None:
    one = Sealer.from_file(tmp_path / "k")
    two = Sealer.from_file(tmp_path / "k")
    assert two.unseal(one.seal(SECRET, b"A"), b"A") == SECRET
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left


# -- open_store ---------------------------------------------------------------


def test_open_store_by_url(tmp_path: Path) -> None:
    shelve = open_store("shelve:", tmp_path)
    assert isinstance(shelve, ShelveStore)
    shelve.close()
    journal = open_store("journal:", tmp_path)
    assert isinstance(journal, JournalStore)
    journal.close()
    assert isinstance(open_store("memory:", tmp_path), MemoryStore)
    assert is_shared("shelve:") and is_shared("redis://h/0") and not is_shared("memory:")
    assert not is_shared("journal:")  # one process per folder: --workers needs shelve: or more
    assert default_url(1) == "journal:" and default_url(2) == "shelve:"
    for bad in ("shelve:/elsewhere", "journal:x", "mysql://h/db", "no-scheme"):
        with pytest.raises(ValueError):
            open_store(bad, tmp_path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_open_store_names_an_unreachable_server(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    pytest.importorskip("psycopg")
    port = _free_port()
    with pytest.raises(ValueError, match="Redis"):
        open_store(f"redis://127.0.0.1:{port}/0", tmp_path)
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_store(f"postgresql://smdpp@127.0.0.1:{port}/smdpp?connect_timeout=5", tmp_path)


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://smdpp:s3cret@db.example:5433/rsp") == \
        "postgresql://smdpp:***@db.example:5433/rsp"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
