"""The default store of a single server process: sessions in memory, each change journalled.

A download is four ES9+ calls (SGP.22 3.1.3) and each one reads its session
and writes it back.  With one process per data folder nobody else can change
a session, so :class:`JournalStore` answers from a dict, as
:class:`~smdpp.store.memory.MemoryStore` does, and makes every change durable
with one ``write()`` of a frame to an append-only file in
``smdpp-data/sessions/``.  That costs about a tenth of a sqlite commit (a
statement, locks on the shared WAL index, a 4 KiB WAL frame) and keeps the
same promise as the sqlite store with ``synchronous=NORMAL``: a change that
was written survives a crash or kill of the process (it is in the kernel's
page cache), not necessarily a power cut of the host.

Files, all mode 0600 in a 0700 folder:

``lock``
    held with ``flock`` while the store is open: a second process on the same
    folder is refused at start (several processes share a folder with
    ``--workers N`` or ``--store shelve:``, the sqlite store).
``NNNNNNNN.journal``
    the segments, oldest first.  Each start opens a new one; the one being
    written is closed and the next begun past :data:`SEGMENT_BYTES`.  A
    segment is deleted, oldest first, once every session it mentions has
    expired, so the folder holds about ``--session-lifetime`` worth of
    changes.

A frame is ``length (4) | CRC-32 (4) | kind (1) | expires (8, float) | len(tid)
(1) | tid | record``, big-endian, the record as :class:`RecordCodec` writes it
for every store (pickled builtins, the one-time key sealed with AES-GCM under
``session-store.key``).  At start the segments are read in order, the last
frame of each TransactionId wins, and only the records still needed are
unpickled: unfinished sessions that have not expired, and the most recently
finished ones.

Damage (a frame cut short by a crash, a flipped byte failing the CRC) costs
only the damaged bytes: reading resumes at the next offset where a valid
frame starts and is followed by another valid frame or the end of the
segment (:func:`_resync`), and the start-up log says which bytes were
skipped.  What the damaged bytes held is unknown: they may have finished or
deleted any session, so a session whose last readable frame comes before
damage is in doubt and refused (not loaded: its calls get "unknown
TransactionId"), never brought back in progress.  Frames after the damage
are whole records and count as they are.

A write that fails (a full disk) is undone with ``ftruncate`` back to the
last whole frame, so no half frame stays behind and no new file is created
per failed request; only if that fails too does the next write begin a new
segment.

Memory holds the unfinished sessions and the :data:`MAX_FINISHED` most
recently finished ones (for a replayed call's log line); other finished
sessions, which no ES9+ call can move on, stay only in the journal with
their result until their segment goes.  So memory stays flat however many
sessions have finished.  Unlike the sqlite store, the sealed one-time key of
a session that has ended remains in older frames until its segment is
deleted.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from smdpp.rsp.session import Session, SessionState
from smdpp.store.record import RecordCodec, keep_recent
from smdpp.store.sealer import KEY_FILE_NAME, Sealer

log = logging.getLogger(__name__)

DIR_NAME = "sessions"
LOCK_NAME = "lock"
SUFFIX = ".journal"
SEGMENT_BYTES = 8 << 20  # a new segment past this size, so that old ones can go
MAX_FINISHED = 1024  # finished sessions still answered by get()
MAX_FRAME = 1 << 20  # a longer length field is damage, not a session record
assert MAX_FRAME < 1 << 24  # _resync looks for frames where a zero byte is

_HEADER = struct.Struct(">II")  # length of the body, CRC-32 of the body
_BODY = struct.Struct(">BdB")  # kind, expires, length of the TransactionId
# kinds of frame
_LIVE = 0  # the record of a session in progress
_FINISHED = 1  # the record of a session that has ended (done or cancelled)
_DELETED = 2  # no record: the session was deleted


class StoreInUseError(ValueError):
    """The journal folder is held by another process."""


@dataclass
class _Segment:
    """One journal file: where it is, how much it holds, when all of it has expired."""

    path: Path
    number: int
    size: int = 0
    max_expires: float = float("-inf")


class JournalStore:
    """Sessions of one process in memory, every change appended to ``<data_dir>/sessions/``."""

    def __init__(self, data_dir: Path, *, segment_bytes: int = SEGMENT_BYTES,
                 now: float | None = None) -> None:
        self.folder = data_dir / DIR_NAME
        self._segment_bytes = segment_bytes
        old_umask = os.umask(0o077)  # the folder 0700, every file 0600
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            self._codec = RecordCodec(Sealer.from_file(data_dir / KEY_FILE_NAME))
            self._lock_fd: int | None = _lock(self.folder / LOCK_NAME)
        finally:
            os.umask(old_umask)
        self._live: dict[str, dict[str, Any]] = {}  # transactionId -> record, secrets in clear
        self._finished: dict[str, dict[str, Any]] = {}  # oldest first, at most MAX_FINISHED
        self._segments: list[_Segment] = []  # oldest first; the last one is written
        self._next_number = 1
        self._fd: int | None = None
        self._torn = False  # a failed write could not be undone: the next one starts a segment
        try:
            self._read_journal(time.time() if now is None else now)
            self._open_segment()
        except BaseException:
            self.close()
            raise

    # -- SessionStore --------------------------------------------------------

    def get(self, transaction_id: str) -> Session | None:
        record = self._live.get(transaction_id) or self._finished.get(transaction_id)
        return None if record is None else Session.from_record(record)

    def put(self, session: Session) -> None:
        self._write(session)

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        # one process, one thread (the reactor): the check and the write cannot interleave
        tid = session.transaction_id
        current = self._live.get(tid) or self._finished.get(tid)
        if expected_state is None:
            if current is not None:
                return False
        elif current is None or current["state"] != expected_state.value:
            return False
        self._write(session)
        return True

    def delete(self, transaction_id: str) -> None:
        record = self._live.pop(transaction_id, None) or self._finished.pop(transaction_id, None)
        if record is not None:  # else nothing to cancel: get() already answers None
            self._append(_DELETED, transaction_id, record["expires"], b"")

    def expire(self, now: float) -> int:
        count = 0
        for records in (self._live, self._finished):
            old = [tid for tid, record in records.items() if record["expires"] < now]
            for tid in old:
                del records[tid]
            count += len(old)
        self._drop_expired_segments(now, keep=1)
        return count

    def count_by_state(self, now: float) -> dict[str, int]:
        """Sessions held in memory and unexpired, by state (for the metrics).

        Finished sessions beyond the most recent :data:`MAX_FINISHED` are only
        in the journal and not counted.
        """
        counts: dict[str, int] = {}
        for records in (self._live, self._finished):
            for record in records.values():
                if record["expires"] >= now:
                    counts[record["state"]] = counts.get(record["state"], 0) + 1
        return counts

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)  # closing the lock file releases the flock
        self._fd = self._lock_fd = None
        self._live.clear()
        self._finished.clear()

    def __len__(self) -> int:
        """Sessions that :meth:`get` answers: unfinished ones and the recently finished."""
        return len(self._live) + len(self._finished)

    # -- writing ---------------------------------------------------------------

    def _write(self, session: Session) -> None:
        """Journal ``session`` and keep its record in memory."""
        tid = session.transaction_id
        record = session.to_record()
        finished = session.state.finished
        self._append(_FINISHED if finished else _LIVE, tid, session.expires,
                     self._codec.dumps_record(tid, record))
        if finished:
            self._live.pop(tid, None)
            keep_recent(self._finished, tid, record, MAX_FINISHED)
        else:
            self._live[tid] = record
            self._finished.pop(tid, None)

    def _append(self, kind: int, tid: str, expires: float, record: bytes) -> None:
        """One frame, one ``write()``; OSError if it did not all reach the file."""
        if self._fd is None:
            raise OSError(f"session journal in {self.folder} is closed")
        key = tid.encode("ascii")
        body = _BODY.pack(kind, expires, len(key)) + key + record
        frame = _HEADER.pack(len(body), zlib.crc32(body)) + body
        segment = self._segments[-1]
        if self._torn or segment.size >= self._segment_bytes:
            segment = self._open_segment()
        try:
            written = os.write(self._fd, frame)
        except OSError:
            self._undo(segment)  # it may have written part of the frame
            raise
        if written != len(frame):  # a full disk
            self._undo(segment)
            raise OSError(errno.ENOSPC, f"{segment.path}: only {written} of {len(frame)} "
                                        "bytes written")
        segment.size += written
        if expires > segment.max_expires:
            segment.max_expires = expires

    def _undo(self, segment: _Segment) -> None:
        """Cut ``segment`` back to its last whole frame after a failed write.

        ``ftruncate`` needs no free space; if it fails anyway the next write
        begins a new segment, never after what may be half a frame.
        """
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, segment.size)
            self._torn = False
        except OSError:
            self._torn = True

    def _open_segment(self) -> _Segment:
        """Close the segment being written, if any, and start the next one."""
        number = self._next_number
        segment = _Segment(self.folder / f"{number:08d}{SUFFIX}", number)
        # the new file first: if it cannot be made the current one stays usable
        fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._next_number += 1
        self._segments.append(segment)
        self._torn = False
        return segment

    def _drop_expired_segments(self, now: float, keep: int) -> None:
        """Delete the oldest segments, in order, while every session in them has expired.

        Oldest first, so that a frame deleting a session never goes before an
        older frame holding its record; the last ``keep`` segments stay.
        """
        while len(self._segments) > keep and self._segments[0].max_expires < now:
            segment = self._segments.pop(0)
            segment.path.unlink(missing_ok=True)
            log.info("session journal %s deleted: every session in it has expired",
                     segment.path.name)

    # -- reading at start --------------------------------------------------------

    def _read_journal(self, now: float) -> None:
        """Rebuild the sessions in memory from the segments already in the folder.

        One pass, oldest frame first, one segment in memory at a time: the
        record bytes kept are those of sessions whose last frame so far says
        in progress, and of the :data:`MAX_FINISHED` most recently finished,
        so reading a long journal takes no more memory than serving it.
        Damaged bytes are skipped (:func:`_frames`); the sessions in progress
        before them are in doubt and dropped (see the module docstring).
        """
        paths = sorted(p for p in self.folder.glob(f"*{SUFFIX}") if p.stem.isdigit())
        live: dict[str, tuple[float, bytes]] = {}  # transactionId -> (expires, record bytes)
        finished: dict[str, tuple[float, bytes]] = {}  # the same, most recent last
        in_doubt: set[str] = set()
        for path in paths:
            segment = _Segment(path, int(path.stem))
            for item in _frames(path.read_bytes(), segment):
                if item is None:  # damage: whatever it held may have ended these sessions
                    in_doubt.update(live)
                    live.clear()
                    continue
                kind, expires, tid, record = item
                in_doubt.discard(tid)  # a whole frame after the damage says where it is
                if kind == _LIVE:
                    finished.pop(tid, None)
                    live[tid] = (expires, record)
                else:
                    live.pop(tid, None)
                    if kind == _FINISHED:
                        keep_recent(finished, tid, (expires, record), MAX_FINISHED)
                    else:
                        finished.pop(tid, None)
            self._segments.append(segment)
            self._next_number = segment.number + 1
        for source, target in ((finished, self._finished), (live, self._live)):
            for tid, (expires, record) in source.items():
                if expires >= now:
                    loaded = self._load(tid, record)
                    if loaded is not None:
                        target[tid] = loaded
        self._drop_expired_segments(now, keep=0)  # a new segment is opened next
        if in_doubt:
            shown = sorted(in_doubt)[:5]
            log.warning("session journal: %d session(s) in progress before damaged data refused "
                        "(the damage may have ended them): %s%s", len(in_doubt),
                        ", ".join(shown), ", ..." if len(in_doubt) > len(shown) else "")
        if paths:
            log.info("session journal: %d segment(s) read, %d session(s) in progress, "
                     "%d recently finished, %d refused as in doubt", len(paths), len(self._live),
                     len(self._finished), len(in_doubt))

    def _load(self, tid: str, record: bytes) -> dict[str, Any] | None:
        try:
            session = self._codec.loads(tid, record)
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the server
            log.warning("session journal: transactionId=%s unreadable, dropped: %s", tid, exc)
            return None
        return session.to_record()


Frame = tuple[int, float, str, bytes]  # kind, expires, transactionId, record


def _frame_at(data: bytes, offset: int) -> tuple[Frame, int] | None:
    """The whole, valid frame at ``offset`` of ``data`` and the offset past it; else None."""
    if len(data) - offset < _HEADER.size:
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    start, end = offset + _HEADER.size, offset + _HEADER.size + length
    # the cheap tests first: _resync calls this at every offset of a damaged stretch
    if length < _BODY.size or length > MAX_FRAME or end > len(data) or data[start] > _DELETED:
        return None
    if zlib.crc32(memoryview(data)[start:end]) != crc:
        return None
    kind, expires, key_length = _BODY.unpack_from(data, start)
    key_end = start + _BODY.size + key_length
    if key_end > end:
        return None
    try:
        tid = data[start + _BODY.size:key_end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return (kind, expires, tid, data[key_end:end]), end


def _resync(data: bytes, offset: int) -> int:
    """The first offset past ``offset`` where reading can resume: a valid frame that is
    followed by another valid frame or by the end of ``data`` (so that a frame-like
    stretch inside a damaged record is not taken for one); ``len(data)`` if none."""
    last = len(data) - _HEADER.size - _BODY.size
    candidate = data.find(0, offset + 1)
    # a frame's length field is below MAX_FRAME (1 MiB), so its first byte is zero
    while 0 <= candidate <= last:
        found = _frame_at(data, candidate)
        if found is not None and (found[1] == len(data) or _frame_at(data, found[1]) is not None):
            return candidate
        candidate = data.find(0, candidate + 1)
    return len(data)


def _frames(data: bytes, segment: _Segment) -> Iterator[Frame | None]:
    """The frames of one segment's ``data`` in order, None where damaged bytes were skipped.

    Each damaged stretch is logged with its offsets.  Sets the segment's
    ``size`` and ``max_expires``.
    """
    offset, size = 0, len(data)
    segment.size = size
    while offset < size:
        found = _frame_at(data, offset)
        if found is None:
            resume = _resync(data, offset)
            log.warning("session journal %s: %d damaged byte(s) at offsets %d-%d skipped%s",
                        segment.path.name, resume - offset, offset, resume - 1,
                        f", reading resumed at offset {resume}" if resume < size
                        else " (to the end: a write cut short?)")
            yield None
            offset = resume
            continue
        frame, offset = found
        if frame[1] > segment.max_expires:
            segment.max_expires = frame[1]
        yield frame


def _lock(path: Path) -> int:
    """Open and ``flock`` the lock file; StoreInUseError if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise StoreInUseError(
            f"{path.parent} is in use by another smdpp process"
            f"{f' (pid {holder})' if holder else ''}: one process per data folder with this "
            "store; several share one with --workers N or --store shelve:") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
