"""DPtls certificates (CERT.DP.TLS), the names they carry, and which one serves which SM-DP+ address.

An LPA opens ES9+ with TLS to the SM-DP+ address (SGP.22 2.6.6, 4.1) and
checks the server certificate for that name the usual way (RFC 6125): a
subjectAltName dNSName equal to the address, or a wildcard in its leftmost
label.  With several SM-DP+ identities served side by side, each at its own
address (:mod:`smdpp.pki.identities`), each address needs a DPtls naming it;
:func:`tls_sites` groups the DPtls per address and refuses, naming the
address and what the DPtls found do name, when one has none.  The TLS layer
(:mod:`smdpp.http.tls`) then picks per handshake by the client's server_name
(SNI, RFC 6066 3).  Nothing here does I/O beyond the certificates already read.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.pki.certificate import registered_ids, utc_now

__all__ = ["TlsCredential", "TlsSite", "dns_names", "name_matches", "normal_host", "tls_sites"]

#: The DPtls curves of SGP.22 2.6.6, cryptography's names.
TLS_CURVES = ("secp256r1", "brainpoolP256r1")
#: RFC 1035 2.3.4: a name is at most 253 characters in text form (255 octets on the wire).
MAX_HOST = 253


@dataclass(frozen=True)
class TlsCredential:
    """The SM-DP+ TLS server certificate (CERT.DP.TLS) and its key file, for the HTTPS layer."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate

    def expired(self, now: datetime | None = None) -> bool:
        """True if the certificate is outside its validity period at ``now``."""
        moment = utc_now(now)
        return not self.certificate.not_valid_before_utc <= moment <= self.certificate.not_valid_after_utc

    @property
    def curve(self) -> str | None:
        """The curve of the key, cryptography's name, if one of SGP.22 2.6.6 (P-256, brainpoolP256r1)."""
        key = self.certificate.public_key()
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None
        return curve if curve in TLS_CURVES else None

    def check(self, now: datetime | None = None) -> None:
        """ValueError naming the file if ``--tls`` cannot serve it: a key on another curve, or outside
        its validity period (with the date)."""
        if self.curve is None:
            key = self.certificate.public_key()
            shown = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
            raise ValueError(f"{self.cert_path}: DPtls key must be on NIST P-256 or "
                             f"brainpoolP256r1 (SGP.22 2.6.6), not {shown}")
        cert = self.certificate
        if not self.expired(now):
            return
        if utc_now(now) > cert.not_valid_after_utc:
            raise ValueError(f"{self.cert_path}: DPtls certificate expired on "
                             f"{cert.not_valid_after_utc.date()} (notAfter "
                             f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC); --tls will not serve it: "
                             "put a valid DPtls in its place, or run without --tls behind a TLS proxy")
        raise ValueError(f"{self.cert_path}: DPtls certificate is not valid before "
                         f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC; --tls will not serve it yet")

    @property
    def dns_names(self) -> tuple[str, ...]:
        """The subjectAltName dNSNames (lower case), the names a TLS client checks."""
        return dns_names(self.certificate)

    @property
    def smdp_oids(self) -> tuple[str, ...]:
        """The SM-DP+ OIDs (subjectAltName registeredID) the certificate names, if any."""
        return tuple(registered_ids(self.certificate))


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The subjectAltName dNSNames of ``cert``, lower case without a final dot; () if none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):  # ValueError: a malformed extension
        return ()
    return tuple(n for n in (normal_host(v) for v in san.get_values_for_type(x509.DNSName)) if n)


def normal_host(name: str | bytes | None) -> str | None:
    """``name`` as compared (ASCII, lower case, no final dot), or None if it cannot be a host name."""
    if name is None:
        return None
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    name = name.strip().rstrip(".").lower()
    if not name or len(name) > MAX_HOST or not name.isascii() or any(c.isspace() for c in name):
        return None
    return name


def name_matches(pattern: str, host: str) -> bool:
    """True if the dNSName ``pattern`` names ``host`` (both as :func:`normal_host` gives them).

    RFC 6125 6.4.3: a ``*`` is honoured only as the whole leftmost label and
    matches exactly one label, never across a dot (``*.example.com`` names
    ``a.example.com``, not ``example.com`` or ``a.b.example.com``).
    """
    if pattern == host:
        return True
    if not pattern.startswith("*.") or "*" in pattern[1:]:
        return False
    first, dot, rest = host.partition(".")
    return bool(first and dot) and rest == pattern[2:] and rest.count(".") >= 1


@dataclass(frozen=True)
class TlsSite:
    """One SM-DP+ address served under ``--tls``, with the DPtls naming it (NIST P-256 first)."""

    address: str  # lower case
    identity: str  # the identity served there, for messages ('DP (2.999.10)')
    credentials: tuple[TlsCredential, ...]


def _serves(credential: TlsCredential, oids: Iterable[str]) -> bool:
    """True if the DPtls belongs to one of ``oids`` (or names no SM-DP+ OID at all)."""
    found = credential.smdp_oids
    return not found or bool(set(oids).intersection(found))


def tls_sites(identities: Sequence[tuple[str, str, Sequence[str]]],
              credentials: Sequence[TlsCredential], folder: Path | str = "DPtls/") -> tuple[TlsSite, ...]:
    """Per (address, identity name, SM-DP+ OIDs), the default first: the DPtls naming the address.

    A DPtls serves an identity when it names one of its OIDs or none, and an
    address when one of its dNSNames matches it (:func:`name_matches`).
    ValueError naming the address, the identity and what the DPtls found
    name, when an identity has none for its address.
    """
    sites = []
    for address, identity, oids in identities:
        host = normal_host(address) or address
        own = [c for c in credentials if _serves(c, oids)]
        named = tuple(c for c in own if any(name_matches(n, host) for n in c.dns_names))
        if not named:
            found = "; ".join(f"{c.cert_path.name} names {', '.join(c.dns_names) or 'no dNSName'}"
                              for c in own) or "none of its DPtls"
            raise ValueError(f"--tls: SM-DP+ {identity} is served at {host}, but no DPtls in {folder} "
                             f"names {host} in its subjectAltName ({found}); an LPA would refuse the "
                             f"handshake: add a DPtls for {host}, or serve the identity at an address "
                             f"its DPtls names (--hostname, --smdp-identity NAME=ADDRESS)")
        sites.append(TlsSite(host, identity, named))
    return tuple(sites)
