"""Command line and start-up of the SM-DP+ (``./osmo-smdpp.py``, ``smdpp``).

The options osmo-smdpp's users know (``-H/--host``, ``-p/--port``) plus the
data folder, the SM-DP+ address, the session store and logging.  On first
start with an empty ``certs/`` a private test PKI shaped like SGP.26 is
created, and with no ``upp/*.der`` a generated test profile, so the server
works out of the box; real SGP.26 certificates and TS.48 profiles dropped into
those folders are used instead.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from smdpp.rsp.engine import EngineConfig, RspEngine

log = logging.getLogger("smdpp")

DEFAULT_HOSTNAME = "testsmdpplus1.example.com"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="osmo-smdpp.py",
        description="SM-DP+ for GSMA consumer eSIM RSP (SGP.22): serves ES9+ over plain "
                    "HTTP, to be put behind a TLS proxy such as contrib/nginx-smdpp.conf.")
    parser.add_argument("-H", "--host", default="localhost",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("-p", "--port", type=int, default=8000,
                        help="TCP port to listen on, 0 for any free one (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=Path("smdpp-data"),
                        help="folder with certs/ and upp/, and the session store "
                             "(default: ./smdpp-data)")
    parser.add_argument("--hostname", default=DEFAULT_HOSTNAME,
                        help="the SM-DP+ address (FQDN) eUICCs ask for (default: %(default)s)")
    parser.add_argument("--in-memory", action="store_true",
                        help="keep sessions in memory only (no session file)")
    parser.add_argument("--session-lifetime", type=float, default=600.0, metavar="SECONDS",
                        help="how long a session may take from initiateAuthentication to "
                             "its end (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser.parse_args(argv)


def build_engine(args: argparse.Namespace) -> RspEngine:
    """Prepare the data folder and load certificates, profiles and the session store."""
    from smdpp.pki.issue import ensure_test_pki
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory, ensure_test_profile
    from smdpp.store import MemoryStore, ShelveStore

    data_dir: Path = args.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    certs_dir, upp_dir, euicc_dir = data_dir / "certs", data_dir / "upp", data_dir / "euicc"
    upp_dir.mkdir(mode=0o700, exist_ok=True)
    if ensure_test_pki(certs_dir, euicc_dir, hostname=args.hostname):
        log.warning("no CI certificate in %s: created a private test PKI there, and a test "
                    "eUICC identity in %s (use it with: smdpp-lpa download --identity %s)",
                    certs_dir, euicc_dir, euicc_dir)
    created = ensure_test_profile(upp_dir)
    if created is not None:
        log.warning("no profile in %s: generated the test profile %s (matchingId %s)",
                    upp_dir, created, created.stem)
    certs = CertificateStore.load(certs_dir)
    profiles = ProfileInventory.load(upp_dir)
    log.info("%d CI(s), %d profile(s): %s", len(certs.ci_pkids), len(profiles),
             ", ".join(sorted(p.matching_id for p in profiles)))
    store = MemoryStore() if args.in_memory else ShelveStore(data_dir)
    config = EngineConfig(hostname=args.hostname, session_lifetime=args.session_lifetime)
    return RspEngine(certs, profiles, store, config)


def main(argv: list[str] | None = None) -> int:
    """Start the SM-DP+ and serve until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    try:
        engine = build_engine(args)
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1

    from twisted.internet import reactor, task
    from twisted.internet.error import CannotListenError
    from twisted.web.server import Site

    from smdpp.http.es9p import Es9pServer

    site = Site(Es9pServer(engine).resource())
    site.displayTracebacks = False  # a traceback is never an answer to the network
    try:
        port = reactor.listenTCP(args.port, site, interface=args.host)
    except CannotListenError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.socketError)
        return 1
    address = port.getHost()
    expiry = task.LoopingCall(engine.expire_sessions)
    expiry.start(min(60.0, args.session_lifetime), now=True)
    reactor.addSystemEventTrigger("before", "shutdown", engine.store.close)
    log.info("serving ES9+ for %s on http://%s:%d/gsma/rsp2/es9plus/", args.hostname,
             address.host, address.port)
    sys.stdout.flush()
    reactor.run()
    return 0
