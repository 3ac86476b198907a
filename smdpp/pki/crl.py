"""Certificate revocation lists of the RSP PKI (SGP.22 4.5.2.1 "not revoked"; RFC 5280 5, 6.3).

A certificate of the RSP PKI is valid only if neither it nor a certificate of
its chain is revoked.  The CI publishes a CRL of the EUM (and SM-DP+)
certificates it revoked; an EUM publishes one of its eUICC certificates.
The SM-DP+ reads them from one folder::

    crl_dir/*.crl | *.der | *.pem    one CRL per issuer, DER or PEM
    crl_dir/*.der | *.pem            certificates of CRL issuers that are not
                                     a CI (e.g. the EUM), chained to a loaded CI

Every CRL must be signed by a loaded CI or by such an issuer certificate
(itself verified up to a CI), be current (thisUpdate <= now <= nextUpdate)
and a complete, direct CRL.  :meth:`CrlSet.load` reports every file that
fails, by name: a CRL that cannot be verified is never used.

:func:`issue_crl` and :func:`revoke` write CRLs for a private PKI (``smdpp-pki revoke``).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from smdpp.pki.certificate import (
    authority_key_identifier,
    basic_constraints,
    check_signed_by,
    key_usage,
    names_issuer,
    subject_key_identifier,
    utc_now,
)
from smdpp.pki.files import make_dir, write_file

log = logging.getLogger(__name__)

#: File name endings read from the CRL folder.
CRL_SUFFIXES = (".crl", ".der", ".pem", ".crt", ".cer")
_PEM_CRL = b"-----BEGIN X509 CRL-----"
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
#: CRL extensions this reader understands (RFC 5280 5.2); a critical one outside is refused.
_KNOWN_CRL_EXTENSIONS = frozenset({
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.CRL_NUMBER, ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
})
#: How many sub-CAs may sit between a CI and a CRL issuer certificate.
_MAX_ISSUER_DEPTH = 4


class CrlError(ValueError):
    """One or more CRL files cannot be used; ``problems`` has one "file: reason" line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class LoadedCrl:
    """A verified CRL, the file it came from and the certificate whose key signed it."""

    path: Path
    crl: x509.CertificateRevocationList
    issuer: x509.Certificate

    @property
    def key_id(self) -> bytes:
        """The SKI of the CRL issuer: what a revoked certificate's AKI names."""
        ski = subject_key_identifier(self.issuer)
        assert ski is not None  # checked at load
        return ski

    @property
    def number(self) -> int | None:
        """The cRLNumber, if the CRL carries one."""
        try:
            return self.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            return None

    def stale(self, now: datetime | None = None) -> bool:
        """True once nextUpdate has passed: a newer CRL should exist."""
        next_update = self.crl.next_update_utc
        return next_update is not None and utc_now(now) > next_update


def _read(path: Path) -> tuple[list[x509.CertificateRevocationList], list[x509.Certificate]]:
    """The CRLs and certificates in one file; ValueError if it holds neither."""
    data = path.read_bytes()
    if _PEM_CRL in data or _PEM_CERT in data:
        if data.count(_PEM_CRL) > 1:
            raise ValueError("holds more than one CRL (one CRL per file)")
        crls = [x509.load_pem_x509_crl(data)] if _PEM_CRL in data else []
        certs = x509.load_pem_x509_certificates(data) if _PEM_CERT in data else []
        return crls, certs
    if b"-----BEGIN" in data:
        raise ValueError("PEM file holds neither a CRL nor a certificate")
    try:
        return [x509.load_der_x509_crl(data)], []
    except ValueError:
        pass
    try:
        return [], [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ValueError("neither a DER CRL nor a DER certificate") from None


def _chain_to_ci(cert: x509.Certificate, pool: Sequence[x509.Certificate],
                 cis: Mapping[bytes, x509.Certificate]) -> None:
    """``cert`` is signed, through CA certificates of ``pool``, by a CI; ValueError otherwise."""
    current = cert
    for _ in range(_MAX_ISSUER_DEPTH + 1):
        aki = authority_key_identifier(current)
        ci = cis.get(aki) if aki is not None else None
        if ci is not None and names_issuer(current, ci):
            check_signed_by(current, ci, "CRL issuer")
            return
        parent = next((c for c in pool if c is not current and names_issuer(current, c)), None)
        if parent is None:
            raise ValueError("issuer certificate does not chain to a loaded CI")
        check_signed_by(current, parent, "CRL issuer")
        basic = basic_constraints(parent)
        usage = key_usage(parent)
        if basic is None or not basic.ca or usage is None or not usage.key_cert_sign:
            raise ValueError("a certificate in the CRL issuer's chain is not a CA")
        current = parent
    raise ValueError("CRL issuer's chain to the CI is too long")


def _check_crl(crl: x509.CertificateRevocationList, signer: x509.Certificate, now: datetime) -> None:
    """Signature, signer's cRLSign, dates and scope of one CRL (RFC 5280 6.3.3)."""
    usage = key_usage(signer)
    if usage is not None and not usage.crl_sign:
        raise ValueError("issuer certificate keyUsage lacks cRLSign")
    if crl.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise ValueError("CRL is not signed with ecdsa-with-SHA256")
    public_key = signer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public_key):
        raise ValueError("CRL signature does not verify with its issuer's key")
    for ext in crl.extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise ValueError("delta CRLs are not supported")
        if ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
            raise ValueError(f"unknown critical CRL extension {ext.oid.dotted_string}")
        if isinstance(ext.value, x509.IssuingDistributionPoint) and (
                ext.value.indirect_crl or ext.value.only_some_reasons):
            raise ValueError("indirect or partial CRLs are not supported")
    if now < crl.last_update_utc:
        raise ValueError(f"CRL is not valid yet (thisUpdate {crl.last_update_utc:%Y-%m-%d %H:%M})")
    if crl.next_update_utc is not None and now > crl.next_update_utc:
        raise ValueError(f"CRL is past its nextUpdate {crl.next_update_utc:%Y-%m-%d %H:%M}; "
                         "get a current one from its issuer")


