"""ES8+: the Bound Profile Package (SGP.22 2.5.5, 5.5), built on the BSP of :mod:`smdpp.bsp`.

- :mod:`smdpp.es8p.initialise_secure_channel`: BF23 and smdpSign;
- :mod:`smdpp.es8p.replace_session_keys`: BF26, the Profile Protection Keys;
- :mod:`smdpp.es8p.protected_profile`: a UPP protected once under its own PPKs;
- :mod:`smdpp.es8p.binding`: the SM-DP+ side, :func:`bind_profile_package`;
- :mod:`smdpp.es8p.opening`: the eUICC side, :func:`open_bound_profile_package`.
"""
from smdpp.es8p.binding import BoundProfilePackage, bind_profile_package, new_one_time_key
from smdpp.es8p.initialise_secure_channel import (
    InitialiseSecureChannelRequest,
    encode_initialise_secure_channel,
    parse_initialise_secure_channel,
    verify_smdp_sign,
)
from smdpp.es8p.opening import OpenedProfilePackage, open_bound_profile_package
from smdpp.es8p.protected_profile import ProtectedProfilePackage, protect_profile_package
from smdpp.es8p.replace_session_keys import (
    encode_replace_session_keys,
    parse_replace_session_keys,
)

__all__ = [
    "BoundProfilePackage",
    "bind_profile_package",
    "new_one_time_key",
    "InitialiseSecureChannelRequest",
    "encode_initialise_secure_channel",
    "parse_initialise_secure_channel",
    "verify_smdp_sign",
    "OpenedProfilePackage",
    "ProtectedProfilePackage",
    "protect_profile_package",
    "open_bound_profile_package",
    "encode_replace_session_keys",
    "parse_replace_session_keys",
]
