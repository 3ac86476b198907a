"""A SAIP Profile Package split into its Profile Elements, for reading and editing.

A Profile Package (SAIP 8.1) is a concatenation of DER ``ProfileElement``
values, ProfileHeader first and PE-End last.  :func:`parse_package` keeps each
element's bytes exactly as read, with its decoded value (``smdpp/asn1/pe.asn``)
beside them: an edit re-encodes only the element it changes, every other
element is written back as its original bytes.

Files inside the file-system elements (SAIP 8.3.2 ``File``) are a list of
``(choice, value)`` items: optionally ``fileDescriptor`` (an FCP), then
``fillFileContent`` pieces, each starting where the previous one ended
unless a ``fillFileOffset`` moves the position forward by that many bytes.
:func:`file_image` reads the content those pieces give; :func:`write_file`
overwrites a range and keeps the pieces outside it as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asn1tools import Error as Asn1Error

from smdpp.asn1 import pe
from smdpp.asn1.tlv import TlvError, read_tlv

__all__ = [
    "Element",
    "InvalidPackage",
    "parse_package",
    "encode_element",
    "file_image",
    "write_file",
    "file_room",
]

File = list[tuple[str, Any]]
_TAG_HEADER = 0xA0  # ProfileElement header [0], SAIP 8.2


class InvalidPackage(ValueError):
    """The bytes are not a SAIP Profile Package; the message names the element."""


@dataclass(frozen=True)
class Element:
    """One Profile Element: its position, CHOICE alternative, bytes and decoded value."""

    index: int  # 0-based position in the package
    kind: str  # e.g. "header", "usim", "akaParameter"; "unknown" for an extension
    raw: bytes
    value: Any  # the decoded value (None for an unknown extension)

    @property
    def identification(self) -> int | None:
        """The PEHeader ``identification`` (None for the ProfileHeader)."""
        if not isinstance(self.value, dict):
            return None
        for key, item in self.value.items():
            if key.endswith("-header") or key.endswith("-Header"):
                if isinstance(item, dict) and "identification" in item:
                    return int(item["identification"])
        return None


def parse_package(data: bytes) -> list[Element]:
    """Split and decode a Profile Package; :class:`InvalidPackage` names what is wrong."""
    spec = pe()
    elements: list[Element] = []
    if not data:
        raise InvalidPackage("not a Profile Package: the file is empty")
    offset = 0
    while offset < len(data):
        index = len(elements)
        if index == 0 and data[0] != _TAG_HEADER:
            raise InvalidPackage("not a Profile Package: the first element is not a "
                                 f"ProfileHeader (tag {data[0]:02x}, not a0)")
        try:
            tlv = read_tlv(data, offset)
        except TlvError as exc:
            raise InvalidPackage(f"not a Profile Package: element {index} at byte {offset} "
                                 f"is not well-formed TLV: {exc}") from None
        try:
            kind, value = spec.decode("ProfileElement", tlv.raw)
        except (Asn1Error, ValueError) as exc:
            raise InvalidPackage(f"not a Profile Package: element {index} (tag "
                                 f"{tlv.tag.hex()}) does not decode: {exc}") from None
        elements.append(Element(index, kind if kind is not None else "unknown", tlv.raw, value))
        offset = tlv.end
    if elements[0].kind != "header":
        raise InvalidPackage("not a Profile Package: the first element is not a "
                             f"ProfileHeader (tag {elements[0].raw[:1].hex()})")
    if elements[-1].kind != "end":
        raise InvalidPackage("not a Profile Package: the last element is not PE-End")
    return elements


def encode_element(kind: str, value: Any) -> bytes:
    """DER of one ProfileElement alternative."""
    return pe().encode("ProfileElement", (kind, value))


def _pieces(file: File) -> tuple[File, list[tuple[int, bytes]]]:
    """The items before the content, and the content pieces at absolute offsets."""
    head: File = []
    pieces: list[tuple[int, bytes]] = []
    position = 0
    for choice, item in file:
        if choice == "fillFileOffset":
            position += int(item)
        elif choice == "fillFileContent":
            pieces.append((position, bytes(item)))
            position += len(item)
        else:
            head.append((choice, item))
    return head, pieces


def fcp_of(file: File) -> dict[str, Any]:
    """The FCP a File gives (empty if it keeps the template's)."""
    for choice, item in file:
        if choice == "fileDescriptor":
            return item
    return {}


def file_image(file: File) -> bytes | None:
    """The file content the pieces write, unwritten gaps as 'FF'.

    A file without content pieces but with a fill pattern in its FCP
    (ETSI TS 102 222: the pattern, then its last byte repeated) gives the
    pattern; None when neither is there (the template's default content).
    """
    _head, pieces = _pieces(file)
    if not pieces:
        info = fcp_of(file).get("proprietaryEFInfo") or {}
        pattern = info.get("fillPattern")
        return bytes(pattern) if pattern is not None else None
    end = max(offset + len(data) for offset, data in pieces)
    image = bytearray(b"\xff" * end)
    for offset, data in pieces:
        image[offset:offset + len(data)] = data
    return bytes(image)


def content_pieces(file: File) -> list[tuple[int, bytes]]:
    """The ``(offset, content)`` pieces of a File, in order."""
    return _pieces(file)[1]


def write_file(file: File, offset: int, data: bytes) -> File:
    """A new File whose content has ``data`` at ``offset``; ``file`` is not changed.

    Bytes inside existing pieces are overwritten in place, so a value of the
    same length keeps the piece layout; bytes outside every piece become new
    pieces.  The FCP and every piece outside the range stay as they are.
    """
    head, pieces = _pieces(file)
    if any(choice == "doNotCreate" for choice, _ in head):
        raise ValueError("the template says not to create this file")
    stop = offset + len(data)
    updated: list[tuple[int, bytes]] = []
    covered = bytearray(len(data))  # 1 where an existing piece takes the byte
    for start, content in pieces:
        end = start + len(content)
        low, high = max(start, offset), min(end, stop)
        if low < high:
            content = content[:low - start] + data[low - offset:high - offset] + content[high - start:]
            covered[low - offset:high - offset] = b"\x01" * (high - low)
        updated.append((start, content))
    run_start = None
    for i in range(len(data) + 1):
        if i < len(data) and not covered[i]:
            run_start = i if run_start is None else run_start
        elif run_start is not None:
            updated.append((offset + run_start, data[run_start:i]))
            run_start = None
    updated.sort(key=lambda piece: piece[0])
    result: File = list(head)
    position = 0
    for start, content in updated:
        if start > position:
            result.append(("fillFileOffset", start - position))
        result.append(("fillFileContent", content))
        position = start + len(content)
    return result


def file_room(file: File, offset: int) -> int | None:
    """How many bytes from ``offset`` fit before the next piece, record end or file end.

    The record length comes from a linear fixed file's descriptor (ETSI TS
    102 221 11.1.1.4.3: bytes 3-4), the file size from ``efFileSize``; None
    when the FCP gives neither (the template's default size is not known here).
    """
    fcp = fcp_of(file)
    limits: list[int] = []
    descriptor = fcp.get("fileDescriptor")
    if descriptor is not None and len(descriptor) >= 4 and descriptor[0] & 0x07 == 0x02:
        record = int.from_bytes(descriptor[2:4], "big")
        if record:
            limits.append((offset // record + 1) * record)
    size = fcp.get("efFileSize")
    if size is not None:
        limits.append(int.from_bytes(size, "big"))
    if not limits:
        return None
    for start, _content in content_pieces(file):
        if start > offset:
            limits.append(start)
    return min(limits) - offset
