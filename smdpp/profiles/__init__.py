"""Profiles: the UPP inventory and a generated test profile.

* :mod:`smdpp.profiles.inventory` loads the Unprotected Profile Packages
  (``<matchingId>.der``) and reads their ProfileHeader for the metadata;
* :mod:`smdpp.profiles.generate` builds a TS.48-like USIM test profile;
* :mod:`smdpp.profiles.identifiers` codes ICCID and IMSI the ways a profile
  stores them.
"""
from smdpp.profiles.generate import generate_default_test_profile, generate_test_profile
from smdpp.profiles.inventory import (
    InvalidUpp,
    Profile,
    ProfileInventory,
    ensure_test_profile,
)

__all__ = [
    "InvalidUpp",
    "Profile",
    "ProfileInventory",
    "ensure_test_profile",
    "generate_default_test_profile",
    "generate_test_profile",
]
