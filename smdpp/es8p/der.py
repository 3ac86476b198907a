"""Strict DER checks on raw TLVs received in a Bound Profile Package."""
from __future__ import annotations

from smdpp.asn1.tlv import Tlv, TlvError, encode_length

__all__ = ["require_der_length", "require_tags"]


def require_der_length(tlv: Tlv) -> None:
    """Raise TlvError unless ``tlv`` has its length in the minimal form DER requires (X.690 10.1)."""
    if tlv.data[tlv.start + len(tlv.tag):tlv.value_start] != encode_length(tlv.end - tlv.value_start):
        raise TlvError(f"length of {tlv.tag.hex()} not in minimal (DER) form")


def require_tags(children: list[Tlv], expected: list[bytes], what: str) -> None:
    """Raise TlvError unless ``children`` carry exactly the tags ``expected``, in order."""
    got = [c.tag for c in children]
    if got != expected:
        raise TlvError(f"{what}: expected tags {' '.join(t.hex() for t in expected)}, "
                       f"got {' '.join(t.hex() for t in got) or 'none'}")
    for child in children:
        require_der_length(child)
