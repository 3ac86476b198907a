"""Binding a profile to one eUICC: building the Bound Profile Package (SGP.22 2.5.5, 3.1.3).

On ES9+.GetBoundProfilePackage the SM-DP+ makes (or reuses, for a retry
with the same euiccOtpk) its one-time key pair otSK/otPK.DP.ECKA, signs the
InitialiseSecureChannelRequest, derives the BSP session keys from ECDH with
otPK.EUICC.ECKA, and protects ConfigureISDP ('87'), StoreMetadata ('88') and
the profile data ('86').  With PPK the '86' segments are protected under
fresh Profile Protection Keys, delivered first in a ReplaceSessionKeys '87'.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import (
    KEY_LENGTH_AES128,
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspError,
    BspSession,
    SessionKeys,
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

__all__ = ["BoundProfilePackage", "bind_profile_package"]


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


def bind_profile_package(*, transaction_id: bytes, eid: bytes, euicc_otpk: bytes,
                         dppb_key: ec.EllipticCurvePrivateKey, configure_isdp: bytes,
                         store_metadata: bytes, upp: bytes, host_id: bytes,
                         smdp_ot_key: ec.EllipticCurvePrivateKey | None = None,
                         use_ppk: bool = True,
                         protected: ProtectedProfilePackage | None = None) -> BoundProfilePackage:
    """Build the BoundProfilePackage for one eUICC (SGP.22 2.5.5).

    ``eid`` is the 16-octet EID; ``configure_isdp`` / ``store_metadata`` the DER
    of the BF24 / BF25 requests; ``upp`` the Unprotected Profile Package.
    ``smdp_ot_key`` is otSK.DP.ECKA; when None a fresh one is generated on the
    curve of ``dppb_key``, which must also be the curve of ``euicc_otpk``.
    ``use_ppk`` selects fresh random Profile Protection Keys for the '86'
    segments (secondSequenceOf87 present) or the session keys (absent).
    ``protected`` is ``upp`` already protected under its own PPKs
    (:func:`~smdpp.es8p.protected_profile.protect_profile_package`): its
    '86' segments are used as they are and its PPKs sent in ReplaceSessionKeys.
    Raises :class:`BspError` on invalid input, :class:`~smdpp.bsp.PeerKeyError`
    when ``euicc_otpk`` is not a point on the curve (the ECDH step loads and
    checks it, so a caller need not load it beforehand).
    """
    if len(eid) != 16:
        raise BspError("EID must be 16 bytes")
    if not upp:
        raise BspError("the Unprotected Profile Package is empty")
    _require_single(configure_isdp, TAG_CONFIGURE_ISDP, "configure_isdp")
    _require_single(store_metadata, TAG_STORE_METADATA, "store_metadata")
    curve = dppb_key.curve
    if smdp_ot_key is None:
        smdp_ot_key = ec.generate_private_key(curve)
    elif smdp_ot_key.curve.name != curve.name:
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
    if protected is not None and not use_ppk:
        raise BspError("a Protected Profile Package needs use_ppk")
    if use_ppk:
        ppk = protected.ppk if protected is not None else SessionKeys(
            s_enc=os.urandom(KEY_LENGTH_AES128), s_mac=os.urandom(KEY_LENGTH_AES128),
            initial_mcv=os.urandom(KEY_LENGTH_AES128))
        parts.append(encode_tlv(
            TAG_SECOND_SEQUENCE_OF_87,
            b"".join(protect_segmented(session, TAG_MAC_AND_ENC, encode_replace_session_keys(ppk)))))
        session.replace_session_keys(ppk)
    if protected is not None:
        parts.append(protected.sequence_of_86)
    else:
        parts.append(encode_tlv(TAG_SEQUENCE_OF_86,
                                b"".join(protect_segmented(session, TAG_PROFILE_SEGMENT, upp))))
    return BoundProfilePackage(der=encode_tlv(TAG_BOUND_PROFILE_PACKAGE, b"".join(parts)),
                               smdp_otpk=smdp_otpk)
