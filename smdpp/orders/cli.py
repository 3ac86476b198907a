"""``smdpp-order``: order profiles from a running smdpp over ES2+ and hand out activation codes.

    smdpp-order --url https://127.0.0.1:8001 --operator NAME [--data-dir smdpp-data] \\
        create [--iccid ICCID | --profile-type TYPE] [--eid EID] [--confirmation-code CC] \\
               [--matching-id ID] [--release] [--qr FILE] [--no-qr]
    smdpp-order ... release ICCID
    smdpp-order ... cancel ICCID [--final Available|Unavailable]
    smdpp-order --data-dir smdpp-data [--store postgresql://...] list [--state STATE]
    smdpp-order --data-dir smdpp-data [--store postgresql://...] show ICCID [--qr FILE]

``create`` is ES2+.DownloadOrder then ES2+.ConfirmOrder (SGP.22 5.3.1,
5.3.2), ``release`` ES2+.ReleaseProfile, ``cancel`` ES2+.CancelOrder, all
under mutual TLS with the operator's client certificate (``smdpp-pki
operator``: ``--operator NAME`` finds it in ``DATA_DIR/operators/NAME/`` and
the CA of the server in ``DATA_DIR/certs/CertificateIssuer/``; or give
``--cert``, ``--key``, ``--ca-file``).  It prints the activation code
(SGP.22 4.1, with the Confirmation Code Required Flag when a code is set),
draws it as a QR code on the terminal and writes it as PNG with ``--qr``.
ES2+ has no function that lists orders: ``list`` and ``show`` read the order
store (the data folder's sqlite file, or the server's PostgreSQL with
``--store``); they change nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from smdpp.activation import ActivationCode, qr_png, qr_terminal
from smdpp.orders.client import Es2pClient, Es2pFailed
from smdpp.orders.operators import OPERATORS_DIR

DEFAULT_SERVER_NAME = "testsmdpplus1.example.com"  # the DPtls of the test PKI names it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdpp-order", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="ES2+ of the SM-DP+, e.g. https://127.0.0.1:8001")
    parser.add_argument("--data-dir", type=Path, default=Path("smdpp-data"),
                        help="the SM-DP+ data folder (default: ./smdpp-data)")
    parser.add_argument("--operator", help="functionRequesterIdentifier; with --data-dir "
                                           "it finds the client certificate and key")
    parser.add_argument("--cert", type=Path, help="client certificate (PEM)")
    parser.add_argument("--key", type=Path, help="client key (PEM)")
    parser.add_argument("--ca-file", type=Path, help="CA that verifies the server (PEM)")
    parser.add_argument("--server-name", default=DEFAULT_SERVER_NAME,
                        help="name in the server's TLS certificate (default: %(default)s)")
    parser.add_argument("--address", help="SM-DP+ address for the activation code (default: "
                                          "the smdpAddress the server answers)")
    parser.add_argument("--store", metavar="URL",
                        help="list/show: the server's postgresql:// store (default: "
                             "orders.sqlite in --data-dir)")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="order a profile and print its activation code")
    which = create.add_mutually_exclusive_group(required=True)
    which.add_argument("--iccid")
    which.add_argument("--profile-type")
    create.add_argument("--eid", help="link the order to this eUICC")
    create.add_argument("--confirmation-code", help="the user must type this code")
    create.add_argument("--matching-id", help="default: the SM-DP+ generates one")
    create.add_argument("--release", action="store_true", help="release it for download now")
    create.add_argument("--qr", type=Path, help="write the QR code as PNG to this file")
    create.add_argument("--no-qr", action="store_true", help="do not draw the QR code")
    release = sub.add_parser("release", help="release a confirmed order (ReleaseProfile)")
    release.add_argument("iccid")
    cancel = sub.add_parser("cancel", help="cancel an order (CancelOrder)")
    cancel.add_argument("iccid")
    cancel.add_argument("--final", choices=("Available", "Unavailable"), default="Available",
                        help="where the profile goes (default: %(default)s)")
    listing = sub.add_parser("list", help="profiles and their states (this host's store)")
    listing.add_argument("--state", help="only this state, e.g. Released")
    show = sub.add_parser("show", help="one profile (this host's store)")
    show.add_argument("iccid")
    show.add_argument("--qr", type=Path, help="write its activation code's QR code as PNG")
    show.add_argument("--no-qr", action="store_true")
    return parser


def _client(args: argparse.Namespace) -> Es2pClient:
    if not args.url:
        raise ValueError("--url of the SM-DP+'s ES2+ listener is required")
    if not args.operator:
        raise ValueError("--operator NAME (the functionRequesterIdentifier) is required")
    own = args.data_dir / OPERATORS_DIR / args.operator
    cert = args.cert or own / "cert.pem"
    key = args.key or (own / "key.pem" if args.cert is None else None)
    ca = args.ca_file or next(iter(sorted(
        (args.data_dir / "certs" / "CertificateIssuer").glob("CERT_CI_*.pem"))), None)
    if args.url.startswith("https:"):
        for path, what in ((cert, "client certificate"), (ca, "server CA file")):
            if path is None or not Path(path).is_file():
                raise ValueError(f"no {what} ({path or 'give it'}): see smdpp-pki operator")
    return Es2pClient(args.url, args.operator, cert=cert, key=key, ca_file=ca,
                      server_name=args.server_name)


def _show_code(code: ActivationCode, qr: Path | None, draw: bool) -> None:
    print(code.uri())
    if draw:
        qr_terminal(code)
    if qr is not None:
        qr_png(code, qr)
        print(f"QR code written to {qr}")


def _create(args: argparse.Namespace) -> None:
    with _client(args) as client:
        iccid = client.download_order(iccid=args.iccid, eid=args.eid,
                                      profile_type=args.profile_type)
        answer = client.confirm_order(iccid, release=args.release, eid=args.eid,
                                      matching_id=args.matching_id,
                                      confirmation_code=args.confirmation_code)
    state = "Released" if args.release else "Confirmed (release it with: smdpp-order release)"
    print(f"ICCID {iccid}: {state}, matchingId {answer.get('matchingId') or '(empty)'}")
    if not answer.get("matchingId"):
        print("no activation code: the eUICC finds the order by its EID at the default SM-DP+")
        return
    code = ActivationCode(args.address or answer["smdpAddress"], answer["matchingId"],
                          confirmation_code_required=args.confirmation_code is not None)
    _show_code(code, args.qr, not args.no_qr)


def _release(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.release_profile(args.iccid)
    print(f"ICCID {args.iccid}: Released")


def _cancel(args: argparse.Namespace) -> None:
    with _client(args) as client:
        client.cancel_order(args.iccid, args.final)
    print(f"ICCID {args.iccid}: order cancelled, profile {args.final}")


def _store(args: argparse.Namespace):  # -> OrderStore, opened only for list/show
    from smdpp.orders.sql import FILE_NAME
    from smdpp.orders.store import OrderStore
    postgres = args.store and args.store.split(":", 1)[0] in ("postgresql", "postgres")
    if not postgres and not (args.data_dir / FILE_NAME).is_file():
        raise ValueError(f"no order store {args.data_dir / FILE_NAME}")
    return OrderStore(args.data_dir, url=args.store if postgres else None)


def _list(args: argparse.Namespace) -> None:
    from smdpp.orders.states import ProfileState
    state = ProfileState(args.state) if args.state else None
    store = _store(args)
    try:
        print(f"{'ICCID':20} {'state':11} {'profile type':28} {'operator':12} matchingId / EID")
        for r in store.profiles(state):
            print(f"{r.iccid:20} {r.state.value:11} {r.profile_type[:28]:28} "
                  f"{(r.operator or '-')[:12]:12} {r.matching_id or '-'} {r.eid or ''}".rstrip())
    finally:
        store.close()


def _show(args: argparse.Namespace) -> None:
    from smdpp.orders.identifiers import normalise_iccid
    store = _store(args)
    try:
        record = store.get(normalise_iccid(args.iccid))
    finally:
        store.close()
    if record is None:
        raise ValueError(f"no profile with ICCID {args.iccid}")
    for name, value in (("ICCID", record.iccid), ("state", record.state.value),
                        ("profile type", record.profile_type), ("operator", record.operator),
                        ("EID", record.eid), ("matchingId", record.matching_id),
                        ("confirmation code", "required" if record.cc_hash else None),
                        ("error", record.error)):
        if value:
            print(f"{name + ':':18} {value}")
    if record.matching_id and record.state.value in ("Confirmed", "Released"):
        code = ActivationCode(args.address or args.server_name, record.matching_id,
                              confirmation_code_required=record.cc_hash is not None)
        _show_code(code, args.qr, not args.no_qr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``smdpp-order``; the process exit status."""
    args = _parser().parse_args(argv)
    try:
        {"create": _create, "release": _release, "cancel": _cancel, "list": _list,
         "show": _show}[args.command](args)
    except Es2pFailed as exc:
        print(f"smdpp-order: the SM-DP+ refused: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"smdpp-order: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
