"""Opening a Bound Profile Package on the eUICC side (SGP.22 3.1.3, 5.5).

This is what the software test eUICC does with the BPP the LPA hands it
(ES8+ functions on the ISD-R): check the structure, verify smdpSign with
PK.DPpb.ECDSA over the received bytes, agree ShS with its otSK.EUICC.ECKA,
derive the session keys, then verify and decrypt every segment in order
(one MAC chain across all sequences), switching to the Profile Protection
Keys when a ReplaceSessionKeys is present.  Every failure is a BspError
naming the step.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1.tlv import Tlv, TlvError, parse_single
from smdpp.bsp import (
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspError,
    BspSession,
    derive_session_keys,
    ecka_shared_secret,
)
from smdpp.es8p.bound_profile_package import (
    TAG_BOUND_PROFILE_PACKAGE,
    TAG_CONFIGURE_ISDP,
    TAG_FIRST_SEQUENCE_OF_87,
    TAG_SECOND_SEQUENCE_OF_87,
    TAG_SEQUENCE_OF_86,
    TAG_SEQUENCE_OF_88,
    TAG_STORE_METADATA,
)
from smdpp.es8p.der import require_der_length, require_tags
from smdpp.es8p.initialise_secure_channel import (
    TAG_INITIALISE_SECURE_CHANNEL,
    InitialiseSecureChannelRequest,
    parse_initialise_secure_channel,
    verify_smdp_sign,
)
from smdpp.es8p.replace_session_keys import TAG_REPLACE_SESSION_KEYS, parse_replace_session_keys
from smdpp.pki.ecdsa import public_point

__all__ = ["OpenedProfilePackage", "accept_initialise_secure_channel", "open_bound_profile_package",
           "single_object", "unprotect_segment"]


@dataclass(frozen=True, slots=True)
class OpenedProfilePackage:
    """What the eUICC recovers from a Bound Profile Package."""

    transaction_id: bytes
    host_id: bytes
    smdp_otpk: bytes
    configure_isdp: bytes  # DER of ConfigureISDPRequest (BF24)
    store_metadata: bytes  # DER of StoreMetadataRequest (BF25)
    upp: bytes  # the Unprotected Profile Package


def _split_bpp(der: bytes) -> list[Tlv]:
    """The top-level parts of the BF36, checked for tags, order and DER lengths."""
    try:
        bpp = parse_single(der, TAG_BOUND_PROFILE_PACKAGE)
        require_der_length(bpp)
        parts = bpp.children()
        with_ppk = len(parts) == 5
        expected = [TAG_INITIALISE_SECURE_CHANNEL, TAG_FIRST_SEQUENCE_OF_87, TAG_SEQUENCE_OF_88]
        expected += [TAG_SECOND_SEQUENCE_OF_87] if with_ppk else []
        expected += [TAG_SEQUENCE_OF_86]
        require_tags(parts, expected, "BoundProfilePackage")
    except TlvError as exc:
        raise BspError(f"BoundProfilePackage malformed: {exc}") from None
    return parts


def unprotect_segment(session: BspSession, raw: bytes, tag: bytes, number: int, name: str) -> bytes:
    """The plaintext of the ``number``-th (from 1) ``tag`` segment of the sequence ``name``;
    a BspError names the segment so that the eUICC can tell which command failed."""
    return session.unprotect(raw, tag, name=f"segment {tag.hex()} #{number} ({name})")


def _open_sequence(session: BspSession, container: Tlv, tag: bytes, name: str) -> bytes:
    """Unprotect every ``tag`` segment in ``container`` in order; the joined plaintext."""
    try:
        segments = container.children()
        require_tags(segments, [tag] * len(segments), name)
    except TlvError as exc:
        raise BspError(f"{name} malformed: {exc}") from None
    if not segments:
        raise BspError(f"{name} is empty")
    return b"".join(unprotect_segment(session, segment.raw, tag, number, name)
                    for number, segment in enumerate(segments, start=1))


def accept_initialise_secure_channel(initialise_der: bytes, *, euicc_ot_key: ec.EllipticCurvePrivateKey,
                                     euicc_otpk: bytes, eid: bytes, dppb_public_key: ec.EllipticCurvePublicKey
                                     ) -> tuple[InitialiseSecureChannelRequest, BspSession]:
    """The eUICC's side of InitialiseSecureChannel (SGP.22 5.5.1, 2.6.4): the request and the BSP session.

    ``euicc_otpk`` is otPK.EUICC.ECKA as the eUICC sent it and must belong to
    ``euicc_ot_key``; smdpSign is verified with ``dppb_public_key`` over the
    received bytes; the session keys come from ECDH with otPK.DP.ECKA and the
    16-octet ``eid``.  Raises :class:`BspError`.
    """
    if public_point(euicc_ot_key) != bytes(euicc_otpk):
        raise BspError("euiccOtpk does not belong to the eUICC one-time key")
    initialise = parse_initialise_secure_channel(initialise_der)
    verify_smdp_sign(initialise, euicc_otpk, dppb_public_key)
    shared_secret = ecka_shared_secret(euicc_ot_key, initialise.smdp_otpk)
    session = BspSession(derive_session_keys(shared_secret, host_id=initialise.host_id, eid=eid))
    del shared_secret
    return initialise, session


def single_object(der: bytes, tag: bytes, name: str) -> bytes:
    """``der`` if it is exactly one DER data object with ``tag``; else BspError naming ``name``."""
    try:
        require_der_length(parse_single(der, tag))
    except TlvError as exc:
        raise BspError(f"{name} malformed: {exc}") from None
    return der


def open_bound_profile_package(der: bytes, *, euicc_ot_key: ec.EllipticCurvePrivateKey,
                               euicc_otpk: bytes, eid: bytes,
                               dppb_public_key: ec.EllipticCurvePublicKey) -> OpenedProfilePackage:
    """Verify and decrypt a BoundProfilePackage with the eUICC one-time key (SGP.22 5.5).

    ``euicc_otpk`` is otPK.EUICC.ECKA as the eUICC sent it (it must belong to
    ``euicc_ot_key``); ``eid`` the 16-octet EID; ``dppb_public_key`` the key of
    CERT.DPpb.ECDSA, already validated by the caller.  The caller also checks
    ``transaction_id`` against its session.  Raises :class:`BspError`.
    """
    parts = _split_bpp(der)
    initialise, session = accept_initialise_secure_channel(
        parts[0].raw, euicc_ot_key=euicc_ot_key, euicc_otpk=euicc_otpk, eid=eid,
        dppb_public_key=dppb_public_key)

    configure_isdp = single_object(
        _open_sequence(session, parts[1], TAG_MAC_AND_ENC, "firstSequenceOf87"),
        TAG_CONFIGURE_ISDP, "ConfigureISDPRequest")
    store_metadata = single_object(
        _open_sequence(session, parts[2], TAG_MAC_ONLY, "sequenceOf88"),
        TAG_STORE_METADATA, "StoreMetadataRequest")
    if len(parts) == 5:
        replace = _open_sequence(session, parts[3], TAG_MAC_AND_ENC, "secondSequenceOf87")
        session.replace_session_keys(parse_replace_session_keys(
            single_object(replace, TAG_REPLACE_SESSION_KEYS, "ReplaceSessionKeysRequest")))
    upp = _open_sequence(session, parts[-1], TAG_PROFILE_SEGMENT, "sequenceOf86")
    return OpenedProfilePackage(
        transaction_id=initialise.transaction_id,
        host_id=initialise.host_id,
        smdp_otpk=initialise.smdp_otpk,
        configure_isdp=configure_isdp,
        store_metadata=store_metadata,
        upp=upp,
    )
