"""Reading one folder of a certificate directory: what is a certificate, a key, or neither.

pySim's ``smdpp-data/certs`` (taken from SGP.26 v3) keeps, beside the
certificates (DER or PEM) and the SEC 1 / PKCS#8 PEM private keys ``SK_*``,
files that are neither: ``PK_*`` public keys, ``data_sig.der`` (a bare
signature), ``*.csr.cnf`` OpenSSL request configurations, a ``README``, and
subfolders of old certificates (``DPtls/Old_TLS_Validity/Expired 2024/``).
Files are judged by their content, not their name: a certificate is a PEM
``CERTIFICATE`` block or DER that starts like an X.509 v3 certificate (RFC
5280 4.1: SEQUENCE { tbsCertificate SEQUENCE { [0] version ...); a key is a
PEM private key.  A PEM file may hold both (``cat CERT.pem SK.pem``, as
OpenSSL and nginx accept it): its key then belongs to the file's first
certificate, and a key that does not fit it is an error naming the file
(:func:`matching_key`).  Everything else, and every subfolder, is skipped with one
log line.  A file that starts like a certificate but does not parse is a
broken certificate: it stops the start (ValueError naming the file) if it
may be one we serve (:meth:`FolderContent.refuse_broken`), as the user may
have meant us to serve it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.pki.ecdsa import public_point
from smdpp.pki.files import load_private_key

log = logging.getLogger(__name__)

__all__ = ["FolderContent", "looks_like_der_certificate", "matching_key", "scan_folder"]

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_BEGIN = b"-----BEGIN "
_PEM_PRIVATE_KEY = b"PRIVATE KEY-----"
_PEM_PUBLIC_KEY = b"PUBLIC KEY-----"
# Certificate files are small; anything larger is not one (and is not read whole).
_MAX_FILE = 1 << 20
# The version field of a v3 tbsCertificate: [0] EXPLICIT INTEGER 2 (RFC 5280 4.1).
_VERSION_V3 = b"\xa0\x03\x02\x01\x02"


@dataclass
class FolderContent:
    """The certificates and private keys of one folder, and the key files that did not load."""

    certs: list[tuple[Path, x509.Certificate]] = field(default_factory=list)
    keys: list[tuple[Path, ec.EllipticCurvePrivateKey]] = field(default_factory=list)
    bad_keys: list[str] = field(default_factory=list)  # "path: reason", told when no key matches
    broken: list[tuple[Path, str]] = field(default_factory=list)  # certificates that do not parse
    #: files holding a certificate and its key (``cat cert.pem key.pem``): path -> the first certificate
    combined: dict[Path, x509.Certificate] = field(default_factory=dict)

    def refuse_broken(self, matters: Callable[[Path], bool] = lambda path: True) -> None:
        """ValueError naming the first broken certificate that ``matters``; the others are logged."""
        for path, reason in self.broken:
            if matters(path):
                raise ValueError(f"{path}: not a valid certificate: {reason}")
            log.warning("skipping %s: not a valid certificate (not one that is served): %s",
                        path, reason)


def _der_header(data: bytes, offset: int) -> int | None:
    """Offset of the value of the SEQUENCE at ``offset`` (tag and definite length only), or None."""
    if offset + 2 > len(data) or data[offset] != 0x30:
        return None
    first = data[offset + 1]
    if first < 0x80:
        return offset + 2
    count = first & 0x7F
    if count == 0 or count > 3 or offset + 2 + count > len(data):
        return None
    return offset + 2 + count


def looks_like_der_certificate(data: bytes) -> bool:
    """True if ``data`` starts like a DER X.509 v3 certificate (whether or not it parses)."""
    inner = _der_header(data, 0)
    tbs = _der_header(data, inner) if inner is not None else None
    return tbs is not None and data[tbs:tbs + len(_VERSION_V3)] == _VERSION_V3


def scan_folder(folder: Path, *, with_keys: bool = True) -> FolderContent:
    """The certificates (one entry per certificate: a .der and .pem of it count once) and
    private keys directly in ``folder``; every other file and every subfolder is logged and skipped.

    With ``with_keys`` False, private keys are skipped unread (the CI key of a
    test PKI).  ValueError naming the file for a broken certificate.
    """
    content = FolderContent()
    seen: set[bytes] = set()
    for path in sorted(Path(folder).iterdir()):
        if path.is_dir():
            log.info("skipping folder %s: only the files directly in %s are read", path, folder)
            continue
        if not path.is_file():
            log.info("skipping %s: not a regular file", path)
            continue
        try:
            if path.stat().st_size > _MAX_FILE:
                log.info("skipping %s: too large for a certificate or key", path)
                continue
            data = path.read_bytes()
        except OSError as exc:
            log.warning("skipping %s: cannot read it: %s", path, exc)
            continue
        if _PEM_CERT in data or looks_like_der_certificate(data):
            try:
                certs = _certificates(data)
            except ValueError as exc:
                content.broken.append((path, str(exc)))
                continue
            for cert in certs:
                der = cert.public_bytes(serialization.Encoding.DER)
                if der not in seen:
                    seen.add(der)
                    content.certs.append((path, cert))
            # cert and key in one file (cat CERT.pem SK.pem): the key is the first certificate's
            if _PEM_PRIVATE_KEY in data and with_keys and _read_key(path, content):
                content.combined[path] = certs[0]
            continue
        if _PEM_PRIVATE_KEY in data:
            if with_keys:
                _read_key(path, content)
            continue
        if _PEM_PUBLIC_KEY in data:
            log.debug("skipping %s: a public key (the certificate carries it)", path)
            continue
        log.info("skipping %s: neither a certificate nor a PEM private key", path)
    return content


def _read_key(path: Path, content: FolderContent) -> bool:
    """Add the PEM private key of ``path`` to ``content``; False (logged, kept for the error) if unreadable."""
    try:
        content.keys.append((path, load_private_key(path)))
    except ValueError as exc:
        log.warning("skipping %s", exc)
        content.bad_keys.append(str(exc))
        return False
    return True


def _certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM file, or the one of a DER file; ValueError if one is broken."""
    if _PEM_CERT in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def matching_key(path: Path, cert: x509.Certificate, content: FolderContent
                 ) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    """The private key in ``content`` of the certificate read from ``path``; ValueError otherwise.

    A file holding the certificate and a key must hold its key: ValueError
    naming the file if that key is another one.
    """
    public_key = cert.public_key()
    point = public_point(public_key) if isinstance(public_key, ec.EllipticCurvePublicKey) else None

    def fits(key: ec.EllipticCurvePrivateKey) -> bool:
        return (isinstance(public_key, ec.EllipticCurvePublicKey) and key.curve.name == public_key.curve.name
                and public_point(key) == point)

    for combined, first in content.combined.items():  # the key beside the certificate in one file
        if first == cert:
            own = next(key for key_path, key in content.keys if key_path == combined)
            if not fits(own):
                raise ValueError(f"{combined}: the private key in this file does not match its "
                                 f"certificate ({cert.subject.rfc4514_string()}); put the certificate's "
                                 "own key in it, or keep the key in its own SK_*.pem")
            return combined, own
    for key_path, key in content.keys:
        if fits(key):
            return key_path, key
    unreadable = f" (unreadable: {'; '.join(content.bad_keys)})" if content.bad_keys else ""
    raise ValueError(f"{path}: no private key (SK_*.pem) in {path.parent} matches this "
                     f"certificate{unreadable}")