def _signer(crl: x509.CertificateRevocationList,
            candidates: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """The certificate that names the CRL issuer (AKI and name), or None."""
    try:
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    for cert in candidates:
        if cert.subject == crl.issuer and (aki is None or aki == subject_key_identifier(cert)):
            return cert
    return None


def _reason_name(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


class CrlSet:
    """The verified CRLs, by issuer key; answers "is this certificate revoked?"."""

    def __init__(self, crls: Iterable[LoadedCrl] = ()) -> None:
        self._by_key: dict[bytes, LoadedCrl] = {}
        for loaded in crls:
            self._by_key[loaded.key_id] = loaded
        self._warned_stale: set[Path] = set()

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[LoadedCrl]:
        return iter(self._by_key.values())

    @classmethod
    def load(cls, folder: Path, cis: Mapping[bytes, x509.Certificate],
             now: datetime | None = None) -> "CrlSet":
        """Read and verify every CRL in ``folder`` (none if it does not exist).

        Raises :class:`CrlError` listing each unusable file: unreadable, no
        issuer certificate, an issuer that does not chain to a CI in ``cis``,
        a bad signature, outside thisUpdate..nextUpdate, an unsupported kind
        of CRL, or a second, different CRL of the same issuer.
        """
        folder = Path(folder)
        if not folder.is_dir():
            return cls()
        moment = utc_now(now)
        problems: list[str] = []
        found_crls: list[tuple[Path, x509.CertificateRevocationList]] = []
        issuers: list[tuple[Path, x509.Certificate]] = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in CRL_SUFFIXES:
                continue
            try:
                crls, certs = _read(path)
            except (ValueError, OSError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            found_crls.extend((path, c) for c in crls)
            issuers.extend((path, c) for c in certs)

        pool = [c for _, c in issuers]
        trusted: list[x509.Certificate] = list(cis.values())
        for path, cert in issuers:
            try:
                if subject_key_identifier(cert) is None:
                    raise ValueError("issuer certificate has no subjectKeyIdentifier")
                _chain_to_ci(cert, pool, cis)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
                continue
            trusted.append(cert)

        loaded: dict[bytes, LoadedCrl] = {}
        for path, crl in found_crls:
            signer = _signer(crl, trusted)
            try:
                if signer is None:
                    raise ValueError(f"no CI or issuer certificate for CRL issuer {crl.issuer.rfc4514_string()} "
                                     f"(put the issuer's certificate into {folder})")
                _check_crl(crl, signer, moment)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
                continue
            item = LoadedCrl(path, crl, signer)
            previous = loaded.get(item.key_id)
            if previous is not None and previous.crl.public_bytes(serialization.Encoding.DER) != \
                    crl.public_bytes(serialization.Encoding.DER):
                problems.append(f"{path}: a second CRL of {crl.issuer.rfc4514_string()} "
                                f"(also {previous.path.name}); keep one CRL per issuer")
                continue
            loaded.setdefault(item.key_id, item)
        if problems:
            raise CrlError(problems)
        return cls(loaded.values())

    def entry(self, cert: x509.Certificate) -> tuple[LoadedCrl, x509.RevokedCertificate] | None:
        """The CRL entry revoking ``cert``, if the CRL of its issuer lists it."""
        aki = authority_key_identifier(cert)
        loaded = self._by_key.get(aki) if aki is not None else None
        if loaded is None or cert.issuer != loaded.issuer.subject:
            return None
        revoked = loaded.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is None or _reason_name(revoked) is x509.ReasonFlags.remove_from_crl:
            return None
        return loaded, revoked

    def revocation(self, cert: x509.Certificate, now: datetime | None = None) -> str | None:
        """Why ``cert`` is revoked ("revoked since ... by FILE"), or None (a RevocationCheck).

        ``now`` (default: the wall clock) only decides whether the CRL is
        stale, which is logged once: its revocations apply either way.
        """
        found = self.entry(cert)
        if found is None:
            return None
        loaded, revoked = found
        if loaded.stale(now) and loaded.path not in self._warned_stale:
            self._warned_stale.add(loaded.path)
            log.warning("%s: CRL is past its nextUpdate; still applying its revocations", loaded.path)
        reason = _reason_name(revoked)
        why = f" ({reason.value})" if reason is not None else ""
        return f"revoked since {revoked.revocation_date_utc:%Y-%m-%d}{why} by CRL {loaded.path.name}"

    def stale(self, now: datetime | None = None) -> list[LoadedCrl]:
        """The CRLs past their nextUpdate at ``now``."""
        return [c for c in self if c.stale(now)]


# --- issuing CRLs (private PKI) ----------------------------------------------


def issue_crl(issuer_cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
              revoked: Sequence[tuple[int, datetime, x509.ReasonFlags | None]], *, number: int = 1,
              this_update: datetime | None = None, next_update: datetime | None = None,
              days: int = 30) -> x509.CertificateRevocationList:
    """A CRL of ``issuer_cert`` listing ``(serial, revocationDate, reason)`` entries.

    RFC 5280 5.1 / 5.2: issuer name, thisUpdate, nextUpdate (default ``days``
    later), authorityKeyIdentifier and cRLNumber, signed ecdsa-with-SHA256.
    """
    ski = subject_key_identifier(issuer_cert)
    if ski is None:
        raise ValueError("the CRL issuer certificate has no subjectKeyIdentifier")
    start = this_update or utc_now(None).replace(microsecond=0) - timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(start)
        .next_update(next_update or start + timedelta(days=days))
        .add_extension(x509.AuthorityKeyIdentifier(ski, None, None), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer_key, hashes.SHA256())


def _file_stem(issuer_cert: x509.Certificate) -> str:
    names = issuer_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else "issuer"
    ski = subject_key_identifier(issuer_cert) or b""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") + "-" + ski.hex()[:8]


def _existing_crl(crl_dir: Path, issuer_cert: x509.Certificate
                  ) -> tuple[Path, x509.CertificateRevocationList] | None:
    """The CRL of ``issuer_cert`` already in ``crl_dir`` (verified with its key), if any."""
    for path in sorted(crl_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in CRL_SUFFIXES:
            continue
        try:
            crls, _ = _read(path)
        except (ValueError, OSError):
            continue
        for crl in crls:
            if _signer(crl, [issuer_cert]) is not None and crl.is_signature_valid(issuer_cert.public_key()):
                return path, crl
    return None


def revoke(crl_dir: Path, issuer_cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
           serials: Sequence[int], *, reason: x509.ReasonFlags | None = None, days: int = 30,
           when: datetime | None = None, issuer_chain: Sequence[x509.Certificate] = ()) -> Path:
    """Add ``serials`` to the CRL of ``issuer_cert`` in ``crl_dir`` (made if absent); its path.

    An existing CRL of the same issuer keeps its entries and gets the next
    cRLNumber.  For an issuer that is not self-signed (an EUM), its
    certificate, and the sub-CAs of ``issuer_chain`` between it and the CI,
    are written next to the CRL so that the SM-DP+ can verify it.
    """
    crl_dir = Path(crl_dir)
    if issuer_cert.public_key() != issuer_key.public_key():
        raise ValueError("the issuer key does not belong to the issuer certificate")
    make_dir(crl_dir)
    moment = utc_now(when).replace(microsecond=0)
    entries: dict[int, tuple[int, datetime, x509.ReasonFlags | None]] = {}
    number = 1
    target = crl_dir / f"{_file_stem(issuer_cert)}.crl"
    existing = _existing_crl(crl_dir, issuer_cert)
    if existing is not None:
        target, old = existing
        for item in old:
            entries[item.serial_number] = (item.serial_number, item.revocation_date_utc, _reason_name(item))
        old_number = LoadedCrl(target, old, issuer_cert).number
        number = (old_number or 0) + 1
    for serial in serials:
        entries.setdefault(serial, (serial, moment, reason))
    crl = issue_crl(issuer_cert, issuer_key, sorted(entries.values()), number=number, days=days)
    pem = target.suffix.lower() == ".pem" or (target.exists() and _PEM_CRL in target.read_bytes())
    write_file(target, crl.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER))
    for cert in (issuer_cert, *issuer_chain):
        if cert.issuer == cert.subject:  # a CI is loaded from the certificate folder
            continue
        der = cert.public_bytes(serialization.Encoding.DER)
        if not any(p.is_file() and p.read_bytes() == der for p in crl_dir.iterdir()):
            write_file(crl_dir / f"{_file_stem(cert)}-issuer.der", der)
    return target


__all__ = ["CRL_SUFFIXES", "CrlError", "CrlSet", "LoadedCrl", "issue_crl", "revoke"]
