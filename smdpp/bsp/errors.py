"""The exception raised by the BPP protection protocol and the BPP opening steps."""
from __future__ import annotations


class BspError(ValueError):
    """A BSP (SGP.22 2.6.4) or Bound Profile Package check failed.

    Raised for malformed segments, MAC mismatches, bad padding, wrong key
    lengths and invalid key agreement input.  The message names the step that
    failed (e.g. ``"MAC of segment 86 #3 (sequenceOf86) invalid"``) and never
    contains key material.
    """


class PeerKeyError(BspError):
    """The peer's one-time public key (e.g. otPK.EUICC.ECKA) is not an uncompressed point on our curve.

    Its own type lets the SM-DP+ answer it as malformed input from the eUICC
    (SGP.22 5.6.2) while other BSP failures remain errors of its own.
    """
