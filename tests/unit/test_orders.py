"""Orders (SGP.22 ES2+): the profile state table, identifiers, the sqlite order store
(compare-and-set across two racing processes), the pool folder and the ES2+ core."""
from __future__ import annotations

import hashlib
import multiprocessing
import re
from pathlib import Path

import pytest

from smdpp.errors import SgpError
from smdpp.orders import identifiers
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.pool import load_pool
from smdpp.orders.states import TRANSITIONS, Event, InvalidTransition, ProfileState, next_state
from smdpp.orders.store import OrderStore
from tests.orders_fixtures import pool_store, PROFILE_TYPE, order_eid, pool_iccid, write_pool

S = ProfileState


# -- the state table ------------------------------------------------------------

def test_state_table_happy_path() -> None:
    state = S.AVAILABLE
    for event in (Event.DOWNLOAD_ORDER, Event.CONFIRM, Event.RELEASE, Event.BPP_DOWNLOADED,
                  Event.INSTALLED):
        state = next_state(state, event)
    assert state is S.INSTALLED
    assert next_state(S.AVAILABLE, Event.DOWNLOAD_ORDER_EID) is S.LINKED
    assert next_state(S.LINKED, Event.CONFIRM_RELEASE) is S.RELEASED


def test_state_table_refuses_what_sgp22_does_not_allow() -> None:
    with pytest.raises(InvalidTransition):
        next_state(S.AVAILABLE, Event.RELEASE)
    with pytest.raises(InvalidTransition):
        next_state(S.INSTALLED, Event.BPP_DOWNLOADED)
    # a downloaded profile may be on an eUICC: it never returns to the pool
    with pytest.raises(InvalidTransition):
        next_state(S.DOWNLOADED, Event.CANCEL_AVAILABLE)
    assert next_state(S.DOWNLOADED, Event.CANCEL_UNAVAILABLE) is S.UNAVAILABLE
    # nothing leaves Installed or Unavailable
    for event in Event:
        assert S.INSTALLED not in TRANSITIONS[event]
        assert S.UNAVAILABLE not in TRANSITIONS[event]


# -- identifiers ----------------------------------------------------------------

def test_iccid_with_and_without_padding() -> None:
    assert identifiers.normalise_iccid("8999000000000000013") == "8999000000000000013"
    assert identifiers.normalise_iccid("8999000000000000013F") == "8999000000000000013"
    assert identifiers.normalise_iccid("8999000000000000013f") == "8999000000000000013"
    assert identifiers.normalise_iccid("89990000000000000134") == "89990000000000000134"
    for bad in ("899900000000000001", "8999000000000000013FF", "89990000000000000F13", 12, None,
                "８９９９０００００００００００００１３"):
        with pytest.raises(ValueError):
            identifiers.normalise_iccid(bad)
    assert identifiers.padded_iccid("8999000000000000013") == "8999000000000000013F"


def test_matching_id_is_long_random_and_lpa_safe() -> None:
    ids = {identifiers.new_matching_id() for _ in range(200)}
    assert len(ids) == 200
    for mid in ids:
        assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){5}", mid)  # 24 base32 chars = 120 bits
    assert identifiers.MATCHING_ID_BITS >= 80


def test_hash_cc_known_answer() -> None:
    # SGP.22 3.1.3: hashCc = SHA-256(SHA-256(CC) | TransactionID)
    cc_hash = identifiers.confirmation_code_hash("1234")
    assert cc_hash == bytes.fromhex(
        "03ac674216f3e15c761ee1a5e255f067953623c8b388b4459e13f978d7c846f4")
    tid = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    expected = hashlib.sha256(cc_hash + tid).digest()
    assert identifiers.hash_cc_matches(cc_hash, tid, expected)
    assert not identifiers.hash_cc_matches(cc_hash, tid[:-1] + b"\x00", expected)
    assert not identifiers.hash_cc_matches(identifiers.confirmation_code_hash("1235"), tid,
                                           expected)


# -- the store and the pool ------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> OrderStore:
    s = pool_store(tmp_path, range(1, 4))
    yield s
    s.close()


def test_pool_is_read_once_and_upps_are_sealed(tmp_path: Path, store: OrderStore) -> None:
    assert [r.state for r in store.profiles()] == [S.AVAILABLE] * 3
    assert store.counts() == {PROFILE_TYPE: {"Available": 3}}
    # reading again adds nothing; a damaged file is skipped by name
    (tmp_path / "pool" / "broken.der").write_bytes(b"\x30\x03\x01")
    scan = load_pool(tmp_path / "pool", store)
    assert (scan.added, scan.known, scan.skipped) == (0, 3, 1)
    upp = (tmp_path / "pool" / "p0001.der").read_bytes()
    assert store.upp(pool_iccid(1)) == upp
    raw = (tmp_path / "orders.sqlite").read_bytes()
    assert upp[-200:] not in raw  # the package (Ki, OPc) is not in the file in clear


