"""The Protected Profile Package: a UPP protected once under its own PPKs (SGP.22 2.5.4, 2.5.5).

SGP.22 lets the SM-DP+ protect a profile's '86' segments under random
Profile Protection Keys (PPK-ENC, PPK-CMAC, an initial MAC chaining value)
ahead of any download, and then bind it to each eUICC by sending those PPKs
in a ReplaceSessionKeys protected under that download's session keys.  Doing
the AES work once per profile instead of once per download makes the cost of
a download independent of the profile size, apart from copying the bytes.

The PPKs are random per :class:`ProtectedProfilePackage`, live in memory only
and are never shared between two profiles; a server restart makes new ones.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from smdpp.asn1.tlv import encode_tlv
from smdpp.bsp import KEY_LENGTH_AES128, TAG_PROFILE_SEGMENT, BspSession, SessionKeys, protect_segmented
from smdpp.es8p.bound_profile_package import TAG_SEQUENCE_OF_86

__all__ = ["ProtectedProfilePackage", "protect_profile_package"]


@dataclass(frozen=True, slots=True)
class ProtectedProfilePackage:
    """A UPP's '86' segments under its PPKs, ready to go into any number of BPPs."""

    ppk: SessionKeys = field(repr=False)  # secret; SessionKeys' own repr hides it too
    sequence_of_86: bytes  # the whole sequenceOf86 data object ('A3')


def protect_profile_package(upp: bytes) -> ProtectedProfilePackage:
    """Protect ``upp`` under fresh random PPKs (SGP.22 2.5.5: '86' segments)."""
    ppk = SessionKeys(s_enc=os.urandom(KEY_LENGTH_AES128), s_mac=os.urandom(KEY_LENGTH_AES128),
                      initial_mcv=os.urandom(KEY_LENGTH_AES128))
    segments = protect_segmented(BspSession(ppk), TAG_PROFILE_SEGMENT, upp)
    return ProtectedProfilePackage(ppk=ppk, sequence_of_86=encode_tlv(TAG_SEQUENCE_OF_86,
                                                                      b"".join(segments)))
