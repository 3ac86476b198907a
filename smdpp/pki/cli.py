"""``smdpp-pki``: a private RSP PKI for smdpp (SGP.26 layout), CRLs and ES2+ operators.

    smdpp-pki create --certs smdpp-data/certs [--euicc smdpp-data/euicc] [--curve nist|brainpool]
                     [--hostname testsmdpplus1.example.com] [--smdp-oid 2.999.10]
                     [--ein 89049032 ...] [--eid EID]
    smdpp-pki issue-euicc --euicc smdpp-data/euicc --count 10 [--ein 89049032] [--first 1]
    smdpp-pki revoke --issuer-cert EUM_OR_CI.der --issuer-key KEY.pem --cert CERT.der ...
                     --crl-dir smdpp-data/crl [--reason keyCompromise] [--days 30]
    smdpp-pki operator NAME --data-dir smdpp-data [--notify-url URL] [--notify-ca FILE]
                     [--cert FILE]

``create`` writes a CI, DPauth, DPpb and DPtls (for the hostname and SM-DP+
OID) into ``--certs``, and an EUM allowed the EIN range ``--ein`` with one
eUICC identity into ``--euicc`` (default: ``euicc`` next to ``--certs``, or
``euicc-brainpool`` for that curve, so both PKIs can share one certificate
folder).  ``issue-euicc`` uses the EUM kept there and writes one sub-folder
per EID with the same files (ci_cert.der, eum_cert.der, euicc_cert.der,
euicc_key.pem); EIDs get valid check digits (SGP.29).  ``revoke`` adds
certificates to the issuer's CRL in ``--crl-dir`` (the CI revokes EUM and
SM-DP+ certificates, an EUM its eUICC certificates); the SM-DP+ reads it at
start and on SIGHUP.  ``operator`` registers an ES2+ operator (SGP.22 5.3)
under its functionRequesterIdentifier NAME: with a client certificate and key
issued under smdpp's operator CA, or with ``--cert`` the certificate the
operator brings (see :mod:`smdpp.pki.operator`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from cryptography import x509

from smdpp.pki.chain import eid_range
from smdpp.pki.crl import revoke
from smdpp.pki.eid import make_eid
from smdpp.pki.files import load_certificate as _load_certificate, load_private_key
from smdpp.pki.issue import CURVES, DEFAULT_EID, create_test_pki, issue_euicc

_REASONS = {r.value: r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdpp-pki", description="Private RSP PKI for smdpp (SGP.26 layout).")
    sub = parser.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create CI, DPauth, DPpb, DPtls, EUM and one eUICC")
    create.add_argument("--certs", type=Path, required=True, help="SM-DP+ certificate folder")
    create.add_argument("--euicc", type=Path, default=None,
                        help="folder for the EUM and eUICC (default: euicc, or euicc-brainpool, "
                             "next to --certs)")
    create.add_argument("--curve", choices=sorted(CURVES), default="nist")
    create.add_argument("--hostname", default="testsmdpplus1.example.com", help="SM-DP+ address (TLS name)")
    create.add_argument("--smdp-oid", default="2.999.10", help="SM-DP+ OID in the subjectAltName")
    create.add_argument("--ein", action="append", default=None, metavar="EIN",
                        help="EID prefix (IIN / EIN) the EUM may use; repeat for several "
                             "(default: the first 8 digits of the EID)")
    create.add_argument("--eid", default=None, help=f"EID of the first eUICC (default {DEFAULT_EID})")

    issue = sub.add_parser("issue-euicc", help="issue more eUICC identities with the kept EUM")
    issue.add_argument("--euicc", type=Path, required=True, help="folder written by 'create'")
    issue.add_argument("--count", type=int, default=1)
    issue.add_argument("--ein", default=None, help="EID prefix inside the EUM's range (default: its first)")
    issue.add_argument("--first", type=int, default=1, help="serial number of the first EID")

    rev = sub.add_parser("revoke", help="add certificates to the CRL of their issuer")
    rev.add_argument("--issuer-cert", type=Path, required=True,
                     help="certificate of the issuer (the CI, or the EUM for eUICC certificates)")
    rev.add_argument("--issuer-key", type=Path, required=True, help="the issuer's private key (PEM)")
    rev.add_argument("--cert", type=Path, action="extend", nargs="+", default=[], metavar="FILE",
                     help="certificate(s) to revoke (DER or PEM)")
    rev.add_argument("--serial", action="extend", nargs="+", default=[], metavar="N",
                     help="serial number(s) to revoke (decimal, or hex with 0x)")
    rev.add_argument("--crl-dir", type=Path, required=True, help="the SM-DP+ CRL folder, e.g. smdpp-data/crl")
    rev.add_argument("--chain", type=Path, action="extend", nargs="+", default=[], metavar="FILE",
                     help="sub-CA certificate between the issuer and the CI, copied next to the CRL")
    rev.add_argument("--reason", choices=sorted(_REASONS), default=None, help="CRL reason code")
    rev.add_argument("--days", type=int, default=30, help="days until the CRL's nextUpdate (default: 30)")

    op = sub.add_parser("operator", help="register an ES2+ operator (client certificate)")
    op.add_argument("name", help="the operator's functionRequesterIdentifier")
    op.add_argument("--data-dir", type=Path, default=Path("smdpp-data"),
                    help="the SM-DP+ data folder (default: ./smdpp-data)")
    op.add_argument("--notify-url", default=None,
                    help="where HandleDownloadProgressInfo goes (https://, or http:// on loopback)")
    op.add_argument("--notify-ca", type=Path, default=None,
                    help="CA file that verifies the notify URL's HTTPS server")
    op.add_argument("--cert", type=Path, default=None,
                    help="register this certificate (PEM or DER) instead of issuing one")
    return parser


def _create(args: argparse.Namespace) -> None:
    euicc = args.euicc or args.certs.parent / ("euicc" if args.curve == "nist" else f"euicc-{args.curve}")
    create_test_pki(args.certs, euicc, hostname=args.hostname, smdp_oid=args.smdp_oid,
                    curve=args.curve, eid=args.eid, eins=args.ein)
    print(f"{args.curve} PKI written to {args.certs}, EUM and eUICC identity to {euicc}")


def _issue(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise ValueError("--count must be at least 1")
    ein = args.ein
    if ein is None:
        found = eid_range(_load_certificate(args.euicc / "eum_cert.der"))
        prefixes = (found.eins or tuple(p for p, _ in found.subtrees or ())) if found else ()
        if not prefixes:
            raise ValueError(f"{args.euicc / 'eum_cert.der'}: the EUM has no EID range; give --ein")
        ein = prefixes[0]
    for serial in range(args.first, args.first + args.count):
        print(issue_euicc(args.euicc, make_eid(ein, serial)))


def _revoke(args: argparse.Namespace) -> None:
    issuer = _load_certificate(args.issuer_cert)
    key = load_private_key(args.issuer_key)
    serials = [int(s, 0) for s in args.serial]
    for path in args.cert:
        cert = _load_certificate(path)
        if cert.issuer != issuer.subject:
            raise ValueError(f"{path}: not issued by {issuer.subject.rfc4514_string()}")
        serials.append(cert.serial_number)
    if not serials:
        raise ValueError("nothing to revoke: give --cert or --serial")
    chain = [_load_certificate(p) for p in args.chain]
    target = revoke(args.crl_dir, issuer, key, serials, reason=_REASONS.get(args.reason or ""),
                    days=args.days, issuer_chain=chain)
    print(f"{target}: revoked serial(s) {', '.join(f'{s:x}' for s in serials)}")


def _operator(args: argparse.Namespace) -> None:
    from smdpp.pki.operator import issue_operator
    files = issue_operator(args.data_dir, args.name, notify_url=args.notify_url,
                           notify_ca=args.notify_ca, certificate=args.cert)
    print(f"operator {args.name} registered in {files.registration}")
    print(f"client certificate: {files.certificate}")
    if files.key is not None:
        print(f"client key:         {files.key}")
    if files.operator_ca is not None:
        print(f"issued by:          {files.operator_ca}")
    for ca in sorted((args.data_dir / "certs" / "CertificateIssuer").glob("CERT_CI_*.pem")):
        print(f"server CA file:     {ca}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smdpp-pki``; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        {"create": _create, "issue-euicc": _issue, "revoke": _revoke,
         "operator": _operator}[args.command](args)
    except (ValueError, OSError) as exc:
        print(f"smdpp-pki: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
