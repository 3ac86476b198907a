"""Files of the PKI: folders 0700, every file 0600.

Private keys (SK.*, the CI and EUM keys of a test PKI) must never be readable
by other users, and the folders that hold them are closed as well.
Certificates and CRLs are public data, but every file the server creates is
0600 so that a data folder never leaks by a mode left open; a user who wants
to share one sets its mode on purpose.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["load_certificate", "load_private_key", "make_dir", "write_cert", "write_file", "write_key"]


def make_dir(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700 (keys live below)."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is reduced by the umask


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` with exactly ``mode``, replacing its content."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # an existing file keeps its old mode otherwise
        f.write(data)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key as SEC 1 "EC PRIVATE KEY" PEM (the format of the SGP.26 SK_* files), 0600."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    write_file(path, pem, 0o600)


def write_cert(path: Path, cert: x509.Certificate, *, pem: bool = False) -> None:
    """A certificate as DER at ``path``, and as PEM next to it (same stem) if ``pem``."""
    write_file(path, cert.public_bytes(serialization.Encoding.DER))
    if pem:
        write_file(path.with_suffix(".pem"), cert.public_bytes(serialization.Encoding.PEM))


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM EC private key (SK_* files); ValueError naming the file otherwise."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """A PEM or DER certificate file; ValueError naming the file otherwise."""
    data = Path(path).read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a certificate: {exc}") from None
