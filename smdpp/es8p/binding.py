"""Binding a profile to one eUICC: building the Bound Profile Package (SGP.22 2.5.5, 3.1.3).

On ES9+.GetBoundProfilePackage the SM-DP+ makes (:func:`new_one_time_key`,
the one place it is made) or reuses, for a retry with the same euiccOtpk,
its one-time key pair otSK/otPK.DP.ECKA, signs the
InitialiseSecureChannelRequest, derives the BSP session keys from ECDH with
otPK.EUICC.ECKA, and protects ConfigureISDP ('87'), StoreMetadata ('88') and
the profile data ('86').  A Protected Profile Package brings its '86'
segments under its own Profile Protection Keys, delivered first in a
ReplaceSessionKeys '87'; a bare UPP is protected under the session keys.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import (
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspError,
    BspSession,
    derive_session_keys,
    ecka_shared_secret,
    protect_segmented,
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
from smdpp.es8p.initialise_secure_channel import encode_initialise_secure_channel
from smdpp.es8p.protected_profile import ProtectedProfilePackage
from smdpp.es8p.replace_session_keys import encode_replace_session_keys
from smdpp.pki.ecdsa import public_point

__all__ = ["BoundProfilePackage", "bind_profile_package", "new_one_time_key"]


@dataclass(frozen=True, slots=True)
class BoundProfilePackage:
    """The result of binding: the BF36 to send and the SM-DP+ one-time public key in it."""

    der: bytes  # the whole BoundProfilePackage (BF36)
    smdp_otpk: bytes  # otPK.DP.ECKA, uncompressed point


def _require_single(der: bytes, tag: bytes, what: str) -> None:
    try:
        parse_single(der, tag)
    except TlvError as exc:
        raise BspError(f"{what} is not a single {tag.hex()} data object: {exc}") from None


def new_one_time_key(dppb_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    """A fresh otSK.DP.ECKA on the curve of SK.DPpb.ECDSA (SGP.22 3.1.3.2, 5.6.2)."""
    return ec.generate_private_key(dppb_key.curve)


def bind_profile_package(*, transaction_id: bytes, eid: bytes, euicc_otpk: bytes,
                         smdp_ot_key: ec.EllipticCurvePrivateKey,
                         dppb_key: ec.EllipticCurvePrivateKey, host_id: bytes,
                         configure_isdp: bytes, store_metadata: bytes,
                         profile: ProtectedProfilePackage | bytes) -> BoundProfilePackage:
    """Build the BoundProfilePackage for one eUICC (SGP.22 2.5.5).

    ``eid`` is the 16-octet EID; ``smdp_ot_key`` is otSK.DP.ECKA (from
    :func:`new_one_time_key`, or the session's for a retry), on the curve of
    ``dppb_key``, which must also be the curve of ``euicc_otpk``;
    ``configure_isdp`` / ``store_metadata`` the DER of the BF24 / BF25 requests.
    ``profile`` is either a :class:`ProtectedProfilePackage` (its '86'
    segments as they are, its PPKs sent in ReplaceSessionKeys:
    secondSequenceOf87 present) or the bytes of an Unprotected Profile Package,
    protected here under the session keys (secondSequenceOf87 absent).
    Raises :class:`BspError` on invalid input, :class:`~smdpp.bsp.PeerKeyError`
    when ``euicc_otpk`` is not a point on the curve (the ECDH step loads and
    checks it, so a caller need not load it beforehand).
    """
    if len(eid) != 16:
        raise BspError("EID must be 16 bytes")
    if not isinstance(profile, ProtectedProfilePackage) and not profile:
        raise BspError("the Unprotected Profile Package is empty")
    _require_single(configure_isdp, TAG_CONFIGURE_ISDP, "configure_isdp")
    _require_single(store_metadata, TAG_STORE_METADATA, "store_metadata")
    if smdp_ot_key.curve.name != dppb_key.curve.name:
        raise BspError("smdp_ot_key is not on the curve of the DPpb key")
    smdp_otpk = public_point(smdp_ot_key)

    # ECDH first: it also rejects a euiccOtpk that is not a point on our curve.
    shared_secret = ecka_shared_secret(smdp_ot_key, euicc_otpk)
    session = BspSession(derive_session_keys(shared_secret, host_id=host_id, eid=eid))
    del shared_secret

    initialise = encode_initialise_secure_channel(
        transaction_id=transaction_id, host_id=host_id, smdp_otpk=smdp_otpk,
        euicc_otpk=euicc_otpk, dppb_key=dppb_key)
    parts = [
        initialise.der,
        encode_tlv(TAG_FIRST_SEQUENCE_OF_87,
                   b"".join(protect_segmented(session, TAG_MAC_AND_ENC, configure_isdp))),
        encode_tlv(TAG_SEQUENCE_OF_88,
                   b"".join(protect_segmented(session, TAG_MAC_ONLY, store_metadata))),
    ]
    if isinstance(profile, ProtectedProfilePackage):
        parts.append(encode_tlv(
            TAG_SECOND_SEQUENCE_OF_87,
            b"".join(protect_segmented(session, TAG_MAC_AND_ENC,
                                       encode_replace_session_keys(profile.ppk)))))
        parts.append(profile.sequence_of_86)
    else:
        parts.append(encode_tlv(TAG_SEQUENCE_OF_86,
                                b"".join(protect_segmented(session, TAG_PROFILE_SEGMENT, profile))))
    return BoundProfilePackage(der=encode_tlv(TAG_BOUND_PROFILE_PACKAGE, b"".join(parts)),
                               smdp_otpk=smdp_otpk)
