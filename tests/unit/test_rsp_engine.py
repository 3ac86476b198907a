"""RspEngine driven directly: memory store, a fake clock, the software eUICC (SGP.22 3.1.3, 5.6).

No HTTP and no server process: :class:`bench.engine.EngineClient` hands each
ES9+ body to the engine method behind it (the JSON field mapping of
:class:`~smdpp.http.es9p.Es9pApi`), and :class:`tests.e2e.flow.Flow` plays
the LPA with a :class:`~smdpp.euicc.card.SoftEuicc`, which verifies every
answer as a real eUICC would.  The tests walk every transition of the state
table (:mod:`smdpp.rsp.states`) and every refusal of it, and move time with
the fake clock instead of sleeping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest
from cryptography import x509

from bench.engine import EngineClient
from smdpp.asn1 import rsp
from smdpp.asn1.tlv import parse_single
from smdpp.es8p import parse_initialise_secure_channel
from smdpp.euicc.card import SoftEuicc
from smdpp.pki.issue import ensure_test_pki
from smdpp.pki.store import CertificateStore
from smdpp.profiles.inventory import ProfileInventory, ensure_test_profile
from smdpp.rsp.engine import EngineConfig, RspEngine
from smdpp.rsp.states import (
    ALLOWED,
    END_STATES,
    TRANSITIONS,
    Es9Function,
    SessionState,
)
from smdpp.store import MemoryStore
from tests.e2e.flow import ADDRESS, Flow, assert_failed, assert_ok, rebuild_authenticate_response

F, S = Es9Function, SessionState
LIFETIME = 600.0
START = 1_800_000_000.0  # 2027-01-15: inside the test PKI's validity


@dataclass
class FakeClock:
    """The engine's clock: seconds since the epoch, moved by the test."""

    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Material:
    certs: CertificateStore
    profiles: ProfileInventory
    euicc_dir: Path
    matching_id: str


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    data = tmp_path_factory.mktemp("engine")
    ensure_test_pki(data / "certs", data / "euicc", hostname=ADDRESS)
    created = ensure_test_profile(data / "upp")
    assert created is not None
    return Material(CertificateStore.load(data / "certs", data / "crl"),
                    ProfileInventory.load(data / "upp"), data / "euicc", created.stem)


@dataclass
class Rig:
    """One engine over a memory store with a fake clock, and a way to start sessions."""

    engine: RspEngine
    clock: FakeClock
    material: Material
    client: EngineClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = EngineClient(self.engine)

    def flow(self) -> Flow:
        return Flow(self.client, SoftEuicc.from_identity_dir(self.material.euicc_dir),  # type: ignore[arg-type]
                    matching_id=self.material.matching_id)

    def state(self, flow: Flow) -> SessionState:
        session = self.engine.store.get(flow.tid)
        assert session is not None
        return session.state

    def force_state(self, flow: Flow, state: SessionState) -> None:
        """Put the stored session into ``state`` (to try a function the table refuses there)."""
        session = self.engine.store.get(flow.tid)
        assert session is not None
        session.state = state
        self.engine.store.put(session)


def _rig(material: Material, lifetime: float = LIFETIME, use_ppk: bool = True) -> Rig:
    clock = FakeClock()
    engine = RspEngine(material.certs, material.profiles, MemoryStore(),
                       EngineConfig(hostname=ADDRESS, session_lifetime=lifetime, use_ppk=use_ppk),
                       clock=clock)
    return Rig(engine, clock, material)


@pytest.fixture
def rig(material: Material) -> Rig:
    return _rig(material)


# -- the table itself ------------------------------------------------------------------


# SGP.22 5.6.2-5.6.5: the states each function may run in, written out independently
# of the table so that a change to the table shows up here
EXPECTED_ALLOWED = {
    F.INITIATE_AUTHENTICATION: set(),
    F.AUTHENTICATE_CLIENT: {S.INITIATED},
    F.GET_BOUND_PROFILE_PACKAGE: {S.AUTHENTICATED, S.BPP_DELIVERED},
    F.HANDLE_NOTIFICATION: {S.BPP_DELIVERED, S.DONE},
    F.CANCEL_SESSION: {S.AUTHENTICATED, S.BPP_DELIVERED},
}


def test_the_table_allows_what_sgp22_allows() -> None:
    assert {f: set(states) for f, states in ALLOWED.items()} == EXPECTED_ALLOWED


def test_the_table_names_every_function_and_state() -> None:
    assert {f for f, _ in TRANSITIONS} == set(Es9Function)
    reached = set(TRANSITIONS.values()) | {S.EXPIRED}
    assert reached == set(SessionState)
    # an end state is left only by a repeated notification, into itself
    assert all(TRANSITIONS[(f, s)] is s for f, s in TRANSITIONS if s in END_STATES)
    assert ALLOWED[F.INITIATE_AUTHENTICATION] == frozenset()


