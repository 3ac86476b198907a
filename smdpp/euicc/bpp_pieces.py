"""ES10b.LoadBoundProfilePackage in pieces, as an LPA sends it (SGP.22 5.7.6, 2.5.5).

The LPA does not send the BF36 in one ES10 command: it sends, each as its
own STORE DATA command,

1. the tag and length of 'BF36' followed by the whole InitialiseSecureChannel 'BF23';
2. firstSequenceOf87 'A0' (ConfigureISDP), whole;
3. the tag and length of sequenceOf88 'A1', then each '88' (StoreMetadata) alone;
4. secondSequenceOf87 'A2' (ReplaceSessionKeys), whole, if the BPP has one;
5. the tag and length of sequenceOf86 'A3', then each '86' (the profile) alone.

:class:`BppAssembler` checks each piece against that order (an explicit
transition table) and joins them; when the last '86' completes the declared
BF36 length it hands back the whole package (the card has opened it piece by
piece meanwhile, :mod:`smdpp.euicc.bpp_stream`).  A piece
that does not fit raises :class:`BppPieceError` naming the BPP part it was
due for, so the eUICC can end the session with the error that SGP.22 gives.
"""
from __future__ import annotations

from dataclasses import dataclass

from smdpp.euicc.installation import BPP_COMMAND, ERROR_REASON

__all__ = ["BppAssembler", "BppPieceError", "read_header", "MAX_BPP"]

#: The largest BF36 the virtual card takes (a profile is tens of kilobytes).
MAX_BPP = 2 * 1024 * 1024


class BppPieceError(ValueError):
    """A piece out of order or malformed; ``error`` is (bppCommandId, errorReason)."""

    def __init__(self, error: tuple[int, int], why: str) -> None:
        super().__init__(why)
        self.error = error


def read_header(data: bytes) -> tuple[bytes, int, int]:
    """(tag, length, header size) of the BER-TLV at the start of ``data`` (X.690 8.1.2-8.1.3).

    The value need not follow (a piece may be a header only).  ValueError when
    the header itself is truncated or uses the indefinite form.
    """
    if not data:
        raise ValueError("empty")
    i = 1
    if data[0] & 0x1F == 0x1F:  # multi-byte tag
        while True:
            if i >= len(data) or i > 3:
                raise ValueError("truncated tag")
            i += 1
            if not data[i - 1] & 0x80:
                break
    tag = data[:i]
    if i >= len(data):
        raise ValueError("no length")
    first = data[i]
    i += 1
    if first < 0x80:
        return tag, first, i
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError("indefinite or oversized length")
    if i + count > len(data):
        raise ValueError("truncated length")
    return tag, int.from_bytes(data[i:i + count], "big"), i + count


def _error(part: str, reason: str) -> tuple[int, int]:
    return BPP_COMMAND[part], ERROR_REASON[reason]


@dataclass(frozen=True)
class _Step:
    """One allowed piece in a state: its tag, whether it is a header only, the next state."""

    tag: bytes
    header_only: bool
    next_state: str


# state -> the pieces allowed there (SGP.22 5.7.6 order); "in88"/"in86" stay until the
# container's declared length is used up, then move on to the state named in _CONTAINER_END.
_TABLE: dict[str, tuple[_Step, ...]] = {
    "start": (),  # only the BF36 piece, see _first
    "isc": (_Step(b"\xa0", False, "first87"),),
    "first87": (_Step(b"\xa1", True, "in88"), _Step(b"\xa1", False, "after88")),
    "in88": (_Step(b"\x88", False, "in88"),),
    "after88": (_Step(b"\xa2", False, "second87"), _Step(b"\xa3", True, "in86"),
                _Step(b"\xa3", False, "end")),
    "second87": (_Step(b"\xa3", True, "in86"), _Step(b"\xa3", False, "end")),
    "in86": (_Step(b"\x86", False, "in86"),),
}
_CONTAINER_END = {"in88": "after88", "in86": "end"}
# which BPP command a piece due in a state belongs to, for the error (bppCommandId)
_PART = {"start": "initialiseSecureChannel", "isc": "configureISDP", "first87": "storeMetadata",
         "in88": "storeMetadata", "after88": "replaceSessionKeys", "second87": "loadProfileElements",
         "in86": "loadProfileElements"}


