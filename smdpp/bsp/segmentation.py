"""Cutting data into BSP segments within the size limit (SGP.22 2.5.5).

The value of every segment TLV, MAC included, stays within 1020 octets.  For
an encrypted segment ('86', '87') that leaves 1012 octets, of which the
largest multiple of 16 is 1008; the padding takes at least one octet, so one
segment carries at most 1007 plaintext octets (the chunk size seen in the
third-party trace).  A MAC-only segment ('88') carries up to 1012 octets.
The receiver concatenates the plaintexts of a sequence of segments.
"""
from __future__ import annotations

from smdpp.bsp.errors import BspError
from smdpp.bsp.session import (
    MAC_LENGTH,
    MAX_SEGMENT_VALUE,
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspSession,
)

__all__ = ["MAX_ENCRYPTED_DATA", "MAX_MAC_ONLY_DATA", "max_segment_data", "split_data",
           "protect_segmented"]

MAX_MAC_ONLY_DATA = MAX_SEGMENT_VALUE - MAC_LENGTH  # 1012
MAX_ENCRYPTED_DATA = (MAX_SEGMENT_VALUE - MAC_LENGTH) // 16 * 16 - 1  # 1007


def max_segment_data(tag: bytes) -> int:
    """Largest plaintext one segment with ``tag`` can carry."""
    if tag in (TAG_PROFILE_SEGMENT, TAG_MAC_AND_ENC):
        return MAX_ENCRYPTED_DATA
    if tag == TAG_MAC_ONLY:
        return MAX_MAC_ONLY_DATA
    raise BspError(f"no BSP protection for tag {tag.hex()}")


def split_data(data: bytes, tag: bytes) -> list[bytes]:
    """Cut ``data`` (non-empty) into the fewest chunks that each fit one ``tag`` segment."""
    if not data:
        raise BspError(f"nothing to protect in segment {tag.hex()}")
    size = max_segment_data(tag)
    return [data[i:i + size] for i in range(0, len(data), size)]


def protect_segmented(session: BspSession, tag: bytes, data: bytes) -> list[bytes]:
    """Protect ``data`` as consecutive ``tag`` segments; return the segment TLVs in order."""
    return [session.protect(tag, chunk) for chunk in split_data(data, tag)]
