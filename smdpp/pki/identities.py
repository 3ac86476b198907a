"""The SM-DP+ identities of a certificate folder, and which one is served under each CI.

An SM-DP+ identity is the SM-DP+ OID (the registeredID in the subjectAltName
of CERT.DPauth.ECDSA and CERT.DPpb.ECDSA, SGP.22 4.5.2.1.0.4/5) under one CI.
SGP.26 v3, as shipped in pySim's ``smdpp-data/certs``, has several side by
side under each CI: DP (2.999.10, ``CERT_S_SM_DPauth_ECDSA_NIST``), DP2
(2.999.12, ``CERT_S_SM_DP2auth_ECDSA_NIST``), and TLS certificates of DP4 and
DP8 too.  One identity is served per CI: the one named by ``--smdp-identity``
(its label, ``DP2``, or its OID), by default the one whose DPauth file has no
digit after ``DP`` (the one osmo-smdpp loads), or the only one there is.
Labels come from the SGP.26 file names; the grouping itself goes by content
(issuing CI, SM-DP+ OID).  More identities may be served side by side, each
at its own SM-DP+ address (:meth:`smdpp.pki.store.CertificateStore.credentials`
with the address an eUICC asks for, SGP.22 5.6.1 smdpAddress).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.pki.certificate import authority_key_identifier, check_smdp_certificate, registered_ids
from smdpp.pki.folder import FolderContent, matching_key

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LABEL", "DpCertificate", "DpCredentials", "SmdpIdentity", "checked_pair",
           "find_identities", "label_of", "refuse_broken", "select_identities", "served_credentials"]

#: The label of the identity osmo-smdpp serves (``CERT_S_SM_DPauth_ECDSA_NIST`` / ``_BRP``).
DEFAULT_LABEL = "DP"
# SGP.26 names: CERT_S_SM_DPauth_..., CERT_S_SM_DP2pb_..., CERT_S_SM_DP4_TLS...
_LABEL = re.compile(r"(?:^|_)(DP\d*)(?:auth|pb|_TLS)(?=_|\.|$)")


def label_of(path: Path) -> str | None:
    """The SGP.26 SM-DP+ label in a file name ('DP', 'DP2', ...), or None."""
    match = _LABEL.search(path.name)
    return match.group(1) if match else None


@dataclass(frozen=True)
class DpCertificate:
    """One DPauth or DPpb certificate file as found, before any check."""

    path: Path
    cert: x509.Certificate
    ci_pkid: bytes | None  # the AKI, if it names a loaded CI
    oid: str | None  # the one registeredID of the subjectAltName, if exactly one
    label: str | None  # from the file name
    folder: str  # 'DPauth' or 'DPpb'

    def wanted(self, choice: str | None) -> bool:
        """True if this certificate would be served with ``--smdp-identity choice`` (or the default)."""
        wanted = choice or DEFAULT_LABEL
        return self.oid == wanted or (self.label or "").upper() == wanted.upper()


@dataclass(frozen=True)
class SmdpIdentity:
    """The DPauth and DPpb certificates of one SM-DP+ OID under one CI."""

    ci_pkid: bytes
    oid: str | None
    auth: tuple[DpCertificate, ...]
    pb: tuple[DpCertificate, ...]

    @property
    def label(self) -> str:
        """'DP', 'DP2', ... from the file names (DPauth first), else the OID."""
        for found in (*self.auth, *self.pb):
            if found.label:
                return found.label
        return self.oid or "?"

    @property
    def name(self) -> str:
        return f"{self.label} ({self.oid or 'no SM-DP+ OID'})"

    def matches(self, choice: str) -> bool:
        """True if ``choice`` is this identity's OID or label (case-insensitive)."""
        return choice == self.oid or choice.upper() == self.label.upper()

    @property
    def is_default(self) -> bool:
        """True if a DPauth file carries osmo-smdpp's name (no digit after DP)."""
        return any(found.label == DEFAULT_LABEL for found in self.auth)


