#!/usr/bin/env python3
"""SM-DP+ server (SGP.22 ES9+), started the way osmo-smdpp's users know: ./osmo-smdpp.py"""
import sys

try:  # Ctrl-C while the first module loads: a quiet exit, no traceback
    from smdpp import run
except KeyboardInterrupt:
    sys.exit(130)

sys.exit(run())
