"""``python -m bench.profiled_server OUT [smdpp options]``: smdpp under cProfile, for one window.

The server runs as ``./osmo-smdpp.py`` would (:func:`smdpp.cli.main`), with a
profiler that is switched on by SIGUSR1 and switched off by SIGUSR2, which
also writes the statistics to ``OUT``.  The benchmark sends them around its
measured downloads, so start-up, ASN.1 compilation and the warm-up stay out
of the profile.  Only the process that receives the signals (the main
thread of the first process) is profiled.
"""
from __future__ import annotations

import cProfile
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Sequence

__all__ = ["main", "START_SIGNAL", "STOP_SIGNAL"]

START_SIGNAL = signal.SIGUSR1
STOP_SIGNAL = signal.SIGUSR2


def main(argv: Sequence[str] | None = None) -> int:
    """Install the signal handlers, then run the server with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m bench.profiled_server OUT [smdpp options]", file=sys.stderr)
        return 2
    out = Path(args.pop(0))
    # The default (wall-clock) timer: a CPU-time timer costs a system call per
    # event and would distort the figures far more.  The time spent waiting in
    # epoll for the next request is idle time; the report leaves it out.
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(str(out))

    signal.signal(START_SIGNAL, start)
    signal.signal(STOP_SIGNAL, stop)
    from smdpp.cli import main as smdpp_main
    return smdpp_main(args)


if __name__ == "__main__":
    sys.exit(main())
