"""``python -m smdpp``: the same as ./osmo-smdpp.py."""
import sys

from smdpp import run

sys.exit(run())
