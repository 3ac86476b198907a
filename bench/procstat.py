"""CPU time and memory of a (server) process tree, read from Linux ``/proc``.

CPU is ``utime + stime`` of ``/proc/<pid>/stat`` (fields 14 and 15, in clock
ticks, see proc(5)); memory is ``VmRSS`` (now) and ``VmHWM`` (peak resident
set since the process started) of ``/proc/<pid>/status``.  A server started
with several workers is a parent and its children: every figure is summed
over the process and its live descendants.  For memory that sum counts
pages the processes share (code, libraries, copy-on-write after fork) once
per process, so it overstates what several workers really use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessSample", "parse_stat", "process_tree", "sample"]

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process tree."""

    cpu_seconds: float  # user + system, summed over the processes
    rss_kib: int  # VmRSS, summed
    hwm_kib: int  # VmHWM (peak RSS), summed
    processes: int


def parse_stat(text: str) -> tuple[int, float]:
    """(ppid, utime + stime in seconds) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may itself hold spaces
    or parentheses, so the fields are counted from the last ')'.
    """
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12])
    return ppid, ticks / CLOCK_TICKS


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):  # the process ended meanwhile
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (by scanning the ppid of every process)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is not None:
            children.setdefault(parse_stat(text)[0], []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def _status_kib(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # "VmRSS:     1234 kB"
    return 0


def sample(pid: int) -> ProcessSample:
    """CPU seconds and memory of ``pid`` and its descendants; ValueError if ``pid`` is gone."""
    cpu = 0.0
    rss = hwm = count = 0
    for member in process_tree(pid):
        stat = _read(PROC / str(member) / "stat")
        status = _read(PROC / str(member) / "status")
        if stat is None or status is None:
            if member == pid:
                raise ValueError(f"process {pid} does not exist")
            continue
        cpu += parse_stat(stat)[1]
        rss += _status_kib(status, "VmRSS")
        hwm += _status_kib(status, "VmHWM")
        count += 1
    return ProcessSample(cpu_seconds=cpu, rss_kib=rss, hwm_kib=hwm, processes=count)
