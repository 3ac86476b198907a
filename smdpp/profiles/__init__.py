"""Profiles: the UPP inventory, a generated test profile, and personalization.

* :mod:`smdpp.profiles.inventory` loads the Unprotected Profile Packages
  (``<matchingId>.der``) and reads their ProfileHeader for the metadata;
* :mod:`smdpp.profiles.generate` builds a TS.48-like USIM test profile;
* :mod:`smdpp.profiles.identifiers` codes ICCID and IMSI the ways a profile
  stores them;
* :mod:`smdpp.profiles.personalize` writes a :class:`Subscription`'s ICCID,
  IMSI, keys, PINs and SPN into a template package, with
  :mod:`~smdpp.profiles.elements` (the package as Profile Elements, file
  content editing), :mod:`~smdpp.profiles.subscription` (the checked values),
  :mod:`~smdpp.profiles.codings` (EF.SPN / ACC / AD, PIN values),
  :mod:`~smdpp.profiles.ims` (IMPI / IMPU, TS 23.003) and
  :mod:`~smdpp.profiles.milenage` (OPc, TS 35.206);
* :mod:`~smdpp.profiles.batch` (CSV), :mod:`~smdpp.profiles.show` and
  :mod:`~smdpp.profiles.cli` make the ``smdpp-profile`` command.
"""
from smdpp.profiles.generate import generate_default_test_profile, generate_test_profile
from smdpp.profiles.personalize import PersonalizationError, Template, personalize
from smdpp.profiles.subscription import FieldError, Subscription
from smdpp.profiles.inventory import (
    InvalidUpp,
    Profile,
    ProfileInventory,
    ensure_test_profile,
)

__all__ = [
    "FieldError",
    "PersonalizationError",
    "Subscription",
    "Template",
    "personalize",
    "InvalidUpp",
    "Profile",
    "ProfileInventory",
    "ensure_test_profile",
    "generate_default_test_profile",
    "generate_test_profile",
]
