"""The Unprotected Profile Packages the SM-DP+ can serve, loaded once at start-up.

Each ``<matchingId>.der`` file in the UPP folder is one SAIP Profile Package
(eUICC Profile Package Interoperable Format, a concatenation of DER
ProfileElements).  Its file stem is the Matching ID an LPA presents
(SGP.22 3.1.3, ``ctxParams1.matchingId``).  Only the first element, the
ProfileHeader, is looked at while loading: it carries the ICCID and the
profile type, which become the Profile Metadata of SGP.22 2.4A
(``StoreMetadataRequest``).  The rest of the package is kept as raw bytes for
the Bound Profile Package.
"""
from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from smdpp.asn1.tlv import Tlv, TlvError, iter_tlvs
from smdpp.profiles.generate import generate_default_test_profile
from smdpp.profiles.identifiers import iccid_from_bcd, iccid_to_ef

log = logging.getLogger(__name__)

UPP_SUFFIX = ".der"
#: Matching ID given to the generated profile of :func:`ensure_test_profile`.
TEST_PROFILE_MATCHING_ID = "SMDPP-TEST-1"
#: The UPP has no service provider name; SGP.22 metadata needs one.
DEFAULT_SERVICE_PROVIDER_NAME = "smdpp"

# SGP.22 ProfileInfo / StoreMetadataRequest: serviceProviderName and
# profileName are UTF8String (SIZE(0..32)) and (SIZE(0..64)).
_MAX_PROFILE_NAME = 64
_MAX_SERVICE_PROVIDER_NAME = 32

# A matching ID becomes part of a file path: letters, digits, '-', '_', '.'.
_SAFE_MATCHING_ID = re.compile(r"[A-Za-z0-9._-]+")

# Top-level tags of SAIP ProfileElement alternatives and ProfileHeader fields.
_TAG_PE_HEADER = b"\xa0"  # header [0]
_TAG_PE_END = b"\xaa"  # end [10]
_TAG_PROFILE_TYPE = b"\x82"  # ProfileHeader.profileType [2]
_TAG_ICCID = b"\x83"  # ProfileHeader.iccid [3]

PROFILE_CLASSES = ("test", "provisioning", "operational")


class InvalidUpp(ValueError):
    """The bytes are not a usable Unprotected Profile Package."""


@dataclass(frozen=True)
class Profile:
    """One UPP and the metadata the SM-DP+ announces for it."""

    matching_id: str  # UPP file name without .der
    upp: bytes = field(repr=False)  # the whole file, as read
    iccid: str  # decimal digits, no F padding
    profile_name: str  # the PE-Header profileType text
    service_provider_name: str
    profile_class: str  # 'test' | 'provisioning' | 'operational'

    @property
    def iccid_ef(self) -> bytes:
        """The ICCID as EF.ICCID and SGP.22 ``Iccid`` code it: 10 bytes, swapped."""
        return iccid_to_ef(self.iccid)


def _profile_class(profile_type: str) -> str:
    """SGP.22 ProfileClass from the profileType text: SAIP has no class field,
    so a type naming a test or provisioning profile decides; default operational."""
    lowered = profile_type.lower()
    if "test" in lowered:
        return "test"
    if "provisioning" in lowered:
        return "provisioning"
    return "operational"


def _read_header(upp: bytes) -> tuple[str, str]:
    """ICCID digits and profileType text of a UPP, from the raw ProfileHeader.

    Checks the package shape without decoding it: well-formed top-level
    TLVs, ProfileHeader first and PE-End last (SAIP 8.1).
    """
    try:
        elements: list[Tlv] = list(iter_tlvs(upp))
        if not elements or elements[0].tag != _TAG_PE_HEADER:
            raise InvalidUpp("the first Profile Element is not a ProfileHeader")
        if elements[-1].tag != _TAG_PE_END:
            raise InvalidUpp("the last Profile Element is not PE-End")
        header = elements[0]
        iccid_tlv = header.child(_TAG_ICCID)
        type_tlv = header.child(_TAG_PROFILE_TYPE)
    except TlvError as exc:
        raise InvalidUpp(f"malformed TLV: {exc}") from exc
    if iccid_tlv is None:
        raise InvalidUpp("ProfileHeader has no iccid")
    try:
        iccid = iccid_from_bcd(iccid_tlv.value)
    except ValueError as exc:
        raise InvalidUpp(f"ProfileHeader iccid: {exc}") from exc
    profile_type = ""
    if type_tlv is not None:
        try:
            profile_type = type_tlv.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUpp("ProfileHeader profileType is not UTF-8") from exc
    return iccid, profile_type


