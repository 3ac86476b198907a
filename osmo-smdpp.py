#!/usr/bin/env python3
"""SM-DP+ server (SGP.22 ES9+), started the way osmo-smdpp's users know: ./osmo-smdpp.py"""
import sys

from smdpp.cli import main

sys.exit(main())
