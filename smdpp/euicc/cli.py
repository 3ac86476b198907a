"""``smdpp-lpa``: download a profile into a software eUICC from an SM-DP+ (SGP.22 3.1.3).

    smdpp-lpa download --smdp https://smdp.example.com --matching-id ABC-123 --identity euicc/
    smdpp-lpa download --activation-code 'LPA:1$smdp.example.com$ABC-123' --identity euicc/

The eUICC lives only for the run: the profile is verified, installed in
memory, reported to the SM-DP+, and can be written out with ``--save-upp``.
After the installation the ICCID and IMSI read from the decrypted profile
package are printed, so a personalized profile shows that its values arrived.
Exit status 0 on success, 1 when the download fails (the failed step and the
SGP.22 codes are printed), 2 for usage errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from smdpp.activation import ActivationCode, parse_activation_code
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import DownloadError, download
from smdpp.euicc.es9 import Es9Client
from smdpp.profiles.elements import InvalidPackage
from smdpp.profiles.show import installed_identifiers

__all__ = ["main", "ActivationCode", "parse_activation_code"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdpp-lpa", description="LPA with a software eUICC (SGP.22).")
    commands = parser.add_subparsers(dest="command", required=True)
    dl = commands.add_parser("download", help="download and install one profile",
                             description="Download one profile from an SM-DP+ into a software eUICC.")
    dl.add_argument("--smdp", metavar="URL",
                    help="SM-DP+ base URL, http(s)://host[:port] (default https://<address>)")
    dl.add_argument("--matching-id", metavar="ID", help="the matchingId (activation code token)")
    dl.add_argument("--activation-code", metavar="AC",
                    help="activation code 'LPA:1$address$matchingId[$oid[$1]]' instead of "
                         "--address/--matching-id")
    dl.add_argument("--address", metavar="HOST[:PORT]",
                    help="SM-DP+ address as in an activation code (default: host[:port] of --smdp)")
    dl.add_argument("--identity", metavar="DIR", required=True, type=Path,
                    help="eUICC identity folder (ci_cert.der, eum_cert.der, euicc_cert.der, euicc_key.pem)")
    dl.add_argument("--confirmation-code", metavar="CC", help="confirmation code, if the order has one")
    dl.add_argument("--ca-file", metavar="PEM", help="CA certificates to verify the SM-DP+ TLS certificate")
    dl.add_argument("--save-upp", metavar="FILE", type=Path, help="write the installed UPP (DER) to FILE")
    dl.add_argument("--timeout", metavar="SECONDS", type=float, default=30, help="HTTP timeout (default 30)")
    return parser


def _download(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    smdp_oid = None
    if args.activation_code is not None:
        if args.matching_id is not None or args.address is not None:
            parser.error("--activation-code replaces --address and --matching-id")
        try:
            ac = parse_activation_code(args.activation_code)
        except ValueError as exc:
            parser.error(f"--activation-code: {exc}")
        address, matching_id, smdp_oid = ac.smdp_address, ac.matching_id, ac.smdp_oid
        if ac.confirmation_code_required and args.confirmation_code is None:
            print("warning: the activation code says a confirmation code is required "
                  "(--confirmation-code)", file=sys.stderr)
    else:
        if args.smdp is None or args.matching_id is None:
            parser.error("give --smdp and --matching-id, or --activation-code")
        matching_id = args.matching_id
        address = args.address or urlsplit(args.smdp).netloc
    base_url = args.smdp or f"https://{address}"

    try:
        euicc = SoftEuicc.from_identity_dir(args.identity)
        # Over TLS the certificate must name the SM-DP+ address, wherever --smdp points.
        client = Es9Client(base_url, timeout=args.timeout, ca_file=args.ca_file,
                           tls_server_name=urlsplit(f"//{address}").hostname)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        with client:
            result = download(client, euicc, smdp_address=address, matching_id=matching_id,
                              confirmation_code=args.confirmation_code, smdp_oid=smdp_oid)
    except DownloadError as exc:
        print(f"download failed: {exc}", file=sys.stderr)
        return 1
    name = result.metadata.get("profileName", "")
    print(f"installed profile ICCID {result.iccid} ({name!r}) on EID {euicc.eid}, "
          f"transactionId {result.transaction_id}")
    try:
        iccid, imsi = installed_identifiers(result.upp)
        print(f"installed profile package: ICCID {iccid}, IMSI {imsi or '(no USIM EF.IMSI)'}")
    except InvalidPackage as exc:
        print(f"warning: the installed package cannot be read: {exc}", file=sys.stderr)
    if not result.notification_sent:
        print(f"warning: the installation result was not accepted: {result.notification_error}",
              file=sys.stderr)
    if args.save_upp is not None:
        try:
            args.save_upp.write_bytes(result.upp)
        except OSError as exc:
            print(f"error: cannot write {args.save_upp}: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smdpp-lpa``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    return _download(args, parser)  # "download" is the only command


if __name__ == "__main__":
    sys.exit(main())