@dataclass(frozen=True)
class DpCredentials:
    """One SM-DP+ credential set under one CI (SGP.22 2.6.7)."""

    ci_pkid: bytes  # SKI of the CI
    auth_cert_der: bytes  # CERT.DPauth.ECDSA
    auth_key: ec.EllipticCurvePrivateKey  # SK.DPauth.ECDSA
    pb_cert_der: bytes  # CERT.DPpb.ECDSA
    pb_key: ec.EllipticCurvePrivateKey  # SK.DPpb.ECDSA
    smdp_oid: str  # registeredID from the DPauth subjectAltName
    label: str = "DP"  # the SGP.26 name of the identity (DP, DP2, ...), for logs

    @property
    def curve(self) -> str:
        """The curve of the set ('secp256r1' or 'brainpoolP256r1'), that of its CI."""
        return self.auth_key.curve.name

    def __repr__(self) -> str:  # never show key material
        return f"DpCredentials(ci_pkid={self.ci_pkid.hex()}, smdp_oid={self.smdp_oid}, curve={self.curve})"


def _found(path: Path, cert: x509.Certificate, ci_pkids: Iterable[bytes], folder: str
           ) -> DpCertificate:
    aki = authority_key_identifier(cert)
    oids = registered_ids(cert)
    return DpCertificate(path, cert, aki if aki in set(ci_pkids) else None,
                         oids[0] if len(oids) == 1 else None, label_of(path), folder)


def find_identities(auth: FolderContent, pb: FolderContent, ci_pkids: Sequence[bytes]
                    ) -> tuple[list[SmdpIdentity], list[DpCertificate]]:
    """The identities under the loaded CIs, and the certificates issued by none of them."""
    groups: dict[tuple[bytes, str], tuple[list[DpCertificate], list[DpCertificate]]] = {}
    unchained: list[DpCertificate] = []
    for index, content in enumerate((auth, pb)):
        for path, cert in content.certs:
            found = _found(path, cert, ci_pkids, ("DPauth", "DPpb")[index])
            if found.ci_pkid is None:
                unchained.append(found)
                continue
            key = (found.ci_pkid, found.oid or f"?{found.label}")
            if found.oid is None and index == 1:  # a DPpb without OID joins the DPauth of its label
                key = next((k for k, (a, _) in groups.items() if k[0] == found.ci_pkid
                            and any(x.label == found.label for x in a)), key)
            groups.setdefault(key, ([], []))[index].append(found)
    identities = [SmdpIdentity(ci, oid if not oid.startswith("?") else None, tuple(a), tuple(p))
                  for (ci, oid), (a, p) in groups.items()]
    return sorted(identities, key=lambda i: (i.ci_pkid, len(i.label), i.label)), unchained


def refuse_broken(contents: Iterable[FolderContent], choices: Sequence[str | None]) -> None:
    """Stop at a broken DPauth/DPpb certificate that may belong to an identity to serve.

    Its content cannot say whose it is, so its file name does: one named for
    another identity (``..._DP2auth_...`` when DP is served) is only logged.
    """
    wanted = {(choice or DEFAULT_LABEL).upper() for choice in choices}

    def matters(path: Path) -> bool:
        label = label_of(path)
        return label is None or any("." in w for w in wanted) or label.upper() in wanted

    for content in contents:
        content.refuse_broken(matters)


def select_identities(identities: Sequence[SmdpIdentity], unchained: Sequence[DpCertificate],
                      choice: str | None) -> dict[bytes, SmdpIdentity]:
    """The identity to serve under each CI; ValueError naming the files if that is unclear.

    With ``choice`` (``--smdp-identity``), a CI without that identity serves
    none (logged); no CI with it at all is an error.  Without, each CI serves
    its default identity or its only one.  A certificate that names no
    loaded CI stops the start if it would have been served (the chosen OID
    or label, or the default name), otherwise it is logged and skipped.
    """
    wanted = choice or DEFAULT_LABEL
    for found in unchained:
        if found.folder == "DPauth" and found.wanted(choice):
            raise ValueError(f"{found.path}: not issued by any CI in CertificateIssuer/")
        log.warning("skipping %s: not issued by any CI in CertificateIssuer/", found.path)
    by_ci: dict[bytes, list[SmdpIdentity]] = {}
    for identity in identities:
        by_ci.setdefault(identity.ci_pkid, []).append(identity)
    selected: dict[bytes, SmdpIdentity] = {}
    for ci_pkid, found in by_ci.items():
        names = ", ".join(i.name for i in found)
        if choice is not None:
            matching = [i for i in found if i.matches(choice)]
        else:
            matching = [i for i in found if i.is_default] or (found if len(found) == 1 else [])
        if len(matching) > 1:
            raise ValueError(f"{', '.join(str(c.path) for i in matching for c in i.auth)}: "
                             f"several SM-DP+ identities match {wanted} under CI {ci_pkid.hex()}")
        if not matching and choice is None:
            raise ValueError(f"{found[0].auth[0].path.parent if found[0].auth else 'DPauth/'}: "
                             f"several SM-DP+ identities under CI {ci_pkid.hex()} ({names}) and "
                             f"none named like osmo-smdpp's default (CERT_S_SM_DPauth_*): "
                             f"choose one with --smdp-identity")
        if matching:
            selected[ci_pkid] = matching[0]
        log.info("SM-DP+ identities under CI %s: %s; served: %s", ci_pkid.hex(), names,
                 matching[0].name if matching else f"none (no {choice} under this CI)")
    if choice is not None and not selected:
        raise ValueError(f"no SM-DP+ identity {choice} in DPauth/ (found: "
                         f"{', '.join(i.name for i in identities) or 'none'})")
    return selected