def profile_from_upp(matching_id: str, upp: bytes,
                     service_provider_name: str = DEFAULT_SERVICE_PROVIDER_NAME) -> Profile:
    """Build the :class:`Profile` of one UPP; raises :class:`InvalidUpp`."""
    iccid, profile_type = _read_header(upp)
    return Profile(
        matching_id=matching_id,
        upp=upp,
        iccid=iccid,
        profile_name=profile_type[:_MAX_PROFILE_NAME],
        service_provider_name=service_provider_name[:_MAX_SERVICE_PROVIDER_NAME],
        profile_class=_profile_class(profile_type),
    )


def _upp_files(upp_dir: Path) -> list[Path]:
    return sorted(p for p in upp_dir.iterdir() if p.suffix == UPP_SUFFIX and p.is_file())


class ProfileInventory:
    """The profiles of one UPP folder, read once; lookups never touch the disk."""

    def __init__(self, profiles: list[Profile]) -> None:
        self._by_matching_id: dict[str, Profile] = {p.matching_id: p for p in profiles}

    @classmethod
    def load(cls, upp_dir: Path) -> "ProfileInventory":
        """Read every ``*.der`` of ``upp_dir`` once.

        A file whose name is not a safe matching ID or that is not a valid UPP
        is skipped with a warning naming it.  Files that share an ICCID (the
        TS.48 generic test profiles all carry 89000123456789012341) are each
        served under their own matchingId, as osmo-smdpp does: one log line
        names the shared ICCIDs (see :func:`shared_iccids`).
        """
        profiles: list[Profile] = []
        for path in _upp_files(Path(upp_dir)):
            matching_id = path.stem
            if not _SAFE_MATCHING_ID.fullmatch(matching_id):
                log.warning("skipping UPP %s: the name is not a safe matching ID "
                            "(letters, digits, '-', '_', '.')", path)
                continue
            try:
                upp = path.read_bytes()
                profile = profile_from_upp(matching_id, upp)
            except OSError as exc:
                log.warning("skipping UPP %s: cannot read it: %s", path, exc)
                continue
            except InvalidUpp as exc:
                log.warning("skipping UPP %s: not a valid Profile Package: %s", path, exc)
                continue
            profiles.append(profile)
        log.info("loaded %d profile(s) from %s", len(profiles), upp_dir)
        shared = shared_iccids(profiles)
        if shared:
            log.info("profiles sharing an ICCID, each served under its own matchingId to any "
                     "eUICC: %s", "; ".join(f"{iccid} ({len(ids)}: {', '.join(ids)})"
                                           for iccid, ids in shared.items()))
        return cls(profiles)

    def get(self, matching_id: str) -> Profile | None:
        """The profile whose file stem is exactly ``matching_id``, or None."""
        return self._by_matching_id.get(matching_id)

    def __len__(self) -> int:
        return len(self._by_matching_id)

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._by_matching_id.values())


def shared_iccids(profiles: Iterable[Profile]) -> dict[str, list[str]]:
    """ICCID -> the matchingIds of the profiles that carry it, for ICCIDs carried by more than one.

    A UPP is served as it is (no per-download ICCID), so an eUICC that
    downloads two of these would hold two profiles with one ICCID; SGP.22
    leaves that to the operator, osmo-smdpp serves them all the same.
    """
    by_iccid: dict[str, list[str]] = {}
    for profile in profiles:
        by_iccid.setdefault(profile.iccid, []).append(profile.matching_id)
    return {iccid: ids for iccid, ids in sorted(by_iccid.items()) if len(ids) > 1}


def ensure_test_profile(upp_dir: Path) -> Path | None:
    """Give an empty UPP folder the generated default test profile.

    If ``upp_dir`` (created when missing) holds no ``*.der`` file, write
    ``SMDPP-TEST-1.der`` (see :func:`generate_default_test_profile`) and
    return its path; otherwise touch nothing and return None.
    """
    upp_dir = Path(upp_dir)
    upp_dir.mkdir(parents=True, exist_ok=True)
    if _upp_files(upp_dir):
        return None
    target = upp_dir / f"{TEST_PROFILE_MATCHING_ID}{UPP_SUFFIX}"
    data = generate_default_test_profile()
    # Write beside the target and rename, so no reader ever sees half a file.
    fd, tmp_name = tempfile.mkstemp(dir=upp_dir, prefix=f".{TEST_PROFILE_MATCHING_ID}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target  # the caller says so (once) in the start-up log
