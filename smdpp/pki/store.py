"""The SM-DP+ certificate store: CIs, DPauth/DPpb credentials per CI, DPtls.

Layout (SGP.26 / osmo-smdpp, see :mod:`smdpp.pki.issue`)::

    certs_dir/CertificateIssuer/*.der | *.pem   CI certificates (PK.CI.ECDSA)
    certs_dir/DPauth/CERT_*.der + SK_*.pem      CERT.DPauth.ECDSA and SK.DPauth.ECDSA
    certs_dir/DPpb/CERT_*.der + SK_*.pem        CERT.DPpb.ECDSA and SK.DPpb.ECDSA
    certs_dir/DPtls/CERT_*.pem|der + SK_*.pem   TLS server certificates (optional; NIST and/or brainpool)
    crl_dir/*.crl ...                           CRLs and their issuers (see :mod:`smdpp.pki.crl`)

One credential set (DPauth + DPpb) is served per CI the SM-DP+ is certified
under; the CI is named by its public key identifier (the SKI of the CI
certificate, SGP.22 2.6.7.1 "CI PKID").  Several sets may be loaded at once
(e.g. a NIST P-256 and a brainpoolP256r1 CI); each session uses the one its
eUICC trusts.  Files are read by :mod:`smdpp.pki.folder` (other files
skipped); of several SM-DP+ identities under one CI, :mod:`smdpp.pki.identities`
picks the one served, and more may be served side by side at their own
addresses.  The store answers SGP.22 5.6.1 (which CI to use) and 5.6.3 (is
this eUICC genuine).

At load every certificate the SM-DP+ signs with must be usable: a CI is a
self-signed CA in date, each DPauth/DPpb chains to a loaded CI, carries its
role policy, is in date, not revoked and matches its key.  DPtls is checked
the same way by :meth:`CertificateStore.check_tls`, only when TLS is served, and
:meth:`CertificateStore.tls_sites` gives, per SM-DP+ address served, the DPtls naming it.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp import status
from smdpp.pki.certificate import (
    authority_key_identifier,
    check_ci_certificate,
    check_smdp_certificate,
    registered_ids,
    subject_key_identifier,
    utc_now,
    verify_smdp_certificate,
)
from smdpp.pki.chain import EuiccIdentity, verify_euicc_chain
from smdpp.pki.crl import CrlSet
from smdpp.pki.dptls import TlsCredential, TlsSite, tls_sites
from smdpp.pki.files import load_private_key
from smdpp.pki.folder import FolderContent, matching_key, scan_folder
from smdpp.pki.identities import DpCredentials, find_identities, label_of, refuse_broken, served_credentials

log = logging.getLogger(__name__)

__all__ = ["CertificateStore", "DpCredentials", "EuiccIdentity", "TlsCredential", "verify_smdp_certificate"]


# --- reading files ---------------------------------------------------------


def _scan(folder: Path, *, with_keys: bool = True, labels: set[str] | None = None) -> FolderContent:
    """Certificates and private keys of ``folder`` (:func:`~smdpp.pki.folder.scan_folder`).

    A broken certificate stops the start, unless ``labels`` are given and its
    file name carries another identity's label (a DPtls of an identity not served).
    """
    content = scan_folder(folder, with_keys=with_keys)
    content.refuse_broken(lambda path: labels is None or label_of(path) in (None, *labels))
    return content


def _side_address(choice: str, address: str | None, credentials: dict[bytes, DpCredentials],
                  tls_certs: list[tuple[Path, x509.Certificate]]) -> str:
    """The SM-DP+ address of an identity served side by side: given, or its DPtls dNSName."""
    if address:
        return address.lower()
    oids = {c.smdp_oid for c in credentials.values()}
    for _, cert in tls_certs:
        if oids.intersection(registered_ids(cert)):
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                continue
            names = san.get_values_for_type(x509.DNSName)
            if names:
                return names[0].lower()
    raise ValueError(f"SM-DP+ identity {choice}: no DPtls with a dNSName names its address; "
                     f"give it as --smdp-identity {choice}=ADDRESS")


def _serves(cert: x509.Certificate, oids: set[str]) -> bool:
    """True if a DPtls certificate belongs to one of the served SM-DP+ OIDs (or names none)."""
    found = registered_ids(cert)
    return not found or bool(oids.intersection(found))


class CertificateStore:
    """CIs and SM-DP+ credentials loaded from a certificate folder (see module docstring)."""

    def __init__(self, cis: dict[bytes, x509.Certificate], credentials: dict[bytes, DpCredentials],
                 tls: TlsCredential | None = None, *, tls_all: Sequence[TlsCredential] = (),
                 crls: CrlSet | None = None, crl_dir: Path | None = None,
                 tls_dir: Path | None = None) -> None:
        self._cis = dict(cis)
        self._credentials = dict(credentials)
        self._crls = crls if crls is not None else CrlSet()
        self._crl_dir = Path(crl_dir) if crl_dir is not None else None
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        #: Curve of the credential set to use when an eUICC trusts several of our CIs
        #: ('brainpoolP256r1' with -b/--brainpool); None: the eUICC's order of preference.
        self.preferred_curve: str | None = None
        #: Every DPtls of the default identity, NIST P-256 first; ``tls`` is the preferred (first) one.
        self.tls_all: tuple[TlsCredential, ...] = tuple(tls_all) or ((tls,) if tls is not None else ())
        # The DPtls of every identity served (side by side ones too), for tls_sites().
        self._tls_served: tuple[TlsCredential, ...] = self.tls_all
        self.tls = tls if tls is not None else (self.tls_all[0] if self.tls_all else None)
        #: address (lower case) -> credentials per CI of an identity served side by side
        self._by_host: dict[str, dict[bytes, DpCredentials]] = {}
        # The DPtls folder as read by load() (served identities only), for check_tls().
        self._tls_scan: FolderContent | None = None

    # -- loading --

    @classmethod
    def load(cls, certs_dir: Path, crl_dir: Path | None = None, *,
             now: datetime | None = None, smdp_identity: str | None = None,
             side_by_side: Sequence[tuple[str, str | None]] = ()) -> "CertificateStore":
        """Read ``certs_dir`` (and the CRLs in ``crl_dir``); ValueError naming the file at fault.

        Each CI must be a self-signed CA certificate with the ci policy, in
        date.  Each DPauth/DPpb certificate must chain to a loaded CI, carry
        its role policy, be in date, not be revoked and match a private key
        next to it; a CI with DPauth needs DPpb too.  Every CRL must verify
        and be current (:class:`~smdpp.pki.crl.CrlError` lists the files).

        ``smdp_identity`` chooses the identity served at the SM-DP+ address
        (:mod:`smdpp.pki.identities`); each (identity, address) of
        ``side_by_side`` is served at its own address, by default the
        dNSName of its DPtls (see :meth:`credentials`).
        """
        certs_dir = Path(certs_dir)
        moment = utc_now(now)
        ci_dir = certs_dir / "CertificateIssuer"
        if not ci_dir.is_dir():
            raise ValueError(f"{ci_dir}: missing (no CI certificate)")
        cis: dict[bytes, x509.Certificate] = {}
        for path, cert in _scan(ci_dir, with_keys=False).certs:
            try:
                check_ci_certificate(cert, moment)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            ski = subject_key_identifier(cert)
            assert ski is not None  # checked above
            cis[ski] = cert
        if not cis:
            raise ValueError(f"{ci_dir}: no CI certificate")
        crls = CrlSet.load(crl_dir, cis, moment) if crl_dir is not None else CrlSet()

        # Several SM-DP+ identities may share a CI (SGP.26: DP, DP2 ...): one is served per CI.
        empty = FolderContent()
        auth, pb = (scan_folder(certs_dir / f) if (certs_dir / f).is_dir() else empty
                    for f in ("DPauth", "DPpb"))
        refuse_broken((auth, pb), [smdp_identity, *(choice for choice, _ in side_by_side)])
        identities, unchained = find_identities(auth, pb, tuple(cis))
        loaded = [served_credentials(identities, unchained, choice, cis, (auth, pb), crls.revocation,
                                     moment) for choice in (smdp_identity, *(c for c, _ in side_by_side))]
        credentials, more = loaded[0], loaded[1:]
        tls_dir = certs_dir / "DPtls"
        labels = {c.label for creds in loaded for c in creds.values()}
        tls_scan = _scan(tls_dir, labels=labels) if tls_dir.is_dir() else FolderContent()
        by_host: dict[str, dict[bytes, DpCredentials]] = {}
        for (choice, address), side in zip(side_by_side, more):
            host = _side_address(choice, address, side, tls_scan.certs)
            if host in by_host:
                raise ValueError(f"SM-DP+ identity {choice}: address {host} is already served")
            by_host[host] = side
        # --tls serves the DPtls of every identity served, chosen per handshake by name (SNI).
        served = {c.smdp_oid for creds in loaded for c in creds.values()}
        for path, cert in tls_scan.certs:
            if not _serves(cert, served):
                log.info("%s: DPtls of SM-DP+ %s, not served by --tls", path,
                         ", ".join(registered_ids(cert)))
        tls_scan = replace(tls_scan, certs=[(p, c) for p, c in tls_scan.certs if _serves(c, served)])
        every_tls = cls._load_tls(tls_scan)
        default_oids = {c.smdp_oid for c in credentials.values()}
        store = cls(cis, credentials, tls_all=tuple(t for t in every_tls if _serves(t.certificate, default_oids)),
                    crls=crls, crl_dir=crl_dir, tls_dir=tls_dir)
        store._tls_scan = tls_scan
        store._tls_served = every_tls
        store._by_host = by_host
        return store

    @staticmethod
    def _load_tls(content: FolderContent) -> tuple[TlsCredential, ...]:
        """Every TLS certificate found with its key, NIST P-256 first; a PEM file is preferred
        (TLS stacks read PEM)."""

        # NIST P-256 first: every TLS client supports it, brainpool only some.
        def not_p256(item: tuple[Path, x509.Certificate]) -> bool:
            key = item[1].public_key()
            return not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1")

        found: list[TlsCredential] = []
        for path, cert in sorted(content.certs, key=not_p256):
            try:
                key_path, _ = matching_key(path, cert, content)
            except ValueError as exc:  # plain HTTP needs no DPtls; check_tls() refuses it
                log.warning("%s", exc)
                continue
            pem = path.with_suffix(".pem")
            if path.suffix == ".der" and pem.is_file() and b"-----BEGIN CERTIFICATE-----" in pem.read_bytes():
                path = pem
            if cert.not_valid_after_utc < utc_now(None):
                log.warning("%s: TLS certificate expired on %s", path, cert.not_valid_after_utc.date())
            found.append(TlsCredential(cert_path=path, key_path=key_path, certificate=cert))
        return tuple(found)

    # -- queries --

    @property
    def ci_pkids(self) -> tuple[bytes, ...]:
        """The PKIDs (SKIs) of all loaded CIs."""
        return tuple(self._cis)

    @property
    def credential_pkids(self) -> tuple[bytes, ...]:
        """The PKIDs of the CIs under which we hold DPauth/DPpb credentials."""
        return tuple(self._credentials)

    def ci_certificate(self, ci_pkid: bytes) -> x509.Certificate:
        """The CI certificate for ``ci_pkid``; SgpError 8.11.1/3.9 if unknown."""
        try:
            return self._cis[bytes(ci_pkid)]
        except KeyError:
            raise status.unknown_ci(f"unknown CI public key {bytes(ci_pkid).hex()}") from None

    @property
    def tls_served(self) -> tuple[TlsCredential, ...]:
        """Every DPtls of the identities served, side by side ones too (``tls_all``: the default's)."""
        return self._tls_served

    @property
    def side_by_side(self) -> dict[str, tuple[DpCredentials, ...]]:
        """The addresses of the identities served side by side, and their credentials."""
        return {host: tuple(creds.values()) for host, creds in self._by_host.items()}

    def serves_side_by_side(self, host: str) -> bool:
        """True if an identity is served side by side at ``host`` (lower case)."""
        return host in self._by_host

    def _at(self, host: str | None) -> dict[bytes, DpCredentials]:
        return self._by_host.get(host, self._credentials) if host else self._credentials

    def select_ci(self, for_verification: Sequence[bytes], for_signing: Sequence[bytes],
                  host: str | None = None) -> bytes:
        """Pick the CI PKID for this session (SGP.22 5.6.1, ES9+.InitiateAuthentication).

        The candidates are the PKIDs of ``euiccCiPKIdListForVerification``
        that are also in ``euiccCiPKIdListForSigning`` and under which we hold
        DPauth/DPpb credentials.  Of several, the first whose set is on
        :attr:`preferred_curve`, else the first in the eUICC's order of
        preference.  None: SgpError 8.8.2/3.1.  ``host``: the SM-DP+ address
        asked for, if an identity is served side by side there.
        """
        signing = {bytes(p) for p in for_signing}
        held = self._at(host)
        candidates = [bytes(p) for p in for_verification if bytes(p) in held and bytes(p) in signing]
        if not candidates:
            raise status.ci_not_supported("none of the eUICC's CI public keys is supported")
        for pkid in candidates:
            if held[pkid].curve == self.preferred_curve:
                return pkid
        return candidates[0]

    def credentials(self, ci_pkid: bytes, host: str | None = None) -> DpCredentials:
        """DPauth/DPpb credentials under ``ci_pkid`` (of the identity served side by side at
        ``host``, if any, else the default one); SgpError 8.11.1/3.9 if there are none."""
        try:
            return self._at(host)[bytes(ci_pkid)]
        except KeyError:
            raise status.unknown_ci(f"no SM-DP+ credentials under CI {bytes(ci_pkid).hex()}") from None

    def verify_euicc(self, eum_cert_der: bytes, euicc_cert_der: bytes, ci_pkid: bytes | None,
                     now: datetime | None = None, *, other_certs: Sequence[bytes] = ()) -> EuiccIdentity:
        """Verify the eUICC's certificate chain up to the CI ``ci_pkid`` (SGP.22 5.6.3).

        ``eum_cert_der`` certifies the eUICC certificate (EUM or EUM SubCA);
        ``other_certs`` is the v3 otherCertsInChain.  ``ci_pkid`` None means
        the loaded CI that the chain names.  Revoked certificates (the loaded
        CRLs) are refused.  ``now`` is the moment of every date check (the
        engine's clock; default the wall clock).  Unknown CI: 8.11.1/3.9; other failures as in
        :func:`smdpp.pki.chain.verify_euicc_chain` (8.1.2 / 8.1.3, 6.1 / 6.3).
        """
        if ci_pkid is None:
            ci_pkid = self._chain_ci(eum_cert_der, other_certs)
        ci_cert = self.ci_certificate(ci_pkid)
        crls = self._crls
        return verify_euicc_chain(ci_cert, eum_cert_der, euicc_cert_der, now,
                                  other_certs_der=other_certs,
                                  revoked=lambda cert: crls.revocation(cert, now))

    def _chain_ci(self, eum_cert_der: bytes, other_certs: Sequence[bytes]) -> bytes:
        """The PKID of the loaded CI that the EUM (or a certificate above it) names."""
        try:
            chain = [x509.load_der_x509_certificate(bytes(d)) for d in (eum_cert_der, *other_certs)]
            akis = [authority_key_identifier(c) for c in chain]
        except Exception as exc:  # malformed DER surfaces lazily in any accessor
            raise status.eum_certificate_invalid(f"EUM certificate invalid: {exc}") from None
        if akis[0] is None:
            raise status.eum_certificate_invalid("EUM certificate has no authorityKeyIdentifier")
        return next((aki for aki in akis if aki in self._cis), akis[0])

    # -- revocation --

    @property
    def crls(self) -> CrlSet:
        """The CRLs in use (replaced as a whole by :meth:`reload_crls`)."""
        return self._crls

    def reload_crls(self, now: datetime | None = None) -> int:
        """Read the CRL folder again (SIGHUP); the number of CRLs now in use.

        If any file fails (:class:`~smdpp.pki.crl.CrlError`, naming each), the
        CRLs in use stay as they were.  A CRL that revokes one of our own
        DPauth/DPpb certificates is logged as an error: eUICCs may refuse us.
        """
        if self._crl_dir is None:
            return len(self._crls)
        crls = CrlSet.load(self._crl_dir, self._cis, now)
        for creds in (*self._credentials.values(), *(c for side in self._by_host.values()
                                                       for c in side.values())):
            for role, der in (("DPauth", creds.auth_cert_der), ("DPpb", creds.pb_cert_der)):
                revoked = crls.revocation(x509.load_der_x509_certificate(der))
                if revoked:
                    log.error("our %s certificate under CI %s is %s", role, creds.ci_pkid.hex(), revoked)
        self._crls = crls
        return len(crls)

    # -- TLS --

    def check_tls(self, now: datetime | None = None) -> tuple[TlsCredential, ...]:
        """Every DPtls certificate fit to serve TLS; ValueError naming the file otherwise.

        For ``--tls``: each certificate in ``DPtls/`` must chain to a loaded
        CI, carry the dp-tls policy and digitalSignature, be in date (the
        message names the date), not be revoked and match a key in the
        folder.  No DPtls at all is an error too.
        """
        moment = utc_now(now)
        folder = self._tls_dir
        if folder is None or not folder.is_dir():
            if not self.tls_all:
                raise ValueError(f"{folder or 'DPtls/'}: no DPtls certificate for TLS")
            content = FolderContent([(c.cert_path, c.certificate) for c in self.tls_all],
                                    [(c.key_path, load_private_key(c.key_path)) for c in self.tls_all])
        else:
            content = self._tls_scan if self._tls_scan is not None else _scan(folder)
            if not content.certs:
                raise ValueError(f"{folder}: no DPtls certificate for TLS")
        for path, cert in content.certs:
            aki = authority_key_identifier(cert)
            if aki is None or aki not in self._cis:
                raise ValueError(f"{path}: DPtls certificate not issued by any CI in CertificateIssuer/")
            try:
                check_smdp_certificate(cert, self._cis[aki], "tls", None)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            if moment > cert.not_valid_after_utc:
                raise ValueError(f"{path}: DPtls certificate expired on "
                                 f"{cert.not_valid_after_utc:%Y-%m-%d}")
            if moment < cert.not_valid_before_utc:
                raise ValueError(f"{path}: DPtls certificate is not valid before "
                                 f"{cert.not_valid_before_utc:%Y-%m-%d}")
            revoked = self._crls.revocation(cert)
            if revoked:
                raise ValueError(f"{path}: DPtls certificate is {revoked}")
            matching_key(path, cert, content)
        return self.tls_all

    def tls_sites(self, hostname: str, now: datetime | None = None) -> tuple[TlsSite, ...]:
        """The DPtls per SM-DP+ address for ``--tls``: the default identity's at ``hostname`` first,
        then each identity served side by side at its own address.

        Every DPtls is checked as by :meth:`check_tls`; ValueError naming the
        address when an identity has no DPtls whose dNSName names it
        (:func:`smdpp.pki.dptls.tls_sites`).
        """
        self.check_tls(now)
        wanted = [(hostname.lower(), _identity_name(self._credentials.values()),
                   sorted({c.smdp_oid for c in self._credentials.values()}))]
        wanted += [(host, _identity_name(creds.values()), sorted({c.smdp_oid for c in creds.values()}))
                   for host, creds in self._by_host.items()]
        return tls_sites(wanted, self._tls_served, self._tls_dir or "DPtls/")


def _identity_name(credentials: Iterable[DpCredentials]) -> str:
    """'DP (2.999.10)': the label and OIDs of an identity's credential sets, for messages."""
    creds = list(credentials)
    oids = ", ".join(sorted({c.smdp_oid for c in creds}))
    return f"{creds[0].label if creds else '?'} ({oids or 'no SM-DP+ OID'})"
