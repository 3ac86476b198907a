#!/usr/bin/env python3
"""SM-DP+ server (SGP.22 ES9+), started the way osmo-smdpp's users know: ./osmo-smdpp.py"""
try:  # Ctrl-C this early: a quiet exit, no traceback
    import _signal  # the C module: no enums to build, so this is instant
    # SIGINT/SIGTERM wait from here until smdpp.cli.main has its handlers (see smdpp.run)
    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})
    import sys
    from smdpp import run
except KeyboardInterrupt:
    raise SystemExit(130)

sys.exit(run())
