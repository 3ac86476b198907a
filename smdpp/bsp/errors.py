"""The exception raised by the BPP protection protocol and the BPP opening steps."""
from __future__ import annotations


class BspError(ValueError):
    """A BSP (SGP.22 2.6.4) or Bound Profile Package check failed.

    Raised for malformed segments, MAC mismatches, bad padding, wrong key
    lengths and invalid key agreement input.  The message names the step that
    failed (e.g. ``"MAC of segment 86 #3 (sequenceOf86) invalid"``) and never
    contains key material.
    """
