"""Sealing of secret session fields before they reach the disk or a shared store.

One-time private keys (otSK.DP.ECKA) must never be written in clear (see the
architecture's "Secrets are few and short-lived").  A 256-bit key kept in a
file of mode 0600 encrypts them with AES-GCM; the TransactionId is the
associated data, so a sealed value cannot be moved to another session.  When
several hosts share one Redis or PostgreSQL store they must all hold the same
key file.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE_NAME = "session-store.key"  # in the data folder
_NONCE_LEN = 12
_KEY_LEN = 32


class Sealer:
    """AES-256-GCM with a key from a 0600 file, created on first use."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> "Sealer":
        """Load the key at ``path``, or create it with mode 0600.

        Creation is atomic (a complete temporary file hard-linked into place),
        so processes starting together on a fresh data folder all end up with
        the one key that won, never with a half-written file.
        """
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(AESGCM.generate_key(bit_length=_KEY_LEN * 8))
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process was first: use its key
            finally:
                tmp.unlink(missing_ok=True)
        key = path.read_bytes()
        if len(key) != _KEY_LEN:
            raise ValueError(f"{path}: session store key must be {_KEY_LEN} bytes")
        return cls(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Nonce || ciphertext || tag."""
        nonce = os.urandom(_NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def unseal(self, sealed: bytes, context: bytes) -> bytes:
        """Inverse of :meth:`seal`; ValueError if the value was altered or moved."""
        try:
            return self._aead.decrypt(sealed[:_NONCE_LEN], sealed[_NONCE_LEN:], context)
        except InvalidTag as exc:
            raise ValueError("sealed session field failed authentication") from exc
