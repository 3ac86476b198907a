"""The BPP protection protocol, BSP (SGP.22 2.6.4; GlobalPlatform SCP03t as SGP.22 profiles it).

- :mod:`smdpp.bsp.keys`: ECKA shared secret and X9.63 derivation of S-ENC, S-MAC, MCV;
- :mod:`smdpp.bsp.session`: protecting / verifying one '86', '87' or '88' segment;
- :mod:`smdpp.bsp.segmentation`: cutting data into segments within the size limit.
"""
from smdpp.bsp.errors import BspError, PeerKeyError
from smdpp.bsp.keys import (
    KEY_LENGTH_AES128,
    KEY_TYPE_AES,
    SessionKeys,
    bsp_shared_info,
    derive_session_keys,
    ecka_shared_secret,
)
from smdpp.bsp.segmentation import (
    MAX_ENCRYPTED_DATA,
    MAX_MAC_ONLY_DATA,
    max_segment_data,
    protect_segmented,
    split_data,
)
from smdpp.bsp.session import (
    MAC_LENGTH,
    MAX_SEGMENT_VALUE,
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspSession,
)

__all__ = [
    "BspError",
    "PeerKeyError",
    "KEY_LENGTH_AES128",
    "KEY_TYPE_AES",
    "SessionKeys",
    "bsp_shared_info",
    "derive_session_keys",
    "ecka_shared_secret",
    "MAX_ENCRYPTED_DATA",
    "MAX_MAC_ONLY_DATA",
    "max_segment_data",
    "protect_segmented",
    "split_data",
    "MAC_LENGTH",
    "MAX_SEGMENT_VALUE",
    "TAG_MAC_AND_ENC",
    "TAG_MAC_ONLY",
    "TAG_PROFILE_SEGMENT",
    "BspSession",
]