# -- every transition -------------------------------------------------------------------


@pytest.mark.parametrize("use_ppk", [True, False], ids=["ppk", "session-keys"])
def test_a_download_walks_the_table(material: Material, use_ppk: bool) -> None:
    rig = _rig(material, use_ppk=use_ppk)
    flow = rig.flow()
    assert_ok(flow.initiate())
    assert rig.state(flow) is S.INITIATED
    assert_ok(flow.authenticate())
    assert rig.state(flow) is S.AUTHENTICATED
    assert rig.engine.caches.kept_euicc_keys() == 1
    assert_ok(flow.get_bpp())
    assert rig.state(flow) is S.BPP_DELIVERED
    first_bpp = flow.bpp
    # a retry with the same otPK.EUICC.ECKA: same otSK.DP.ECKA (SGP.22 3.1.3.2)
    assert_ok(flow.get_bpp(flow.pdr))
    assert rig.state(flow) is S.BPP_DELIVERED
    assert _smdp_otpk(flow.bpp) == _smdp_otpk(first_bpp)
    assert rig.engine.store.get(flow.tid).bpp_count == 2  # type: ignore[union-attr]
    pir = flow.install()
    assert flow.notify(pir).http_status == 204
    session = rig.engine.store.get(flow.tid)
    assert session is not None and session.state is S.DONE
    assert session.result["success"] is True
    assert session.smdp_ot_key is None and session.euicc_otpk is None  # forgotten at the end
    assert rig.engine.caches.kept_euicc_keys() == 0
    # done -> done: the LPA may send the notification again
    assert flow.notify(pir).http_status == 204
    assert rig.state(flow) is S.DONE


