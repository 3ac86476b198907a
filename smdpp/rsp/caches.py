"""What the RSP engine keeps in memory between calls, in this process only.

Three things, each derived from data the engine could rebuild, so losing them
(a restart, another worker process) costs CPU, never correctness:

- the StoreMetadataRequest of each profile, encoded once (SGP.22 5.5.3);
- each profile protected once under its own PPKs (SGP.22 2.5.5), so a
  download only protects ConfigureISDP, StoreMetadata and ReplaceSessionKeys;
- the PK.EUICC.ECDSA object authenticateClient verified, for the later calls
  of the same session (SGP.22 5.6.2, 5.6.4, 5.6.5): only the loading of the
  key is saved, never a verification.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.es8p import ProtectedProfilePackage, protect_profile_package
from smdpp.profiles.inventory import Profile
from smdpp.rsp import outgoing

# PK.EUICC.ECDSA objects kept for the sessions in progress in this process
MAX_KEPT_EUICC_KEYS = 4096


class EngineCaches:
    """The engine's per-process caches (see the module docstring)."""

    def __init__(self, max_kept_keys: int = MAX_KEPT_EUICC_KEYS) -> None:
        self._metadata: dict[str, bytes] = {}  # matchingId -> StoreMetadataRequest DER
        self._protected: dict[str, ProtectedProfilePackage] = {}  # matchingId -> UPP under PPKs
        # transactionId -> (expires, SPKI DER, PK.EUICC.ECDSA) of sessions in progress
        self._keys: dict[str, tuple[float, bytes, ec.EllipticCurvePublicKey]] = {}
        self._max_kept_keys = max_kept_keys

    # -- profiles --

    def store_metadata(self, profile: Profile) -> bytes:
        """StoreMetadataRequest ('BF25') of ``profile``, encoded on first use."""
        cached = self._metadata.get(profile.matching_id)
        if cached is None:
            cached = self._metadata[profile.matching_id] = outgoing.store_metadata_request(profile)
        return cached

    def protected(self, profile: Profile) -> ProtectedProfilePackage:
        """``profile`` under its own random PPKs, protected on first use (SGP.22 2.5.5)."""
        protected = self._protected.get(profile.matching_id)
        if protected is None:
            protected = self._protected[profile.matching_id] = protect_profile_package(
                profile.upp)
        return protected

    # -- PK.EUICC.ECDSA of sessions in progress --

    def keep_euicc_key(self, transaction_id: str, expires: float, spki_der: bytes,
                       key: ec.EllipticCurvePublicKey) -> None:
        """Keep the verified key object of a session until it ends or ``expires``."""
        keys = self._keys
        if len(keys) >= self._max_kept_keys:  # abandoned sessions: drop the oldest
            del keys[next(iter(keys))]
        keys[transaction_id] = (expires, spki_der, key)

    def euicc_key(self, transaction_id: str, spki_der: bytes) -> ec.EllipticCurvePublicKey:
        """The key object of ``spki_der``: the kept one if it is still that key, else loaded."""
        kept = self._keys.get(transaction_id)
        if kept is not None and kept[1] == spki_der:
            return kept[2]
        key = serialization.load_der_public_key(spki_der)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    def forget_euicc_key(self, transaction_id: str) -> None:
        """The session ended: drop its key object (no error if none is kept)."""
        self._keys.pop(transaction_id, None)

    def expire(self, now: float) -> None:
        """Drop the key objects of sessions past their lifetime."""
        for tid in [t for t, kept in self._keys.items() if kept[0] < now]:
            del self._keys[tid]

    def kept_euicc_keys(self) -> int:
        """How many key objects are kept (for tests and figures)."""
        return len(self._keys)
