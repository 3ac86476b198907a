"""ES8+.ReplaceSessionKeys: the Profile Protection Keys for the '86' segments (SGP.22 2.5.5).

    ReplaceSessionKeysRequest ::= [38] SEQUENCE {  -- Tag 'BF26'
        initialMacChainingValue OCTET STRING,      -- [0] '80'
        ppkEnc OCTET STRING,                       -- [1] '81'
        ppkCmac OCTET STRING                       -- [2] '82'
    }

The module uses automatic tagging, so the context tags follow the order of
the components: the MCV is '80', PPK-ENC '81' and PPK-CMAC '82'.  The
known-answer trace confirms it (its first '86' segment decrypts with the '81'
value, is MACed with the '82' value and chained from the '80' value).
"""
from __future__ import annotations

from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import BspError, SessionKeys
from smdpp.es8p.der import require_der_length

__all__ = ["TAG_REPLACE_SESSION_KEYS", "encode_replace_session_keys", "parse_replace_session_keys"]

TAG_REPLACE_SESSION_KEYS = b"\xbf\x26"
_TAG_MCV, _TAG_PPK_ENC, _TAG_PPK_CMAC = b"\x80", b"\x81", b"\x82"


def encode_replace_session_keys(keys: SessionKeys) -> bytes:
    """DER of ReplaceSessionKeysRequest (BF26) delivering ``keys`` as the PPK."""
    return encode_tlv(
        TAG_REPLACE_SESSION_KEYS,
        encode_tlv(_TAG_MCV, keys.initial_mcv)
        + encode_tlv(_TAG_PPK_ENC, keys.s_enc)
        + encode_tlv(_TAG_PPK_CMAC, keys.s_mac),
    )


def parse_replace_session_keys(der: bytes) -> SessionKeys:
    """The PPK carried by a ReplaceSessionKeysRequest; strict on tags, order and lengths."""
    try:
        request = parse_single(der, TAG_REPLACE_SESSION_KEYS)
        require_der_length(request)
        parts = request.children()
        for part in parts:
            require_der_length(part)
    except TlvError as exc:
        raise BspError(f"ReplaceSessionKeysRequest malformed: {exc}") from None
    if [p.tag for p in parts] != [_TAG_MCV, _TAG_PPK_ENC, _TAG_PPK_CMAC]:
        raise BspError("ReplaceSessionKeysRequest: expected exactly '80', '81', '82'")
    return SessionKeys(initial_mcv=parts[0].value, s_enc=parts[1].value, s_mac=parts[2].value)
