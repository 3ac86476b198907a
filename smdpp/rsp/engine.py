"""The RSP engine: the SM-DP+ side of ES9+ (SGP.22 5.6), sans I/O.

One method per ES9+ function.  Inputs are the decoded JSON fields (bytes for
base64 fields, str otherwise); outputs are dicts keyed by the SGP.22 JSON
field names with bytes values for the HTTP layer to base64-encode.  Every
"verify that ..." step of SGP.22 5.6 raises :class:`~smdpp.errors.SgpError`
with its subjectCode/reasonCode.  Nothing here knows about HTTP.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp import asn1, status
from smdpp.bsp import PeerKeyError
from smdpp.errors import EuiccReportedError, SgpError
from smdpp.observe import masked
from smdpp.es8p import (ProtectedProfilePackage, bind_profile_package, new_one_time_key,
                        protect_profile_package)
from smdpp.pki.ecdsa import sign_plain, verify_plain
from smdpp.pki.store import CertificateStore
from smdpp.profiles.inventory import InvalidUpp, Profile, ProfileInventory, profile_from_upp
from smdpp.rsp import messages, outgoing
from smdpp.rsp.caches import EngineCaches
from smdpp.rsp.orders import OrderLookup
from smdpp.rsp.session import Session
from smdpp.rsp.states import (
    ALLOWED,
    END_STATES,
    EXPIRED,
    FAILED,
    Es9Function,
    SessionState,
    next_state,
)
from smdpp.rsp.session_store import SessionStore

log = logging.getLogger(__name__)

SUPPORTED_SVN_MAJOR = (2,)
# ConfigureISDPRequest (SGP.22 5.5.2) without dpProprietaryData: empty 'BF24'
CONFIGURE_ISDP = b"\xbf\x24\x00"


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the engine that are not credentials or profiles."""

    hostname: str = "testsmdpplus1.example.com"  # the SM-DP+ address (FQDN)
    session_lifetime: float = 600.0  # seconds from initiateAuthentication
    host_id: bytes = b"smdpp"  # hostId of the controlRefTemplate (SGP.22 5.5.1)
    # '86' segments under per-profile random PPKs, protected once per profile and
    # bound per download with ReplaceSessionKeys; False: under the session keys
    use_ppk: bool = True


