"""``smdpp-pki``: create a private test PKI and issue eUICC identities.

    smdpp-pki create --certs smdpp-data/certs --euicc smdpp-data/euicc [--curve nist|brainpool]
                     [--hostname testsmdpplus1.example.com] [--smdp-oid 2.999.10] [--eid EID]
    smdpp-pki issue-euicc --euicc smdpp-data/euicc --count 10 [--ein 89049032] [--first 1]

``issue-euicc`` uses the EUM kept by ``create`` in the ``--euicc`` folder and
writes one sub-folder per EID with the same files (ci_cert.der, eum_cert.der,
euicc_cert.der, euicc_key.pem).  EIDs get valid check digits (SGP.29).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from smdpp.pki.eid import make_eid
from smdpp.pki.issue import CURVES, DEFAULT_EID, create_test_pki, issue_euicc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdpp-pki", description="Test PKI for smdpp (SGP.26 layout).")
    sub = parser.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create CI, DPauth, DPpb, DPtls, EUM and one eUICC")
    create.add_argument("--certs", type=Path, required=True, help="SM-DP+ certificate folder")
    create.add_argument("--euicc", type=Path, required=True, help="folder for the EUM and eUICC")
    create.add_argument("--curve", choices=sorted(CURVES), default="nist")
    create.add_argument("--hostname", default="testsmdpplus1.example.com", help="SM-DP+ address (TLS name)")
    create.add_argument("--smdp-oid", default="2.999.10", help="SM-DP+ OID in the subjectAltName")
    create.add_argument("--eid", default=None, help=f"EID of the first eUICC (default {DEFAULT_EID})")

    issue = sub.add_parser("issue-euicc", help="issue more eUICC identities with the kept EUM")
    issue.add_argument("--euicc", type=Path, required=True, help="folder written by 'create'")
    issue.add_argument("--count", type=int, default=1)
    issue.add_argument("--ein", default=DEFAULT_EID[:8], help="EID prefix inside the EUM's range")
    issue.add_argument("--first", type=int, default=1, help="serial number of the first EID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smdpp-pki``; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "create":
            create_test_pki(args.certs, args.euicc, hostname=args.hostname, smdp_oid=args.smdp_oid,
                            curve=args.curve, eid=args.eid)
            print(f"test PKI written to {args.certs} and {args.euicc}")
        else:
            if args.count < 1:
                raise ValueError("--count must be at least 1")
            for serial in range(args.first, args.first + args.count):
                print(issue_euicc(args.euicc, make_eid(args.ein, serial)))
    except (ValueError, OSError) as exc:
        print(f"smdpp-pki: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
