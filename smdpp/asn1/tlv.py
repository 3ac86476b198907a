"""Raw BER-TLV helpers (ITU-T X.690 8.1) that keep the received bytes untouched.

Signatures in SGP.22 are computed over DER bytes as sent (e.g. ``euiccSigned1``
in 5.6.3, ``profileInstallationResultData`` in 5.6.4).  These helpers find the
exact byte range of a data object so that it can be verified without decoding
and re-encoding it.  Tags are handled as their raw bytes (``b"\\xbf\\x38"``),
the way SGP.22 writes them ('BF38').
"""
from __future__ import annotations

from typing import Iterator, NamedTuple


class TlvError(ValueError):
    """The bytes are not well-formed BER-TLV."""


class Tlv(NamedTuple):
    """One data object inside ``data``: tag bytes and the offsets of its parts.

    A named tuple rather than a dataclass: every ES9+ request is walked
    object by object, and a tuple is the cheapest immutable record to make.
    """

    data: bytes
    tag: bytes
    start: int  # offset of the first tag byte
    value_start: int  # offset of the first value byte
    end: int  # offset just past the value

    @property
    def value(self) -> bytes:
        """The value (contents) bytes."""
        return self.data[self.value_start:self.end]

    @property
    def raw(self) -> bytes:
        """Tag, length and value exactly as they appear in ``data``."""
        return self.data[self.start:self.end]

    @property
    def constructed(self) -> bool:
        """True for a constructed encoding (bit 6 of the first tag byte)."""
        return bool(self.tag[0] & 0x20)

    def children(self) -> list["Tlv"]:
        """The data objects nested in this constructed object's value."""
        data, offset, end = self.data, self.value_start, self.end
        found = []
        while offset < end:
            tlv = read_tlv(data, offset, end)
            found.append(tlv)
            offset = tlv.end
        return found

    def child(self, tag: bytes) -> "Tlv | None":
        """The first nested object with ``tag``, or None."""
        for tlv in iter_tlvs(self.data, self.value_start, self.end):
            if tlv.tag == tag:
                return tlv
        return None


# One-byte tags as ready-made bytes objects: no slice per data object.
_ONE_BYTE_TAGS = tuple(bytes((i,)) for i in range(256))
_new_tuple = tuple.__new__  # Tlv(...) without the generated __new__'s extra call


def read_tlv(data: bytes, offset: int = 0, end: int | None = None) -> Tlv:
    """Parse the data object that starts at ``offset`` (definite lengths only, as DER)."""
    if end is None:
        end = len(data)
    # Fast path for what RSP data objects use: one- or two-byte tags ('80', 'BF38',
    # '5F37') and lengths up to 65535; anything else, and every error, takes _read_tlv.
    if offset + 3 < end:
        first = data[offset]
        if first & 0x1F != 0x1F:
            tag = _ONE_BYTE_TAGS[first]
            pos = offset + 1
        elif not data[offset + 1] & 0x80:
            tag = bytes(data[offset:offset + 2])
            pos = offset + 2
        else:
            return _read_tlv(data, offset, end)
        length = data[pos]
        if length < 0x80:
            pos += 1
        elif length == 0x81 and pos + 1 < end:
            length = data[pos + 1]
            pos += 2
        elif length == 0x82 and pos + 2 < end:
            length = (data[pos + 1] << 8) | data[pos + 2]
            pos += 3
        else:
            return _read_tlv(data, offset, end)
        stop = pos + length
        if stop > end:
            raise TlvError("value runs past the end of its container")
        return _new_tuple(Tlv, (data, tag, offset, pos, stop))
    return _read_tlv(data, offset, end)


def _read_tlv(data: bytes, offset: int, end: int) -> Tlv:
    """:func:`read_tlv` for every form: multi-byte tags, long-form lengths, errors."""
    pos = offset
    if pos >= end:
        raise TlvError("missing tag")
    first = data[pos]
    pos += 1
    if first & 0x1F == 0x1F:  # high tag number form: more tag bytes while bit 8 is set
        while True:
            if pos >= end:
                raise TlvError("truncated tag")
            b = data[pos]
            pos += 1
            if not b & 0x80:
                break
            if pos - offset > 4:
                raise TlvError("tag too long")
    tag = bytes(data[offset:pos])
    if pos >= end:
        raise TlvError("missing length")
    length = data[pos]
    pos += 1
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise TlvError("unsupported length form")
        if pos + count > end:
            raise TlvError("truncated length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise TlvError("value runs past the end of its container")
    return Tlv(data, tag, offset, pos, pos + length)


def iter_tlvs(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[Tlv]:
    """Yield the consecutive data objects in ``data[offset:end]``."""
    end = len(data) if end is None else end
    while offset < end:
        tlv = read_tlv(data, offset, end)
        yield tlv
        offset = tlv.end


def parse_single(data: bytes, tag: bytes | None = None) -> Tlv:
    """Parse ``data`` as exactly one data object (optionally with the given tag)."""
    tlv = read_tlv(data)
    if tlv.end != len(data):
        raise TlvError("trailing bytes after the data object")
    if tag is not None and tlv.tag != tag:
        raise TlvError(f"expected tag {tag.hex()}, got {tlv.tag.hex()}")
    return tlv


def encode_length(length: int) -> bytes:
    """DER length octets (X.690 8.1.3)."""
    if length < 0x80:
        return _ONE_BYTE_TAGS[length]
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: bytes, value: bytes) -> bytes:
    """Tag, DER length and value."""
    return tag + encode_length(len(value)) + value
