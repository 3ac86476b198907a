"""Hardware event counters of one thread (Linux ``perf_event_open``), for the benchmarks.

Instructions retired stay steady where CPU time drifts with a shared
machine, so they compare two versions of the code; cycles beside them show
how fast those instructions ran (``bench.download --instructions``,
``bench.engine --instructions``).
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["PerfCounter"]


class PerfCounter:
    """Instructions (or CPU cycles) retired by one thread, from a Linux perf event counter.

    ``pid`` 0 is the calling thread; another pid is that process's main
    thread (the benchmark's single-process server).  ``kernel`` counts what
    the thread runs in the kernel (its system calls) instead of user space;
    ``cycles`` counts CPU cycles instead of instructions.
    """

    _SYSCALL = {"x86_64": 298, "aarch64": 241}  # perf_event_open
    _EXCLUDE_USER, _EXCLUDE_KERNEL, _EXCLUDE_HV = 1 << 4, 1 << 5, 1 << 6
    _CPU_CYCLES, _INSTRUCTIONS = 0, 1  # PERF_TYPE_HARDWARE events

    def __init__(self, pid: int = 0, kernel: bool = False, cycles: bool = False) -> None:
        number = self._SYSCALL.get(platform.machine())
        if number is None:
            raise OSError(f"perf_event_open: unknown system call number on {platform.machine()}")
        flags = self._EXCLUDE_HV | (self._EXCLUDE_USER if kernel else self._EXCLUDE_KERNEL)
        event = self._CPU_CYCLES if cycles else self._INSTRUCTIONS
        # struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): type, size, config,
        # sample_period, sample_type, read_format, flags, then fields left zero
        attr = (ctypes.c_uint8 * 64)()
        ctypes.memmove(attr, (0).to_bytes(4, "little") + (64).to_bytes(4, "little")
                       + event.to_bytes(8, "little") + bytes(24)
                       + flags.to_bytes(8, "little"), 48)
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.syscall(number, attr, pid, -1, -1, 0)  # that thread, any CPU
        if fd < 0:
            raise OSError(ctypes.get_errno(), "perf_event_open failed "
                          "(see /proc/sys/kernel/perf_event_paranoid)")
        self._fd = fd

    def __call__(self) -> int:
        return int.from_bytes(os.read(self._fd, 8), "little")

    def close(self) -> None:
        os.close(self._fd)