def test_a_new_one_time_key_of_the_euicc_gets_a_new_one_of_ours(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    assert_ok(flow.get_bpp())
    first = _smdp_otpk(flow.bpp)
    assert_ok(flow.get_bpp())  # PrepareDownload again: a new otPK.EUICC.ECKA
    assert _smdp_otpk(flow.bpp) != first
    assert rig.state(flow) is S.BPP_DELIVERED


@pytest.mark.parametrize("after", ["authenticate", "get_bpp"])
def test_cancel_session_ends_the_session(rig: Rig, after: str) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    if after == "get_bpp":
        assert_ok(flow.get_bpp())
    response = flow.card.cancel_session(bytes.fromhex(flow.tid), 1, _smdp_oid(rig))
    assert flow.cancel(response).function_status != "Failed"  # no result: nothing to return
    session = rig.engine.store.get(flow.tid)
    assert session is not None and session.state is S.CANCELLED
    assert session.result == {"cancelReason": 1}
    assert rig.engine.caches.kept_euicc_keys() == 0


def test_an_error_the_euicc_reports_in_authenticate_client_ends_the_session(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    error = rsp().encode("AuthenticateServerResponse", ("authenticateResponseError", {
        "transactionId": bytes.fromhex(flow.tid), "authenticateErrorCode": 2}))
    assert_failed(flow.authenticate(error), "8.1", "6.1")
    session = rig.engine.store.get(flow.tid)
    assert session is not None and session.state is S.CANCELLED  # FAILED
    assert session.result["error"] == "8.1/6.1"
    assert_failed(flow.authenticate(), "8.10.1", "3.9")  # nothing more in this session


def test_an_error_the_euicc_reports_in_get_bpp_ends_the_session(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    error = rsp().encode("PrepareDownloadResponse", ("downloadResponseError", {
        "transactionId": bytes.fromhex(flow.tid), "downloadErrorCode": 127}))
    assert_failed(flow.get_bpp(error), "8.1", "6.1")
    assert rig.state(flow) is S.CANCELLED
    assert rig.engine.caches.kept_euicc_keys() == 0


def test_a_profile_gone_before_get_bpp_ends_the_session(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    rig.engine.profiles = ProfileInventory([])  # the UPP was removed since authenticateClient
    assert_failed(flow.get_bpp(), "8.2.6", "3.8")
    assert rig.state(flow) is S.CANCELLED


# -- every refusal of the table -----------------------------------------------------------


def _ready(rig: Rig, function: Es9Function) -> tuple[Flow, Callable[[], object]]:
    """A session run up to where ``function`` has a valid input; the call that sends it."""
    flow = rig.flow()
    assert_ok(flow.initiate())
    if function is F.AUTHENTICATE_CLIENT:
        asr = flow.authenticate_server()
        return flow, lambda: flow.authenticate(asr)
    assert_ok(flow.authenticate())
    if function is F.GET_BOUND_PROFILE_PACKAGE:
        pdr = flow.prepare_download()
        return flow, lambda: flow.get_bpp(pdr)
    if function is F.CANCEL_SESSION:
        response = flow.card.cancel_session(bytes.fromhex(flow.tid), 0, _smdp_oid(rig))
        return flow, lambda: flow.cancel(response)
    assert_ok(flow.get_bpp())
    pir = flow.install()
    return flow, lambda: flow.notify(pir)


REFUSED = [(f, s) for f in Es9Function if f is not F.INITIATE_AUTHENTICATION
           for s in SessionState if s not in EXPECTED_ALLOWED[f]]


@pytest.mark.parametrize(("function", "state"), REFUSED,
                         ids=[f"{f.value}-in-{s.value}" for f, s in REFUSED])
def test_every_function_is_refused_outside_its_states(rig: Rig, function: Es9Function,
                                                      state: SessionState) -> None:
    flow, call = _ready(rig, function)
    rig.force_state(flow, state)
    assert_failed(call(), "8.10.1", "3.9")  # type: ignore[arg-type]
    assert rig.state(flow) is state  # a refused call changes nothing


@pytest.mark.parametrize("function", [F.AUTHENTICATE_CLIENT, F.GET_BOUND_PROFILE_PACKAGE,
                                      F.HANDLE_NOTIFICATION, F.CANCEL_SESSION])
def test_every_function_is_refused_after_expiry(rig: Rig, function: Es9Function) -> None:
    flow, call = _ready(rig, function)
    before = rig.state(flow)
    rig.clock.now += LIFETIME + 1
    assert_failed(call(), "8.10.1", "3.9")  # type: ignore[arg-type]
    session = rig.engine.store.get(flow.tid)
    assert session is not None and session.state is S.EXPIRED, before
    assert session.smdp_ot_key is None
    assert rig.engine.caches.kept_euicc_keys() == 0
    assert rig.engine.expire_sessions() == 1  # the store drops it on the next sweep
    assert rig.engine.store.get(flow.tid) is None


def test_a_session_is_alive_until_its_lifetime_has_passed(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    rig.clock.now += LIFETIME  # not yet past expires
    assert_ok(flow.authenticate(asr))
    assert rig.engine.expire_sessions() == 0


def test_a_replayed_call_is_refused(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    assert_ok(flow.authenticate(asr))
    assert_failed(flow.authenticate(asr), "8.10.1", "3.9")
    assert rig.state(flow) is S.AUTHENTICATED


def test_unknown_and_malformed_transaction_ids(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    assert_failed(flow.authenticate(asr, tid="00" * 16), "8.10.1", "3.9")
    assert_failed(flow.authenticate(asr, tid="not hex"), "8.10.1", "3.9")
    assert_failed(flow.authenticate(asr, tid="00" * 17), "8.10.1", "3.9")
    assert rig.state(flow) is S.INITIATED


# -- refusals that leave the session where it was ------------------------------------------


def test_a_forged_signature_leaves_the_session_in_its_state(rig: Rig) -> None:
    flow = rig.flow()
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    forged = rebuild_authenticate_response(asr, flow.card, signature=b"\x01" * 64)
    assert_failed(flow.authenticate(forged), "8.1", "6.1")
    assert rig.state(flow) is S.INITIATED
    assert_ok(flow.authenticate(asr))  # the genuine answer still goes through


def test_initiate_authentication_refusals(rig: Rig) -> None:
    flow = rig.flow()
    assert_failed(flow.initiate(smdpAddress="other.example.com"), "8.8.1", "3.8")
    assert_failed(flow.initiate(euiccChallenge="AAAA"), "1.2", "2.1")
    assert_ok(flow.initiate(smdpAddress=ADDRESS.upper() + ":443"))  # FQDNs compare caselessly


# -- one clock -------------------------------------------------------------------------------


def test_certificate_dates_follow_the_engine_clock(material: Material) -> None:
    rig = _rig(material, lifetime=1e12)
    card = SoftEuicc.from_identity_dir(material.euicc_dir)
    certs = [x509.load_der_x509_certificate(d) for d in (card.euicc_certificate, card.eum_certificate)]
    flow = rig.flow()
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    rig.clock.now = (min(c.not_valid_after_utc for c in certs) + timedelta(days=1)).timestamp()
    reply = flow.authenticate(asr)
    assert reply.function_status == "Failed"
    assert reply.status_code_data["subjectCode"] in ("8.1.2", "8.1.3")
    assert reply.status_code_data["reasonCode"] == "6.3"  # expired, by the engine's clock
    assert rig.state(flow) is S.INITIATED
    rig.clock.now = START
    assert_ok(flow.authenticate(asr))


# -- helpers ---------------------------------------------------------------------------------


def _smdp_otpk(bpp: bytes) -> bytes:
    """otPK.DP.ECKA in the BPP's InitialiseSecureChannelRequest."""
    first = parse_single(bpp, b"\xbf\x36").children()[0]
    return parse_initialise_secure_channel(first.raw).smdp_otpk


def _smdp_oid(rig: Rig) -> str:
    session_ci = rig.material.certs.ci_pkids[0]
    return rig.material.certs.credentials(session_ci).smdp_oid
