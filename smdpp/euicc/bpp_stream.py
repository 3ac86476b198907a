"""Opening a Bound Profile Package segment by segment, as its pieces arrive (SGP.22 5.7.6, 2.5.5).

A card does not wait for the whole BF36: it verifies InitialiseSecureChannel
when it arrives, then checks the MAC of (and decrypts) each segment in the
STORE DATA command that brings it, so that a damaged segment is answered at
once with the ProfileInstallationResult error.  :class:`StreamingOpener`
does that with the same building blocks as
:func:`smdpp.es8p.open_bound_profile_package` (its InitialiseSecureChannel and
segment steps of :mod:`smdpp.es8p.opening`, ReplaceSessionKeys of
:mod:`smdpp.es8p`) and
ends with the same :class:`~smdpp.es8p.OpenedProfilePackage`.  Every failure
is a BspError whose message names the BPP part, for
:func:`smdpp.euicc.installation.classify_bpp_error`.
"""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1.tlv import TlvError, parse_single
from smdpp.bsp import TAG_MAC_AND_ENC, TAG_MAC_ONLY, TAG_PROFILE_SEGMENT, BspError
from smdpp.es8p import OpenedProfilePackage, parse_replace_session_keys
from smdpp.es8p.bound_profile_package import TAG_CONFIGURE_ISDP, TAG_STORE_METADATA
from smdpp.es8p.opening import accept_initialise_secure_channel, single_object, unprotect_segment
from smdpp.es8p.replace_session_keys import TAG_REPLACE_SESSION_KEYS

__all__ = ["StreamingOpener", "CONTAINERS"]

#: BPP container tag -> (its name in SGP.22, the tag of its segments).
CONTAINERS = {
    b"\xa0": ("firstSequenceOf87", TAG_MAC_AND_ENC),
    b"\xa1": ("sequenceOf88", TAG_MAC_ONLY),
    b"\xa2": ("secondSequenceOf87", TAG_MAC_AND_ENC),
    b"\xa3": ("sequenceOf86", TAG_PROFILE_SEGMENT),
}
# what a finished container holds
_CONTENT = {b"\xa0": (TAG_CONFIGURE_ISDP, "ConfigureISDPRequest"),
            b"\xa1": (TAG_STORE_METADATA, "StoreMetadataRequest"),
            b"\xa2": (TAG_REPLACE_SESSION_KEYS, "ReplaceSessionKeysRequest")}


class StreamingOpener:
    """One BPP being opened; feed it the segments in order, then close each container."""

    def __init__(self, initialise_der: bytes, *, euicc_ot_key: ec.EllipticCurvePrivateKey,
                 euicc_otpk: bytes, eid: bytes, dppb_public_key: ec.EllipticCurvePublicKey) -> None:
        self.initialise, self._bsp = accept_initialise_secure_channel(
            initialise_der, euicc_ot_key=euicc_ot_key, euicc_otpk=euicc_otpk, eid=eid,
            dppb_public_key=dppb_public_key)
        self._plain: dict[bytes, list[bytes]] = {tag: [] for tag in CONTAINERS}
        self._done: dict[bytes, bytes] = {}

    def segment(self, container: bytes, raw: bytes) -> None:
        """Verify (and decrypt) the next segment of ``container`` ('A0'..'A3')."""
        name, tag = CONTAINERS[container]
        if container in self._done:
            raise BspError(f"{name}: segment after the sequence ended")
        number = len(self._plain[container]) + 1
        self._plain[container].append(unprotect_segment(self._bsp, raw, tag, number, name))

    def whole(self, container: bytes, raw: bytes) -> OpenedProfilePackage | None:
        """A container received whole: each of its segments, then :meth:`close`."""
        name, _ = CONTAINERS[container]
        try:
            segments = parse_single(raw, container).children()
        except TlvError as exc:
            raise BspError(f"{name} malformed: {exc}") from None
        for segment in segments:
            self.segment(container, segment.raw)
        return self.close(container)

    def close(self, container: bytes) -> OpenedProfilePackage | None:
        """End ``container``: check what it carried; the opened package after the last one ('A3')."""
        name, _ = CONTAINERS[container]
        if not self._plain[container]:
            raise BspError(f"{name} is empty")
        plain = self._done[container] = b"".join(self._plain[container])
        if container == b"\xa2":
            tag, what = _CONTENT[container]
            self._bsp.replace_session_keys(parse_replace_session_keys(single_object(plain, tag, what)))
        elif container in _CONTENT:
            single_object(plain, *_CONTENT[container])
        if container != b"\xa3":
            return None
        if b"\xa0" not in self._done or b"\xa1" not in self._done:
            raise BspError("sequenceOf86 before ConfigureISDP and StoreMetadata")
        return OpenedProfilePackage(
            transaction_id=self.initialise.transaction_id, host_id=self.initialise.host_id,
            smdp_otpk=self.initialise.smdp_otpk, configure_isdp=self._done[b"\xa0"],
            store_metadata=self._done[b"\xa1"], upp=plain)
