"""``smdpp-euicc``: the virtual eUICC as a card that real LPAs drive over APDUs (SGP.22 5.7).

    smdpp-euicc lpac --card card.json --identity smdpp-data/euicc \\
        --http-bridge http://127.0.0.1:8000 -- profile download -s testsmdpplus1.example.com -m SMDPP-TEST-1
    smdpp-euicc vpcd --card card.json [--host 127.0.0.1] [--port 35963]
    smdpp-euicc info --card card.json

``lpac`` runs lpac (``$LPAC``, split like a shell command line, or ``lpac`` on
PATH) with its stdio APDU driver served by the card, and with
``--http-bridge`` its stdio HTTP driver, whose ES9+ requests go to that base
URL; lpac's own output passes through and its exit code is ours.  ``vpcd``
connects the card to vsmartcard's virtual PC/SC reader.  ``info`` prints the
card's EID, profiles and pending notifications.  The card lives in the
``--card`` file (created from ``--identity`` the first time).

Exit status 2 for usage errors and a card file that cannot be used, 127
when lpac cannot be started.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

from smdpp.euicc.apdu import ApduCard
from smdpp.euicc.es10 import VirtualEuicc
from smdpp.euicc.lpac_bridge import StdioBridge, run_lpac
from smdpp.euicc.state import lock_card
from smdpp.euicc.vpcd import DEFAULT_PORT, serve_vpcd

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smdpp-euicc",
                                     description="A virtual eUICC (SGP.22 ES10 over APDUs) for real LPAs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each APDU step on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    def card_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--card", metavar="FILE", type=Path, required=True,
                         help="the card state file (JSON, created with mode 0600)")
        sub.add_argument("--identity", metavar="DIR", type=Path,
                         help="eUICC identity folder for a new card (ci_cert.der, eum_cert.der, "
                              "euicc_cert.der, euicc_key.pem)")

    lpac = commands.add_parser("lpac", help="run lpac against the card",
                               description="Run lpac with its stdio drivers served by the card.")
    card_args(lpac)
    lpac.add_argument("--http-bridge", metavar="URL",
                      help="carry lpac's HTTP ourselves and send it to this base URL "
                           "(http://host:port for a plain-HTTP SM-DP+)")
    lpac.add_argument("args", nargs=argparse.REMAINDER, help="-- then lpac's arguments")

    vpcd = commands.add_parser("vpcd", help="serve the card to vsmartcard's vpcd",
                               description="Connect the card to vpcd, the virtual PC/SC reader.")
    card_args(vpcd)
    vpcd.add_argument("--host", default="127.0.0.1", help="vpcd host (default 127.0.0.1)")
    vpcd.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"vpcd port (default {DEFAULT_PORT})")
    vpcd.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS",
                      help="how long to wait for vpcd to listen (default 30)")

    info = commands.add_parser("info", help="show the card's EID, profiles and notifications")
    card_args(info)
    return parser


def _lpac_command() -> list[str] | None:
    configured = os.environ.get("LPAC")
    if configured:
        return shlex.split(configured)
    found = shutil.which("lpac")
    return [found] if found else None


def _info(card: VirtualEuicc) -> int:
    print(f"EID {card.card.eid}")
    for record in card.state.profiles:
        nickname = f" nickname {record.nickname!r}" if record.nickname else ""
        print(f"profile {record.iccid} {record.state} {record.profile_name!r} "
              f"({record.service_provider_name!r}) ISD-P {record.isdp_aid}{nickname}")
    for seq in sorted(card.card.pending_notifications):
        print(f"notification {seq} pending")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smdpp-euicc``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="smdpp-euicc %(levelname)s %(name)s: %(message)s")
    try:
        lock_card(args.card)  # held until the process ends
        card = VirtualEuicc.open(args.card, args.identity)
    except (ValueError, OSError) as exc:
        print(f"smdpp-euicc: {exc}", file=sys.stderr)
        return 2
    apdu = ApduCard(card.handle)
    if args.command == "info":
        return _info(card)
    if args.command == "vpcd":
        try:
            serve_vpcd(apdu, args.host, args.port, connect_timeout=args.connect_timeout)
        except OSError as exc:
            print(f"smdpp-euicc: cannot reach vpcd at {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
        return 0
    lpac_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    command = _lpac_command()
    if command is None:
        print("smdpp-euicc: lpac not found: set $LPAC or put lpac on PATH", file=sys.stderr)
        return 127
    try:
        bridge = StdioBridge(apdu, args.http_bridge)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return run_lpac(command + lpac_args, bridge, sys.stdout.buffer,
                        http_stdio=args.http_bridge is not None)
    except OSError as exc:
        print(f"smdpp-euicc: cannot start {command[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
