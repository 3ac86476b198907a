"""``python -m smdpp``: the same as ./osmo-smdpp.py."""
import sys

from smdpp.cli import main

sys.exit(main())
