"""Tags of the Bound Profile Package (SGP.22 2.5.5).

    BoundProfilePackage ::= [54] SEQUENCE {                           -- Tag 'BF36'
        initialiseSecureChannelRequest [35] InitialiseSecureChannelRequest,  -- 'BF23'
        firstSequenceOf87 [0] SEQUENCE OF [7] OCTET STRING,  -- 'A0': '87' ConfigureISDP
        sequenceOf88 [1] SEQUENCE OF [8] OCTET STRING,       -- 'A1': '88' StoreMetadata
        secondSequenceOf87 [2] SEQUENCE OF [7] OCTET STRING OPTIONAL,  -- 'A2': '87' ReplaceSessionKeys
        sequenceOf86 [3] SEQUENCE OF [6] OCTET STRING        -- 'A3': '86' profile data
    }
"""
from __future__ import annotations

__all__ = [
    "TAG_BOUND_PROFILE_PACKAGE",
    "TAG_FIRST_SEQUENCE_OF_87",
    "TAG_SEQUENCE_OF_88",
    "TAG_SECOND_SEQUENCE_OF_87",
    "TAG_SEQUENCE_OF_86",
    "TAG_CONFIGURE_ISDP",
    "TAG_STORE_METADATA",
]

TAG_BOUND_PROFILE_PACKAGE = b"\xbf\x36"
TAG_FIRST_SEQUENCE_OF_87 = b"\xa0"
TAG_SEQUENCE_OF_88 = b"\xa1"
TAG_SECOND_SEQUENCE_OF_87 = b"\xa2"
TAG_SEQUENCE_OF_86 = b"\xa3"
TAG_CONFIGURE_ISDP = b"\xbf\x24"  # ConfigureISDPRequest
TAG_STORE_METADATA = b"\xbf\x25"  # StoreMetadataRequest
