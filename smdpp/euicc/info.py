"""EUICCInfo1 and EUICCInfo2 of the software eUICC (SGP.22 5.7.8, ES10b.GetEUICCInfo).

euiccInfo1 (BF20) goes to the SM-DP+ in ES9+.InitiateAuthentication so that it
can pick a CI both sides trust; euiccInfo2 (BF22) is part of euiccSigned1 in
the AuthenticateServer response.  The values describe a plain consumer eUICC
of SGP.22 v2.2 that trusts one CI for verification and signing.
"""
from __future__ import annotations

from dataclasses import dataclass

from smdpp.asn1 import rsp

__all__ = ["EuiccCapabilities", "named_bits", "encode_euicc_info1", "encode_euicc_info2"]


def named_bits(*positions: int) -> tuple[bytes, int]:
    """An asn1tools BIT STRING value with the given named bits set.

    DER (X.690 11.2.2) drops trailing zero bits of a named-bit string, so the
    length is exactly up to the highest bit set.
    """
    if not positions:
        return b"", 0
    nbits = max(positions) + 1
    value = 0
    for p in positions:
        value |= 1 << (nbits - 1 - p)
    length = (nbits + 7) // 8
    return (value << (8 * length - nbits)).to_bytes(length, "big"), nbits


@dataclass(frozen=True)
class EuiccCapabilities:
    """Version numbers and capabilities the eUICC reports (SGP.22 5.7.8)."""

    svn: bytes = b"\x02\x02\x00"  # SGP.22 version supported
    profile_version: bytes = b"\x02\x03\x00"  # SIMalliance/TCA Profile Package version
    firmware_version: bytes = b"\x01\x00\x00"
    pp_version: bytes = b"\x01\x00\x00"  # Protection Profile version
    # ETSI TS 102 226 8.2.1.3.2: '81' installed applications, '82' free NVM, '83' free RAM.
    ext_card_resource: bytes = bytes.fromhex("810100820310000083021000")
    # usimSupport(1), isimSupport(2), akaMilenage(4)
    uicc_capability: tuple[int, ...] = (1, 2, 4)
    # additionalProfile(0), testProfileSupport(3)
    rsp_capability: tuple[int, ...] = (0, 3)
    sas_accreditation_number: str = "SMDPP-SOFT-EUICC"


def _ci_lists(ci_pkids: list[bytes]) -> dict[str, list[bytes]]:
    return {"euiccCiPKIdListForVerification": ci_pkids, "euiccCiPKIdListForSigning": ci_pkids}


def encode_euicc_info1(caps: EuiccCapabilities, ci_pkid: bytes) -> bytes:
    """DER of EUICCInfo1 (BF20) listing ``ci_pkid`` for verification and signing."""
    return rsp().encode("EUICCInfo1", {"svn": caps.svn, **_ci_lists([ci_pkid])})


def encode_euicc_info2(caps: EuiccCapabilities, ci_pkid: bytes) -> bytes:
    """DER of EUICCInfo2 (BF22)."""
    return rsp().encode("EUICCInfo2", {
        "profileVersion": caps.profile_version,
        "svn": caps.svn,
        "euiccFirmwareVer": caps.firmware_version,
        "extCardResource": caps.ext_card_resource,
        "uiccCapability": named_bits(*caps.uicc_capability),
        "rspCapability": named_bits(*caps.rsp_capability),
        **_ci_lists([ci_pkid]),
        "ppVersion": caps.pp_version,
        "sasAcreditationNumber": caps.sas_accreditation_number,
    })
