"""Session stores: records survive a reopen, secrets never reach the disk in clear."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from smdpp.rsp.session import Session, SessionState
from smdpp.store import MemoryStore, ShelveStore
from smdpp.store.sealer import Sealer

SECRET = bytes(range(7, 7 + 67))  # stands for a PKCS#8 one-time key


def _session(tid: str = "00112233445566778899AABBCCDDEEFF", expires: float = 1000.0) -> Session:
    return Session(transaction_id=tid, state=SessionState.BPP_DELIVERED, created=0.0,
                   expires=expires, smdp_address="smdp.example", euicc_challenge=b"\x01" * 16,
                   server_challenge=b"\x02" * 16, ci_pkid=b"\x03" * 20, eid="8" * 32,
                   euicc_otpk=b"\x04" * 65, smdp_ot_key=SECRET)


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


@pytest.mark.parametrize("make", [MemoryStore, None])
def test_expire_and_delete(tmp_path: Path, make) -> None:
    store = make() if make else ShelveStore(tmp_path)
    store.put(_session("01", expires=10.0))
    store.put(_session("02", expires=20.0))
    assert store.expire(15.0) == 1
    assert store.get("01") is None and store.get("02") is not None
    store.delete("02")
    store.delete("02")
    assert store.get("02") is None
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
