"""ASN.1 modules written for smdpp, compiled once with asn1tools.

``rsp.asn`` is the subset of the SGP.22 RSPDefinitions (chapter 5 and annex H)
that ES9+ and ES8+ need; ``pe.asn`` is the subset of the SIMalliance/TCA eUICC
Profile Package (SAIP) definitions used to read and generate test profiles.

asn1tools 0.169.0 decodes OBJECT IDENTIFIERs whose first arc is 2 and second
arc is 40 or more wrongly (``2.999.10`` comes back as ``26.39.10``; its encoder
is right).  SGP.26's SM-DP+ OID is exactly such a value, so the BER/DER decoder
is given :func:`decode_oid` below, which follows X.690 8.19 exactly.  Its
DER decoder of SEQUENCE OF never ends on an element of the wrong type; it is
given :func:`decode_array_content`, which refuses one.
"""
from __future__ import annotations

import functools
from pathlib import Path

import asn1tools
from asn1tools.codecs import ber as _ber
from asn1tools.codecs import der as _der

_HERE = Path(__file__).resolve().parent


def decode_oid(data: bytes, offset: int, end_offset: int) -> str:
    """Decode OBJECT IDENTIFIER contents octets (X.690 8.19) to dotted form.

    The first subidentifier packs the first two arcs as ``X*40 + Y``; only X in
    {0, 1} limits Y to 0..39, so any value of 80 or more means X = 2.
    """
    arcs: list[int] = []
    value = 0
    pending = False
    for b in data[offset:end_offset]:
        value = (value << 7) | (b & 0x7F)
        pending = True
        if not b & 0x80:
            arcs.append(value)
            value = 0
            pending = False
    if pending or not arcs:
        raise _ber.DecodeError("malformed OBJECT IDENTIFIER", offset=offset)
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


# The BER (and so DER) ObjectIdentifier type looks this name up at call time.
_ber.decode_object_identifier = decode_oid


def decode_array_content(self: _der.ArrayType, data: bytes, offset: int,
                         length: int) -> tuple[list, int]:
    """Contents of a SEQUENCE OF / SET OF (X.690 8.10 / 8.12), one element after another.

    asn1tools 0.169.0 loops forever when an element does not match the
    element type: a non-extensible CHOICE answers "tag mismatch" without
    consuming a byte, and its loop asks again at the same offset.  One
    hostile byte in a profile package (or an ES9+ message) must be a decode
    error, so an element that does not move the offset forward is refused.
    """
    decoded = []
    start_offset = offset
    while offset - start_offset < length:
        element, next_offset = self.element_type.decode(data, offset)
        if next_offset <= offset:
            raise _ber.DecodeError("an element of a SEQUENCE OF does not match its type",
                                   offset=offset)
        decoded.append(element)
        offset = next_offset
    return decoded, offset


_der.ArrayType.decode_content = decode_array_content


@functools.cache
def rsp() -> asn1tools.compiler.Specification:
    """The SGP.22 RSP definitions subset, DER codec (compiled on first use)."""
    return asn1tools.compile_files([str(_HERE / "rsp.asn")], "der")


@functools.cache
def pe() -> asn1tools.compiler.Specification:
    """The SAIP profile element subset, DER codec (compiled on first use)."""
    return asn1tools.compile_files([str(_HERE / "pe.asn")], "der")
