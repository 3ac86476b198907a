"""ES8+.InitialiseSecureChannel: the BF23 that opens a Bound Profile Package (SGP.22 2.5.5, 5.5.1).

    InitialiseSecureChannelRequest ::= [35] SEQUENCE {   -- Tag 'BF23'
        remoteOpId RemoteOpId,                 -- [2] '82', installBoundProfilePackage(1)
        transactionId [0] TransactionId,       -- '80', 1..16 octets
        controlRefTemplate [6] IMPLICIT ControlRefTemplate,  -- 'A6'
        smdpOtpk [APPLICATION 73] OCTET STRING,  -- '5F49', otPK.DP.ECKA
        smdpSign [APPLICATION 55] OCTET STRING   -- '5F37'
    }
    ControlRefTemplate ::= SEQUENCE {
        keyType [0] Octet1,      -- '80', AES = '88'
        keyLen [1] Octet1,       -- '81', '10'
        hostId [4] OctetTo16     -- '84'
    }

smdpSign is the SM-DP+ signature with SK.DPpb.ECDSA over the data objects
remoteOpId, transactionId, controlRefTemplate and smdpOtpk (the contents of
BF23 before smdpSign, as sent) followed by euiccOtpk as a '5F49' data object;
it is in the plain r||s form of BSI TR-03111.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import KEY_LENGTH_AES128, KEY_TYPE_AES, BspError
from smdpp.es8p.der import require_der_length, require_tags
from smdpp.pki.ecdsa import sign_plain, verify_plain

__all__ = [
    "TAG_INITIALISE_SECURE_CHANNEL",
    "InitialiseSecureChannelRequest",
    "smdp_sign_input",
    "encode_initialise_secure_channel",
    "parse_initialise_secure_channel",
    "verify_smdp_sign",
]

TAG_INITIALISE_SECURE_CHANNEL = b"\xbf\x23"
_TAG_REMOTE_OP_ID = b"\x82"
_TAG_TRANSACTION_ID = b"\x80"
_TAG_CRT = b"\xa6"
_TAG_KEY_TYPE, _TAG_KEY_LEN, _TAG_HOST_ID = b"\x80", b"\x81", b"\x84"
_TAG_OTPK = b"\x5f\x49"
_TAG_SIGN = b"\x5f\x37"
_INSTALL_BOUND_PROFILE_PACKAGE = b"\x01"


@dataclass(frozen=True, slots=True)
class InitialiseSecureChannelRequest:
    """A BF23 as encoded (SM-DP+) or received (eUICC), with its fields."""

    der: bytes  # the whole BF23
    transaction_id: bytes
    host_id: bytes
    smdp_otpk: bytes  # otPK.DP.ECKA, 04||X||Y
    smdp_sign: bytes  # plain r||s
    signed_data: bytes  # contents of BF23 before smdpSign, exactly as encoded


def smdp_sign_input(signed_data: bytes, euicc_otpk: bytes) -> bytes:
    """The bytes smdpSign covers: BF23 contents before smdpSign, then euiccOtpk as '5F49'."""
    return signed_data + encode_tlv(_TAG_OTPK, euicc_otpk)


def _check_ids(transaction_id: bytes, host_id: bytes) -> None:
    if not 1 <= len(transaction_id) <= 16:
        raise BspError("transactionId must be 1..16 bytes")
    if not 1 <= len(host_id) <= 16:
        raise BspError("hostId must be 1..16 bytes")


def encode_initialise_secure_channel(*, transaction_id: bytes, host_id: bytes, smdp_otpk: bytes,
                                     euicc_otpk: bytes,
                                     dppb_key: ec.EllipticCurvePrivateKey) -> InitialiseSecureChannelRequest:
    """Build and sign the InitialiseSecureChannelRequest with SK.DPpb.ECDSA."""
    _check_ids(transaction_id, host_id)
    signed_data = (
        encode_tlv(_TAG_REMOTE_OP_ID, _INSTALL_BOUND_PROFILE_PACKAGE)
        + encode_tlv(_TAG_TRANSACTION_ID, transaction_id)
        + encode_tlv(_TAG_CRT,
                     encode_tlv(_TAG_KEY_TYPE, bytes((KEY_TYPE_AES,)))
                     + encode_tlv(_TAG_KEY_LEN, bytes((KEY_LENGTH_AES128,)))
                     + encode_tlv(_TAG_HOST_ID, host_id))
        + encode_tlv(_TAG_OTPK, smdp_otpk)
    )
    smdp_sign = sign_plain(dppb_key, smdp_sign_input(signed_data, euicc_otpk))
    der = encode_tlv(TAG_INITIALISE_SECURE_CHANNEL, signed_data + encode_tlv(_TAG_SIGN, smdp_sign))
    return InitialiseSecureChannelRequest(der, transaction_id, host_id, smdp_otpk, smdp_sign,
                                          signed_data)


def parse_initialise_secure_channel(der: bytes) -> InitialiseSecureChannelRequest:
    """Parse a BF23 strictly (tags, order, DER lengths, fixed values); raise BspError otherwise."""
    try:
        request = parse_single(der, TAG_INITIALISE_SECURE_CHANNEL)
        require_der_length(request)
        parts = request.children()
        require_tags(parts, [_TAG_REMOTE_OP_ID, _TAG_TRANSACTION_ID, _TAG_CRT, _TAG_OTPK, _TAG_SIGN],
                     "InitialiseSecureChannelRequest")
        crt = parts[2].children()
        require_tags(crt, [_TAG_KEY_TYPE, _TAG_KEY_LEN, _TAG_HOST_ID], "controlRefTemplate")
    except TlvError as exc:
        raise BspError(f"InitialiseSecureChannelRequest malformed: {exc}") from None
    remote_op, transaction, _, otpk, sign = parts
    if remote_op.value != _INSTALL_BOUND_PROFILE_PACKAGE:
        raise BspError("InitialiseSecureChannelRequest: remoteOpId is not installBoundProfilePackage")
    if crt[0].value != bytes((KEY_TYPE_AES,)) or crt[1].value != bytes((KEY_LENGTH_AES128,)):
        raise BspError("InitialiseSecureChannelRequest: controlRefTemplate is not AES-128")
    _check_ids(transaction.value, crt[2].value)
    return InitialiseSecureChannelRequest(
        der=bytes(der),
        transaction_id=transaction.value,
        host_id=crt[2].value,
        smdp_otpk=otpk.value,
        smdp_sign=sign.value,
        signed_data=der[request.value_start:sign.start],
    )


def verify_smdp_sign(request: InitialiseSecureChannelRequest, euicc_otpk: bytes,
                     dppb_public_key: ec.EllipticCurvePublicKey) -> None:
    """Check smdpSign with PK.DPpb.ECDSA over the received bytes; raise BspError if invalid."""
    if not verify_plain(dppb_public_key, request.smdp_sign,
                        smdp_sign_input(request.signed_data, euicc_otpk)):
        raise BspError("smdpSign verification failed")