class RspEngine:
    """The SM-DP+ protocol core: sessions, verification steps, signing, binding."""

    def __init__(self, certs: CertificateStore, profiles: ProfileInventory,
                 store: SessionStore, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.time,
                 orders: OrderLookup | None = None) -> None:
        self.certs = certs
        self.profiles = profiles
        self.store = store
        self.orders = orders  # operator orders (ES2+), asked before the lab's upp/ files
        self.config = config or EngineConfig()
        self.clock = clock
        self._hostname = self.config.hostname.lower()
        self.caches = EngineCaches()  # derived data kept in this process (rsp/caches.py)
        #: The session the current call worked on and its state before the call, for the
        #: call's one report to observers (:mod:`smdpp.observe`); reset by the adapter.
        #: One reactor thread per process: calls never interleave.
        self.touched: tuple[Session, SessionState | None] | None = None
        asn1.rsp()  # compile now, not on the first request

    # -- helpers ---------------------------------------------------------

    def _session(self, transaction_id: str, function: Es9Function) -> Session:
        """The live session for a TransactionId (hex) in which ``function`` may run.

        The states come from the table (:data:`~smdpp.rsp.states.ALLOWED`);
        anything else is 8.10.1 / 3.9 (SGP.22 5.6.2-5.6.5).  A live session
        past its lifetime ends here as EXPIRED.
        """
        tid = _normalise_tid(transaction_id)
        session = self.store.get(tid)
        if session is None:
            raise status.unknown_transaction(f"unknown transactionId {tid}")
        if self.clock() > session.expires:
            if not session.state.finished:
                delivered = session.state is SessionState.BPP_DELIVERED
                self._end(session, EXPIRED, {"error": "expired"})
                log.info("transactionId=%s: expired", tid)
                if session.ordered and self.orders is not None and session.iccid \
                        and session.eid:
                    # the order goes back where an unfinished download leaves it (3.1.3)
                    self.orders.session_expired(session.iccid, session.eid, tid, delivered)
            raise status.unknown_transaction(f"transactionId {tid} has expired")
        self.touched = (session, session.state)
        allowed = ALLOWED[function]
        if session.state not in allowed:
            raise status.unknown_transaction(
                f"transactionId {tid} is in state {session.state.value}, not "
                f"{' or '.join(sorted(s.value for s in allowed))} as {function.value} needs")
        return session

    def _advance(self, session: Session, function: Es9Function) -> None:
        """Move a live session on by the table after ``function`` succeeded, and write it."""
        previous = session.state
        target = next_state(function, previous)
        assert target is not None and target not in END_STATES, (function, previous)
        session.state = target
        self._commit(session, previous)

    def _end(self, session: Session, state: SessionState, result: dict[str, Any]) -> None:
        """The one way a session ends: record ``result`` in an end state, forget its keys."""
        assert state in END_STATES, state
        previous = session.state
        session.finish(state, result)
        self._commit(session, previous)
        self.caches.forget_euicc_key(session.transaction_id)

    def _fail(self, session: Session, error: SgpError) -> SgpError:
        """End a session that the eUICC's data has made unusable (FAILED), then return the error."""
        self._end(session, FAILED, {
            "error": f"{error.subject_code}/{error.reason_code}", "message": error.message})
        log.info("transactionId=%s: ended on %s/%s: %s", session.transaction_id,
                 error.subject_code, error.reason_code, error.message)
        return error

    def _commit(self, session: Session, expected: SessionState | None) -> None:
        """Write the session only if its stored state is still ``expected``.

        Several processes may share the store (``--workers``, a shared store):
        the compare-and-set makes a replayed or concurrent call lose cleanly.
        """
        self.touched = (session, expected)
        if not self.store.put_if(session, expected):
            raise status.unknown_transaction(
                f"transactionId {session.transaction_id} was changed by a concurrent call")

    def _euicc_key(self, session: Session) -> ec.EllipticCurvePublicKey:
        """PK.EUICC.ECDSA of the session (SGP.22 5.6.2, 5.6.4, 5.6.5), as authenticateClient
        verified it: kept by this process, else loaded from the session's DER."""
        assert session.euicc_public_key is not None
        return self.caches.euicc_key(session.transaction_id, session.euicc_public_key)

    def _utc_now(self) -> datetime:
        """The engine's clock as the aware datetime the certificate and CRL checks take:
        one clock for session lifetimes and certificate dates alike."""
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    @staticmethod
    def _host(address: str) -> str | None:
        """SGP.22 compares FQDNs case-insensitively; an activation code may add ':port'."""
        host = address.strip().lower()
        if host.startswith("["):  # an IPv6 literal has no place here, but parse it politely
            host = host.split("]")[0] + "]"
        elif host.count(":") == 1:
            host, _, port = host.partition(":")
            if not port.isdigit():
                return None
        return host

    def _address_ok(self, address: str) -> bool:
        """Our address, or that of an identity served side by side (--smdp-identity NAME=ADDRESS)."""
        host = self._host(address)
        return host is not None and (host == self._hostname or self.certs.serves_side_by_side(host))

    # -- ES9+.InitiateAuthentication (SGP.22 5.6.1) ----------------------

    def initiate_authentication(self, euicc_challenge: bytes, euicc_info1: bytes,
                                smdp_address: str) -> dict[str, Any]:
        """Start a session: choose a CI, sign serverSigned1 with SK.DPauth.ECDSA."""
        if len(euicc_challenge) != 16:
            raise status.malformed("euiccChallenge must be 16 bytes")
        if not self._address_ok(smdp_address):
            raise status.invalid_smdp_address(f"smdpAddress {smdp_address!r} is not "
                                              f"{self.config.hostname}")
        info1 = messages.parse_euicc_info1(euicc_info1)
        if len(info1.svn) != 3 or info1.svn[0] not in SUPPORTED_SVN_MAJOR:
            raise status.svn_not_supported(f"SGP.22 version {info1.svn.hex()} not supported")
        host = self._host(smdp_address)
        ci_pkid = self.certs.select_ci(info1.ci_pkids_for_verification,
                                       info1.ci_pkids_for_signing, host)
        creds = self.certs.credentials(ci_pkid, host)
        tid = os.urandom(16)
        server_challenge = os.urandom(16)
        server_signed1 = outgoing.server_signed1(tid, euicc_challenge, smdp_address,
                                                 server_challenge)
        now = self.clock()
        first = next_state(Es9Function.INITIATE_AUTHENTICATION, None)
        assert first is not None
        session = Session(transaction_id=tid.hex().upper(), state=first,
                          created=now, expires=now + self.config.session_lifetime,
                          smdp_address=smdp_address, euicc_challenge=euicc_challenge,
                          server_challenge=server_challenge, ci_pkid=ci_pkid)
        self._commit(session, None)
        log.info("transactionId=%s: initiateAuthentication, CI %s", session.transaction_id,
                 ci_pkid.hex())
        return {
            "transactionId": session.transaction_id,
            "serverSigned1": server_signed1,
            "serverSignature1": outgoing.signature(sign_plain(creds.auth_key, server_signed1)),
            "euiccCiPKIdToBeUsed": outgoing.ci_pkid(ci_pkid),
            "serverCertificate": creds.auth_cert_der,
        }

    # -- ES9+.AuthenticateClient (SGP.22 5.6.3) --------------------------

    def authenticate_client(self, transaction_id: str,
                            authenticate_server_response: bytes) -> dict[str, Any]:
        """Authenticate the eUICC, pick its profile, sign smdpSigned2 with SK.DPpb.ECDSA."""
        session = self._session(transaction_id, Es9Function.AUTHENTICATE_CLIENT)
        tid = session.transaction_id
        try:
            resp = messages.parse_authenticate_server_response(authenticate_server_response)
        except EuiccReportedError as err:  # the eUICC itself reported an error: end it
            raise self._fail(session, err) from None
        if resp.transaction_id != session.transaction_id_bytes:
            raise status.unknown_transaction("transactionId in euiccSigned1 does not match")
        identity = self.certs.verify_euicc(resp.eum_certificate, resp.euicc_certificate,
                                           session.ci_pkid, self._utc_now(),
                                           other_certs=resp.other_certs_in_chain)
        if not verify_plain(identity.public_key, resp.euicc_signature1, resp.euicc_signed1):
            raise status.euicc_signature_invalid("euiccSignature1 does not verify")
        if resp.server_challenge != session.server_challenge:
            raise status.euicc_signature_invalid("serverChallenge in euiccSigned1 does not "
                                                 "match")
        if resp.server_address != session.smdp_address:
            raise status.invalid_smdp_address("serverAddress in euiccSigned1 does not match")
        # known from here on, also when the profile lookup fails: the call's report
        # (smdpp.observe) names the eUICC and what it asked for; written only on success
        session.eid, session.matching_id = identity.eid, resp.matching_id
        profile, metadata = self._profile_for(session, resp.matching_id, identity.eid)
        creds = self.certs.credentials(session.ci_pkid, self._host(session.smdp_address))
        smdp_signed2 = outgoing.smdp_signed2(session.transaction_id_bytes,
                                             cc_required=session.cc_required)
        # SGP.22 5.6.3: smdpSignature2 covers smdpSigned2 and the euiccSignature1 TLV
        smdp_signature2 = outgoing.signature(sign_plain(
            creds.pb_key, smdp_signed2 + resp.euicc_signature1_tlv))
        session.eid = identity.eid
        # the SubjectPublicKeyInfo as it is in the certificate: no re-encoding needed
        session.euicc_public_key = identity.public_key_der or identity.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        session.matching_id = profile.matching_id
        session.iccid = profile.iccid
        session.smdp_signature2 = smdp_signature2
        self._advance(session, Es9Function.AUTHENTICATE_CLIENT)
        self.caches.keep_euicc_key(tid, session.expires, session.euicc_public_key,
                                   identity.public_key)
        log.info("transactionId=%s: authenticateClient EID %s, matchingId %s, ICCID %s",
                 tid, identity.eid,  # an order's matchingId downloads it: masked (ES2+, 3.1.3)
                 masked(profile.matching_id) if session.ordered else profile.matching_id,
                 profile.iccid)
        return {
            "transactionId": tid,
            "profileMetadata": metadata,
            "smdpSigned2": smdp_signed2,
            "smdpSignature2": smdp_signature2,
            "smdpCertificate": creds.pb_cert_der,
        }

    def _profile_for(self, session: Session, matching_id: str | None,
                     eid: str) -> tuple[Profile, bytes]:
        """The profile for an activation code's MatchingID (SGP.22 3.1.3 / 5.6.3) and its
        StoreMetadataRequest: an operator's order first, else a file of the lab's upp/."""
        if self.orders is not None:
            try:
                ordered = self.orders.find(matching_id, eid)
            except SgpError:  # an order's matchingId, refused: shown masked all the same
                session.ordered = True
                raise
            if ordered is not None:
                session.ordered = True
                session.cc_required = ordered.cc_required
                profile = _ordered_profile(matching_id, ordered.iccid, ordered.upp)
                # one download per ordered profile: nothing of it is cached
                return profile, outgoing.store_metadata_request(profile)
        profile = self._lab_profile(matching_id, eid)
        return profile, self.caches.store_metadata(profile)

    def _lab_profile(self, matching_id: str | None, eid: str) -> Profile:
        """A file of the lab's upp/: any number of downloads to any eUICC."""
        if not matching_id:
            raise status.no_eligible_profile(f"no MatchingID and no pending order for EID "
                                             f"{eid}")
        profile = self.profiles.get(matching_id)
        if profile is None:
            raise status.matching_id_refused(f"no profile for matchingId {matching_id!r}")
        return profile

    # -- ES9+.GetBoundProfilePackage (SGP.22 5.6.2) -----------------------

    def get_bound_profile_package(self, transaction_id: str,
                                  prepare_download_response: bytes) -> dict[str, Any]:
        """Verify euiccSignature2, derive fresh session keys and bind the profile."""
        session = self._session(transaction_id, Es9Function.GET_BOUND_PROFILE_PACKAGE)
        tid = session.transaction_id
        try:
            resp = messages.parse_prepare_download_response(prepare_download_response)
        except EuiccReportedError as err:
            raise self._fail(session, err) from None
        if resp.transaction_id != session.transaction_id_bytes:
            raise status.unknown_transaction("transactionId in euiccSigned2 does not match")
        assert session.smdp_signature2 is not None
        # SGP.22 5.6.2: euiccSignature2 covers euiccSigned2 and the smdpSignature2 TLV
        if not verify_plain(self._euicc_key(session), resp.euicc_signature2,
                            resp.euicc_signed2 + session.smdp_signature2):
            raise status.euicc_signature_invalid("euiccSignature2 does not verify")
        creds = self.certs.credentials(session.ci_pkid, self._host(session.smdp_address))
        if session.ordered:
            profile, metadata, material = self._ordered_material(session, resp.hash_cc)
        else:
            profile = self.profiles.get(session.matching_id or "")
            if profile is None:  # the UPP was removed since authenticateClient
                raise self._fail(session, status.matching_id_refused(
                    f"profile {session.matching_id!r} is no longer available"))
            metadata = self.caches.store_metadata(profile)
            material = self.caches.protected(profile) if self.config.use_ppk else profile.upp
        ot_key = self._one_time_key(session, resp.euicc_otpk, creds.pb_key)
        try:  # the ECDH step loads euiccOtpk once and refuses a point off the DPpb curve
            bpp = bind_profile_package(
                transaction_id=session.transaction_id_bytes,
                eid=bytes.fromhex(session.eid or ""), euicc_otpk=resp.euicc_otpk,
                smdp_ot_key=ot_key, dppb_key=creds.pb_key, host_id=self.config.host_id,
                configure_isdp=CONFIGURE_ISDP, store_metadata=metadata, profile=material)
        except PeerKeyError:
            raise status.malformed("euiccOtpk is not a point on the DPpb curve") from None
        if session.ordered:  # one eUICC, once: the compare-and-set of the order store
            assert self.orders is not None and session.iccid and session.eid
            try:
                self.orders.bpp_delivered(session.iccid, session.eid, tid)
            except SgpError as err:
                raise self._fail(session, err) from None
        session.euicc_otpk = resp.euicc_otpk
        session.smdp_ot_key = ot_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        session.bpp_count += 1
        self._advance(session, Es9Function.GET_BOUND_PROFILE_PACKAGE)
        log.info("transactionId=%s: getBoundProfilePackage, %d bytes (delivery %d)", tid,
                 len(bpp.der), session.bpp_count)
        return {"transactionId": tid, "boundProfilePackage": bpp.der}

    def _ordered_material(self, session: Session, hash_cc: bytes | None
                          ) -> tuple[Profile, bytes, ProtectedProfilePackage | bytes]:
        """An order's profile, metadata and package to bind, after its Confirmation Code
        (SGP.22 5.6.2); a refusal that ends the order ends the session too."""
        assert self.orders is not None and session.iccid and session.eid
        try:
            self.orders.check_confirmation_code(session.iccid, session.eid,
                                                session.transaction_id, hash_cc)
            upp = self.orders.upp(session.iccid)
        except SgpError as err:
            if (err.subject_code, err.reason_code) in status.ORDER_ENDED:
                raise self._fail(session, err) from None
            raise  # a wrong code: the LPA may ask the user again in this session
        profile = _ordered_profile(session.matching_id, session.iccid, upp)
        material = protect_profile_package(upp) if self.config.use_ppk else upp
        return profile, outgoing.store_metadata_request(profile), material

    @staticmethod
    def _one_time_key(session: Session, euicc_otpk: bytes,
                      dppb_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
        """otSK.DP.ECKA for this delivery: a retry with the same otPK.EUICC.ECKA reuses the
        session's (SGP.22 3.1.3.2); a first delivery or a new otPK.EUICC.ECKA gets a new one."""
        if session.smdp_ot_key and session.euicc_otpk == euicc_otpk:
            loaded = serialization.load_der_private_key(session.smdp_ot_key, None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            return loaded
        return new_one_time_key(dppb_key)

    # -- ES9+.HandleNotification (SGP.22 5.6.4) ---------------------------

    def handle_notification(self, pending_notification: bytes) -> None:
        """Verify and record a notification; a ProfileInstallationResult ends its session."""
        note = messages.parse_pending_notification(pending_notification)
        if isinstance(note, messages.OtherSignedNotification):
            self._other_notification(note)
            return
        session = self._session(note.transaction_id.hex(), Es9Function.HANDLE_NOTIFICATION)
        if not verify_plain(self._euicc_key(session), note.signature, note.data):
            raise status.euicc_signature_invalid("euiccSignPIR does not verify")
        if session.state.finished:  # done already: an LPA may send a notification again
            log.info("transactionId=%s: ProfileInstallationResult repeated",
                     session.transaction_id)
            return
        result = {"success": note.success, "seqNumber": note.seq_number, **note.details}
        self._end(session, _end_state(Es9Function.HANDLE_NOTIFICATION, session), result)
        if session.ordered and self.orders is not None and session.iccid and session.eid:
            # the operator gets the eUICC's signed result as received (SGP.22 5.3.5)
            self.orders.installation_result(
                session.iccid, session.eid, session.transaction_id, note.success,
                pending_notification, None if note.success else str(note.details)[:200])
        log.info("transactionId=%s: ProfileInstallationResult %s (EID %s, ICCID %s)",
                 session.transaction_id, "success" if note.success else f"error {note.details}",
                 session.eid, session.iccid)

    def _other_notification(self, note: messages.OtherSignedNotification) -> None:
        """otherSignedNotification: the eUICC certificate travels with it (SGP.22 5.6.4)."""
        # no session: the CI is the one the EUM certificate names
        identity = self.certs.verify_euicc(note.eum_certificate, note.euicc_certificate, None,
                                           self._utc_now(), other_certs=note.other_certs_in_chain)
        if not verify_plain(identity.public_key, note.signature, note.data):
            raise status.euicc_signature_invalid("euiccNotificationSignature does not verify")
        log.info("notification %s from EID %s (seqNumber %d, ICCID %s)", note.operation,
                 identity.eid, note.seq_number, note.iccid.hex() if note.iccid else "-")

    # -- ES9+.CancelSession (SGP.22 5.6.5) ---------------------------------

    def cancel_session(self, transaction_id: str, cancel_session_response: bytes) -> None:
        """Verify the eUICC-signed cancellation and end the session."""
        session = self._session(transaction_id, Es9Function.CANCEL_SESSION)
        resp = messages.parse_cancel_session_response(cancel_session_response)
        if resp.transaction_id != session.transaction_id_bytes:
            raise status.unknown_transaction("transactionId in euiccCancelSessionSigned does "
                                             "not match")
        creds = self.certs.credentials(session.ci_pkid, self._host(session.smdp_address))
        if resp.smdp_oid != creds.smdp_oid:
            raise status.invalid_smdp_oid(f"smdpOid {resp.smdp_oid} is not {creds.smdp_oid}")
        if not verify_plain(self._euicc_key(session), resp.signature, resp.signed):
            raise status.euicc_signature_invalid("euiccCancelSessionSignature does not verify")
        self._end(session, _end_state(Es9Function.CANCEL_SESSION, session),
                  {"cancelReason": resp.reason})
        if session.ordered and self.orders is not None and session.iccid and session.eid:
            self.orders.session_cancelled(session.iccid, session.eid, session.transaction_id,
                                          resp.reason)
        log.info("transactionId=%s: cancelSession, reason %d", session.transaction_id,
                 resp.reason)

    # -- housekeeping -------------------------------------------------------

    def expire_sessions(self) -> int:
        """Drop sessions past their lifetime; return how many."""
        now = self.clock()
        count = self.store.expire(now)
        self.caches.expire(now)
        if self.orders is not None:
            # the store drops expired sessions without the engine seeing them: the orders
            # they had taken are found by the time their BPP went out (SGP.22 3.1.3)
            self.orders.downloads_expired(self.config.session_lifetime)
        if count:
            log.info("expired %d session(s)", count)
        return count


def _ordered_profile(matching_id: str | None, iccid: str, upp: bytes) -> Profile:
    """The :class:`Profile` (metadata) of an ordered package; its ICCID must be the order's."""
    try:
        profile = profile_from_upp(matching_id or "", upp)
    except InvalidUpp as exc:
        raise status.profile_unavailable(f"ICCID {iccid}: the package is damaged: {exc}") \
            from None
    if profile.iccid != iccid:
        raise status.profile_unavailable(f"ICCID {iccid}: the package has ICCID {profile.iccid}")
    return profile


def _end_state(function: Es9Function, session: Session) -> SessionState:
    """The end state the table gives ``function`` from the session's state."""
    target = next_state(function, session.state)
    assert target is not None and target in END_STATES, (function, session.state)
    return target


def _normalise_tid(transaction_id: str) -> str:
    """Upper-case hex of a TransactionId (1..16 bytes, SGP.22 2.2); else 8.10.1/3.9."""
    if not isinstance(transaction_id, str) or not 2 <= len(transaction_id) <= 32:
        raise status.unknown_transaction("transactionId must be 1 to 16 bytes of hex")
    try:
        return bytes.fromhex(transaction_id).hex().upper()
    except ValueError:
        raise status.unknown_transaction("transactionId is not hex") from None
