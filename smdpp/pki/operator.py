"""Operator certificates for ES2+ mutual TLS (``smdpp-pki operator``).

ES2+ runs over mutual TLS (SGP.22 2.6.6): the operator presents a client
certificate.  For labs smdpp keeps a small operator CA of its own in
``smdpp-data/operators/_ca/`` (created on first use; NIST P-256, like the
rest of our test PKI) and issues each operator a P-256 key and a client
certificate (CN = the operator's name, extendedKeyUsage clientAuth).  An
operator that brings its own certificate registers that one instead.  Either
way the registry (:mod:`smdpp.orders.operators`) binds the certificate's
SHA-256 to the name, which becomes the operator's functionRequesterIdentifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smdpp.orders.operators import (NAME, OPERATORS_DIR, Operator, OperatorRegistry,
                                    certificate_fingerprint, check_notify_url)
from smdpp.pki.files import load_certificate, load_private_key, make_dir, write_file, write_key
from smdpp.pki.issue import _builder, _key_usage, _now, _with_aki, _years

CA_DIR = "_ca"
CA_CERT, CA_KEY = "operator_ca.pem", "operator_ca_key.pem"


@dataclass(frozen=True)
class OperatorFiles:
    """What ``smdpp-pki operator`` wrote or registered."""

    registration: Path  # operators/NAME.json
    certificate: Path
    key: Path | None  # None for a certificate the operator brought
    operator_ca: Path | None


def _operator_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists():
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), \
            load_private_key(key_path), cert_path
    make_dir(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smdpp operator CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smdpp")])
    start = _now()
    cert = (_builder(name, name, key.public_key(), start, _years(start, 20))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .sign(key, hashes.SHA256()))
    write_key(key_path, key)
    write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, cert_path


def issue_operator(data_dir: Path, name: str, *, notify_url: str | None = None,
                   notify_ca: Path | None = None, certificate: Path | None = None) -> OperatorFiles:
    """Register operator ``name``: issue it a client certificate, or take ``certificate``."""
    if not NAME.fullmatch(name):
        raise ValueError(f"operator name {name[:80]!r}: 1 to 64 letters, digits, '.', '_', '-', "
                         "starting with a letter or digit")
    if notify_url:
        notify_url = check_notify_url(notify_url)
    folder = Path(data_dir) / OPERATORS_DIR
    ca_path: Path | None = None
    key_path: Path | None = None
    if certificate is not None:
        cert = load_certificate(certificate)
        cert_path = Path(certificate).resolve()
    else:
        ca_cert, ca_key, ca_path = _operator_ca(folder / CA_DIR)
        key = ec.generate_private_key(ec.SECP256R1())
        start = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smdpp operator")])
        cert = (_with_aki(_builder(subject, ca_cert.subject, key.public_key(), start,
                                   _years(start, 5)), ca_cert)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        own = folder / name
        make_dir(own)
        cert_path, key_path = own / "cert.pem", own / "key.pem"
        write_key(key_path, key)
        write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    der = cert.public_bytes(serialization.Encoding.DER)
    registry = OperatorRegistry(folder)
    holder = registry.by_certificate(der)
    if holder is not None and holder.name != name:
        raise ValueError(f"this certificate is already operator {holder.name}'s")
    operator = Operator(name, certificate_fingerprint(der), notify_url,
                        Path(notify_ca).resolve() if notify_ca else None)
    registration = registry.register(operator)
    return OperatorFiles(registration, cert_path, key_path, ca_path)