def test_update_is_compare_and_set(store: OrderStore) -> None:
    record = store.get(pool_iccid(1))
    assert record is not None
    assert store.update(record, S.ALLOCATED, operator="op")
    assert not store.update(record, S.LINKED, operator="other")  # read before the change
    again = store.get(pool_iccid(1))
    assert again is not None and again.state is S.ALLOCATED and again.operator == "op"


def _race(folder: str, url: str | None, barrier, results) -> None:  # in a child process
    store = OrderStore(Path(folder), url=url)
    barrier.wait()
    won = 0
    for serial in range(1, 4):
        record = store.get(pool_iccid(serial))
        if record is not None and record.state is S.AVAILABLE:
            won += store.update(record, S.RELEASED, operator=str(multiprocessing.current_process().pid))
    taken = store.allocate(PROFILE_TYPE, None, S.ALLOCATED, operator="x")
    results.put((won, taken.iccid if taken else None))
    store.close()


def test_two_processes_never_take_one_profile(tmp_path: Path) -> None:
    race_two_processes(tmp_path, None)


def race_two_processes(tmp_path: Path, url: str | None) -> None:
    """Two processes race for profiles 1-3 (update) and for any pool profile (allocate)."""
    store = pool_store(tmp_path, range(1, 7), url)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), url, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    # each of profiles 1-3 went to exactly one process
    assert sum(won for won, _ in got) == 3
    owners = {store.get(pool_iccid(s)).operator for s in range(1, 4)}  # type: ignore[union-attr]
    assert owners <= {str(p.pid) for p in procs}
    # allocate() gave each process another profile of the pool
    taken = [iccid for _, iccid in got]
    assert None not in taken and len(set(taken)) == 2
    store.close()


def test_function_call_identifiers_are_single_use(store: OrderStore) -> None:
    assert store.remember_call("op", "1")
    assert not store.remember_call("op", "1")
    assert store.remember_call("other", "1")


# -- the ES2+ core ------------------------------------------------------------------

class Caller:
    """Calls the core like an ES2+ client, a new functionCallIdentifier each time."""

    def __init__(self, core: Es2pCore, operator: str = "op1") -> None:
        self.core, self.operator, self.count = core, operator, 0

    def __call__(self, function: str, requester: str | None = None, **fields):
        self.count += 1
        header = {"functionRequesterIdentifier": requester or self.operator,
                  "functionCallIdentifier": f"call-{self.count}"}
        return self.core.call(function, self.operator, {"header": header, **fields})


def codes(excinfo: pytest.ExceptionInfo) -> tuple[str, str]:
    return excinfo.value.subject_code, excinfo.value.reason_code


@pytest.fixture
def es2(store: OrderStore) -> Caller:
    return Caller(Es2pCore(store, "testsmdpplus1.example.com"))


def test_es2p_order_confirm_release(es2: Caller, store: OrderStore) -> None:
    iccid = es2("downloadOrder", profileType=PROFILE_TYPE)["iccid"]
    assert store.get(iccid).state is S.ALLOCATED  # type: ignore[union-attr]
    answer = es2("confirmOrder", iccid=iccid + "F", releaseFlag=False, confirmationCode="1234")
    assert re.fullmatch(r"[A-Z2-7-]{29}", answer["matchingId"])
    assert answer["smdpAddress"] == "testsmdpplus1.example.com"
    record = store.get(iccid)
    assert record is not None and record.state is S.CONFIRMED
    assert record.cc_hash == hashlib.sha256(b"1234").digest()
    es2("releaseProfile", iccid=iccid)
    assert store.by_matching_id(answer["matchingId"]).state is S.RELEASED  # type: ignore[union-attr]
    with pytest.raises(SgpError) as exc:
        es2("releaseProfile", iccid=iccid)
    assert codes(exc) == ("8.2.1", "3.5")


