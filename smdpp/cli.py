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
from typing import TYPE_CHECKING, Any, Callable

from smdpp import logs
from smdpp.rsp.engine import EngineConfig, RspEngine
from smdpp.store import default_url

if TYPE_CHECKING:  # loaded at run time only by the functions that need them
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory

log = logging.getLogger("smdpp")

DEFAULT_HOSTNAME = "testsmdpplus1.example.com"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="osmo-smdpp.py",
        description="SM-DP+ for GSMA consumer eSIM RSP (SGP.22): serves ES9+ over plain "
                    "HTTP, to be put behind a TLS proxy such as contrib/nginx-smdpp.conf, "
                    "or with --tls over HTTPS itself.")
    parser.add_argument("-H", "--host", default="localhost",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("-p", "--port", type=int, default=8000,
                        help="TCP port to listen on, 0 for any free one (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=Path("smdpp-data"),
                        help="folder with certs/ and upp/, and the session store "
                             "(default: ./smdpp-data)")
    parser.add_argument("--hostname", default=DEFAULT_HOSTNAME,
                        help="the SM-DP+ address (FQDN) eUICCs ask for (default: %(default)s)")
    parser.add_argument("-b", "--brainpool", action="store_true",
                        help="prefer the brainpoolP256r1 credentials when an eUICC trusts both a "
                             "NIST and a brainpool CI of ours (every DPauth/DPpb set in certs/ "
                             "is loaded and used for the eUICCs that trust its CI)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with the DPtls certificate(s) in certs/DPtls "
                             "(SGP.22 2.6.6 TLS 1.2 suites, and TLS 1.3)")
    parser.add_argument("--in-memory", action="store_true",
                        help="keep sessions in memory only (no session file); same as "
                             "--store memory:")
    parser.add_argument("--store", metavar="URL",
                        help="session store: journal: (default for one process: in memory, "
                             "changes journalled in the data folder), shelve: (default with "
                             "--workers: sqlite in the data folder, shared by the processes "
                             "of one host), memory:, redis://HOST:PORT/DB or "
                             "postgresql://USER@HOST/DB")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="server processes sharing the port (SO_REUSEPORT) and the "
                             "session store (default: %(default)s)")
    parser.add_argument("--http", choices=("smdpp", "klein"), default="smdpp",
                        help="HTTP front end: smdpp, the built-in HTTP/1.1 server (default), "
                             "or klein, Klein routes over twisted.web (slower)")
    parser.add_argument("--session-lifetime", type=float, default=600.0, metavar="SECONDS",
                        help="how long a session may take from initiateAuthentication to "
                             "its end (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    if args.in_memory and args.store not in (None, "memory:"):
        parser.error(f"--in-memory contradicts --store {args.store}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.store is None:
        args.store = "memory:" if args.in_memory else default_url(args.workers)
    return args


def load_material(args: argparse.Namespace) -> tuple[CertificateStore, ProfileInventory]:
    """Prepare the data folder; load certificates and profiles (no session store yet)."""
    from smdpp.pki.issue import ensure_test_pki
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory, ensure_test_profile

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
    # CRLs (SGP.22 4.5.2.1): loaded now and again on SIGHUP; a bad one stops the start
    certs = CertificateStore.load(certs_dir, data_dir / "crl")
    certs.preferred_curve = "brainpoolP256r1" if args.brainpool else None
    profiles = ProfileInventory.load(upp_dir)
    log.info("%d CI(s), %d profile(s): %s", len(certs.ci_pkids), len(profiles),
             ", ".join(sorted(p.matching_id for p in profiles)))
    log.info("credential sets: %s; %d CRL(s) from %s", ", ".join(
        f"{certs.credentials(pkid).curve} (CI {pkid.hex()})"
        for pkid in certs.ci_pkids if pkid in certs.credential_pkids) or "none",
        len(certs.crls), data_dir / "crl")
    return certs, profiles


def build_engine(args: argparse.Namespace,
                 material: tuple[CertificateStore, ProfileInventory] | None = None
                 ) -> RspEngine:
    """The engine over ``material`` (default: :func:`load_material`) and a new store connection."""
    from smdpp.store import open_store

    certs, profiles = material if material is not None else load_material(args)
    store = open_store(args.store, args.data_dir)
    config = EngineConfig(hostname=args.hostname, session_lifetime=args.session_lifetime)
    return RspEngine(certs, profiles, store, config)


def main(argv: list[str] | None = None) -> int:
    """Start the SM-DP+ and serve until interrupted."""
    args = parse_args(argv)
    logs.configure(verbose=args.verbose)
    if args.workers > 1:
        from smdpp.workers import run_workers
        return run_workers(args)
    try:
        engine = build_engine(args)
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return serve(engine, args)


def serve(engine: RspEngine, args: argparse.Namespace,
          listen: Callable[[Any], Any] | None = None,
          on_listening: Callable[[str, int], None] | None = None) -> int:
    """Serve ES9+ with ``engine`` in this process until the reactor stops.

    ``listen(site)`` opens the listening port (default: TCP on --host/--port);
    ``on_listening(host, port)`` is told where it listens (default: the
    "serving ES9+" log line).  ``--workers`` (:mod:`smdpp.workers`) passes both.
    """
    from twisted.internet import reactor, task
    from twisted.internet.error import CannotListenError
    from smdpp.http.es9p import Es9pApi

    api = Es9pApi(engine)
    site: Any
    if args.http == "klein":
        from smdpp.http.klein_routes import Es9pRoutes
        site = Es9pRoutes(api).site()
    else:
        from smdpp.http.server import HttpFactory
        site = HttpFactory(api.handle, api.max_body)
    factory: Any = site
    scheme = "http"
    if args.tls:
        dptls = tls_server(engine)
        if dptls is None:
            engine.store.close()
            return 1
        factory, scheme = dptls.wrap(site), "https"
    try:
        if listen is None:
            port = reactor.listenTCP(args.port, factory, interface=args.host)
        else:
            port = listen(factory)
    except CannotListenError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.socketError)
        engine.store.close()
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        engine.store.close()
        return 1
    address = port.getHost()
    reload_crls_on_sighup(engine.certs, reactor)
    expiry = task.LoopingCall(engine.expire_sessions)
    expiry.start(min(60.0, args.session_lifetime), now=True)
    reactor.addSystemEventTrigger("before", "shutdown", engine.store.close)
    if on_listening is None:
        log.info("serving ES9+ for %s on %s://%s:%d/gsma/rsp2/es9plus/", args.hostname,
                 scheme, address.host, address.port)
        sys.stdout.flush()
    else:
        on_listening(address.host, address.port)
    reactor.run()
    return 0


def reload_crls_on_sighup(certs: CertificateStore, reactor: Any) -> None:
    """SIGHUP reads the CRL folder again; if a file fails, the CRLs in use stay (and it is logged)."""
    import signal

    def reload() -> None:
        try:
            count = certs.reload_crls()
        except ValueError as exc:
            log.error("SIGHUP: CRLs not reloaded, still using the previous %d: %s", len(certs.crls), exc)
            return
        log.info("SIGHUP: %d CRL(s) in use", count)

    # The handler only schedules the reload: the reactor runs it between requests.
    signal.signal(signal.SIGHUP, lambda signo, frame: reactor.callFromThread(reload))


def tls_server(engine: RspEngine) -> Any | None:
    """The TLS side of ``--tls`` (:mod:`smdpp.http.tls`) over the loaded DPtls, its start-up lines logged.

    None, after one "cannot start" line naming the file or what OpenSSL
    lacks, if it cannot be served.
    """
    try:
        from smdpp.http.tls import DptlsServer
    except ImportError as exc:
        log.error("cannot start: --tls needs pyOpenSSL (%s): pip install pyOpenSSL, or run "
                  "without --tls behind nginx (contrib/nginx-smdpp.conf)", exc)
        return None
    try:
        # The certificate store checks each DPtls (CI, policy, dates, CRL, key); then OpenSSL's part.
        dptls = DptlsServer.from_credentials(engine.certs.check_tls())
    except ValueError as exc:  # TlsSetupError included
        log.error("cannot start: %s", exc)
        return None
    log.info("%s", dptls.summary)
    for warning in dptls.warnings:
        log.warning("%s", warning)
    return dptls