def checked_pair(identity: SmdpIdentity, ci_cert: x509.Certificate, auth: FolderContent,
                 pb: FolderContent, now: datetime, unchained: Sequence[DpCertificate] = ()
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey,
                            x509.Certificate, ec.EllipticCurvePrivateKey]:
    """DPauth and DPpb of a served identity with their keys, after every start-up check.

    ValueError naming the file: missing or doubled DPauth/DPpb, no single SM-DP+
    OID, a failed profile check of SGP.22 4.5.2.1.0.4/5 (CI signature, role
    policy, keyUsage, dates: eUICCs refuse an expired DPauth/DPpb, 5.7.13) or
    no matching private key.  A missing DPpb is named by the DPpb file of the
    identity's name that no loaded CI issued, if there is one.
    """
    pair = []
    for role, folder, found, content in (("auth", "DPauth", identity.auth, auth),
                                         ("pb", "DPpb", identity.pb, pb)):
        lost = [u for u in unchained if u.folder == folder and u.wanted(identity.label)]
        if not found and lost:
            raise ValueError(f"{lost[0].path}: not issued by any CI in CertificateIssuer/")
        if not found:
            other = (identity.auth or identity.pb)[0].path
            raise ValueError(f"{other}: no {folder} certificate for SM-DP+ {identity.name} "
                             f"under the same CI {identity.ci_pkid.hex()}")
        if len(found) > 1:
            raise ValueError(f"{', '.join(str(f.path) for f in found)}: several {folder} "
                             f"certificates for SM-DP+ {identity.name} under one CI")
        path, cert = found[0].path, found[0].cert
        if role == "auth" and identity.oid is None:
            raise ValueError(f"{path}: subjectAltName must carry one registeredID (SM-DP+ OID)")
        try:
            check_smdp_certificate(cert, ci_cert, role, now)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        pair.append((cert, matching_key(path, cert, content)[1]))
    (auth_cert, auth_key), (pb_cert, pb_key) = pair
    return auth_cert, auth_key, pb_cert, pb_key


def served_credentials(identities: Sequence[SmdpIdentity], unchained: Sequence[DpCertificate],
                       choice: str | None, cis: Mapping[bytes, x509.Certificate],
                       contents: tuple[FolderContent, FolderContent],
                       revocation: Callable[[x509.Certificate], str | None], now: datetime
                       ) -> dict[bytes, DpCredentials]:
    """The credentials per CI of the identity ``choice`` (default: osmo-smdpp's), all checked.

    ``revocation`` is the loaded CRLs' lookup: a revoked DPauth/DPpb stops the
    start too (SGP.22 4.5.2.1 lists them on the CI's CRL).
    """
    credentials: dict[bytes, DpCredentials] = {}
    auth, pb = contents
    for pkid, identity in select_identities(identities, unchained, choice).items():
        auth_cert, auth_key, pb_cert, pb_key = checked_pair(identity, cis[pkid], auth, pb, now, unchained)
        for folder, found, cert in (("DPauth", identity.auth, auth_cert), ("DPpb", identity.pb, pb_cert)):
            revoked = revocation(cert)
            if revoked:
                raise ValueError(f"{found[0].path}: {folder} certificate is {revoked}")
        credentials[pkid] = DpCredentials(
            ci_pkid=pkid, auth_cert_der=auth_cert.public_bytes(serialization.Encoding.DER),
            auth_key=auth_key, pb_cert_der=pb_cert.public_bytes(serialization.Encoding.DER),
            pb_key=pb_key, smdp_oid=str(identity.oid), label=identity.label)
    return credentials