def test_es2p_eid_orders_and_default_smdp(es2: Caller, store: OrderStore) -> None:
    eid = order_eid(5)
    iccid = pool_iccid(2)
    assert es2("downloadOrder", iccid=iccid + "F", eid=eid) == {"iccid": iccid}
    assert store.get(iccid).state is S.LINKED  # type: ignore[union-attr]
    with pytest.raises(SgpError) as exc:
        es2("confirmOrder", iccid=iccid, eid=order_eid(6), releaseFlag=True)
    assert codes(exc) == ("8.1.1", "3.10")
    answer = es2("confirmOrder", iccid=iccid, matchingId="", releaseFlag=True)
    assert answer == {"matchingId": "", "eid": eid, "smdpAddress": "testsmdpplus1.example.com"}
    assert store.released_for_eid(eid).iccid == iccid  # type: ignore[union-attr]


def test_es2p_refusals_change_nothing(es2: Caller, store: OrderStore) -> None:
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", profileType="no such type")
    assert codes(exc) == ("8.2.5", "3.9")
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", iccid="8999000000000009999")
    assert codes(exc) == ("8.2.1", "3.9")
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", iccid="12ab")
    assert codes(exc) == ("1.2", "2.1")
    iccid = es2("downloadOrder", iccid=pool_iccid(1))["iccid"]
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", iccid=pool_iccid(1))
    assert codes(exc) == ("8.2.1", "3.3")
    # the requester identifier must be the certificate's operator
    with pytest.raises(SgpError) as exc:
        es2("cancelOrder", requester="op2", iccid=iccid, finalProfileStatusIndicator="Available")
    assert codes(exc) == ("1.1", "1.2")
    # another operator cannot touch op1's order
    other = Caller(es2.core, "op2")
    with pytest.raises(SgpError) as exc:
        other("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")
    assert codes(exc) == ("8.2.1", "1.2")
    assert store.get(iccid).state is S.ALLOCATED  # type: ignore[union-attr]
    # a replayed functionCallIdentifier is refused before anything happens
    body = {"header": {"functionRequesterIdentifier": "op1", "functionCallIdentifier": "same"},
            "profileType": PROFILE_TYPE}
    es2.core.call("downloadOrder", "op1", body)
    before = store.counts()
    with pytest.raises(SgpError) as exc:
        es2.core.call("downloadOrder", "op1", body)
    assert codes(exc) == ("1.1", "3.3")
    assert store.counts() == before
    # pool exhausted after the third
    es2("downloadOrder", profileType=PROFILE_TYPE)
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", profileType=PROFILE_TYPE)
    assert codes(exc) == ("8.2.5", "3.7")


def test_es2p_matching_id_in_use_and_cancel(es2: Caller, store: OrderStore) -> None:
    a = es2("downloadOrder", iccid=pool_iccid(1))["iccid"]
    b = es2("downloadOrder", iccid=pool_iccid(2))["iccid"]
    es2("confirmOrder", iccid=a, matchingId="LAB-1", releaseFlag=True)
    with pytest.raises(SgpError) as exc:
        es2("confirmOrder", iccid=b, matchingId="LAB-1", releaseFlag=True)
    assert codes(exc) == ("8.2.6", "3.3")
    with pytest.raises(SgpError) as exc:
        es2("cancelOrder", iccid=a, matchingId="LAB-2", finalProfileStatusIndicator="Available")
    assert codes(exc) == ("8.2.6", "3.10")
    es2("cancelOrder", iccid=a, matchingId="LAB-1", finalProfileStatusIndicator="Available")
    record = store.get(a)
    assert record is not None and record.state is S.AVAILABLE
    assert record.matching_id is None and record.operator is None
    es2("cancelOrder", iccid=b, finalProfileStatusIndicator="Unavailable")
    assert store.get(b).state is S.UNAVAILABLE  # type: ignore[union-attr]
    with pytest.raises(SgpError) as exc:
        es2("cancelOrder", iccid=b, finalProfileStatusIndicator="Available")
    assert codes(exc) == ("8.2.1", "3.5")


def test_an_empty_pool_gets_generated_test_profiles(tmp_path: Path) -> None:
    from smdpp.orders.pool import TEST_PROFILE_TYPE, ensure_test_pool, pool_test_iccid
    store = OrderStore(tmp_path)
    assert ensure_test_pool(tmp_path / "pool", store, count=3) == 3
    assert ensure_test_pool(tmp_path / "pool", store, count=3) == 0  # not again
    load_pool(tmp_path / "pool", store)
    assert store.counts() == {TEST_PROFILE_TYPE: {"Available": 3}}
    assert {r.iccid for r in store.profiles()} == {pool_test_iccid(n) for n in (1, 2, 3)}
    for path in (tmp_path / "pool").iterdir():  # files removed: the store keeps the packages
        path.unlink()
    assert ensure_test_pool(tmp_path / "pool", store, count=3) == 0
    store.close()