class BppAssembler:
    """Joins the pieces of one LoadBoundProfilePackage; see the module docstring."""

    def __init__(self, max_size: int = MAX_BPP) -> None:
        self.max_size = max_size
        self.state = "start"
        self._parts: list[bytes] = []
        self._declared = 0  # BF36 value length
        self._received = 0  # value bytes of BF36 received so far
        self._container_left = 0  # bytes left in the open A1 / A3

    @property
    def started(self) -> bool:
        """True once the BF36 piece arrived and until the package is complete or refused."""
        return self.state not in ("start", "end")

    def feed(self, piece: bytes) -> bytes | None:
        """Take one piece; the whole BF36 when it is complete, else None.

        BppPieceError if the piece is malformed or not the one due; the
        assembler is then back at its start.
        """
        try:
            return self._feed(piece)
        except BppPieceError:
            self.__init__(self.max_size)  # type: ignore[misc]
            raise

    def _feed(self, piece: bytes) -> bytes | None:
        state = self.state
        part = _PART.get(state, "initialiseSecureChannel")
        try:
            tag, length, header = read_header(piece)
        except ValueError as exc:
            raise BppPieceError(_error(part, "scp03tStructureError" if state != "start"
                                       else "incorrectInputValues"),
                                f"piece due for {part}: unreadable header ({exc})") from None
        if state == "start" and tag == b"\xbf\x36":
            return self._first(piece, length, header)
        header_only = len(piece) == header and length > 0  # a container's tag and length alone
        step = next((s for s in _TABLE.get(state, ()) if s.tag == tag and s.header_only == header_only),
                    None)
        if step is None:
            raise BppPieceError(_error(part, "scp03tStructureError" if state != "start"
                                       else "incorrectInputValues"),
                                f"piece with tag {tag.hex()} where {part} was due")
        if not step.header_only and len(piece) != header + length:
            raise BppPieceError(_error(part, "scp03tStructureError"),
                                f"piece {tag.hex()} of {len(piece) - header} value bytes declares {length}")
        self._take(piece, part)
        if state in _CONTAINER_END:
            self._container_left -= len(piece)
            if self._container_left < 0:
                raise BppPieceError(_error(part, "scp03tStructureError"),
                                    f"segment {tag.hex()} overruns its sequence")
            self.state = _CONTAINER_END[state] if self._container_left == 0 else state
        else:
            self.state = step.next_state
            if step.header_only:
                self._container_left = length
        if self.state == "end":
            if self._received != self._declared:
                raise BppPieceError(_error(part, "scp03tStructureError"),
                                    f"BF36 declares {self._declared} bytes, the pieces hold "
                                    f"{self._received}")
            bpp = b"".join(self._parts)
            self.__init__(self.max_size)  # type: ignore[misc]
            return bpp
        return None

    def _first(self, piece: bytes, length: int, header: int) -> None:
        """'BF36' tag and length, then one whole 'BF23'."""
        if length > self.max_size:
            raise BppPieceError(_error("initialiseSecureChannel", "incorrectInputValues"),
                                f"BF36 of {length} bytes exceeds {self.max_size}")
        rest = piece[header:]
        try:
            tag, inner, inner_header = read_header(rest)
        except ValueError as exc:
            raise BppPieceError(_error("initialiseSecureChannel", "incorrectInputValues"),
                                f"InitialiseSecureChannel unreadable: {exc}") from None
        if tag != b"\xbf\x23" or len(rest) != inner_header + inner:
            raise BppPieceError(_error("initialiseSecureChannel", "incorrectInputValues"),
                                "the first piece must be the BF36 header and one whole BF23")
        self._declared = length
        self._parts = [piece]
        self._received = len(rest)
        self.state = "isc"

    def _take(self, piece: bytes, part: str) -> None:
        self._received += len(piece)
        if self._received > self._declared:
            raise BppPieceError(_error(part, "scp03tStructureError"),
                                f"the pieces exceed the {self._declared} bytes BF36 declares")
        self._parts.append(piece)
