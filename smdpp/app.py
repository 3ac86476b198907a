"""Start-up wiring of the SM-DP+: material, engine, serving, TLS, SIGHUP.

Everything between the parsed command line (:mod:`smdpp.cli`) and the
reactor: prepare the data folder (on first start with an empty ``certs/`` a
private test PKI shaped like SGP.26, with no ``upp/*.der`` a generated test
profile), load certificates and profiles, open the session store, build the
:class:`~smdpp.rsp.engine.RspEngine`, put the HTTP front end (and ``--tls``)
around it, reload CRLs on SIGHUP, expire sessions.  :mod:`smdpp.workers`
uses the same functions in each worker process.  The settings arrive as the
``argparse.Namespace`` of :func:`smdpp.cli.parse_args`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from smdpp.rsp.engine import EngineConfig, RspEngine

if TYPE_CHECKING:  # loaded at run time only by the functions that need them
    from smdpp.orders.service import OrdersService
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory

# the logger of the start-up lines since osmo-smdpp's shape (operators grep for "smdpp:")
log = logging.getLogger("smdpp")

#: SIGINT/SIGTERM numbers received before the reactor's handlers took over, in order.
#: :func:`smdpp.cli.main` records each before it raises KeyboardInterrupt, because
#: Python may swallow that exception (raised inside a ``__del__`` finalizer it is only
#: printed as "Exception ignored"): :func:`serve` stops on a recorded signal all the same.
STOP_SIGNALS_RECEIVED: list[int] = []


def load_material(args: argparse.Namespace) -> tuple[CertificateStore, ProfileInventory]:
    """Prepare the data folder; load certificates and profiles (no session store yet)."""
    from smdpp.pki.issue import ensure_test_pki
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory, ensure_test_profile

    data_dir: Path = args.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # -c/--certdir as osmo-smdpp: below the data folder unless absolute (the join keeps those)
    certs_dir, upp_dir, euicc_dir = data_dir / args.certdir, data_dir / "upp", data_dir / "euicc"
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
    certs = CertificateStore.load(certs_dir, data_dir / "crl", smdp_identity=args.default_identity,
                                  side_by_side=args.side_by_side)
    certs.preferred_curve = "brainpoolP256r1" if args.brainpool else None
    profiles = ProfileInventory.load(upp_dir)
    log.info("%d CI(s), %d profile(s): %s", len(certs.ci_pkids), len(profiles),
             ", ".join(sorted(p.matching_id for p in profiles)))
    log.info("credential sets: %s; %d CRL(s) from %s", ", ".join(
        f"{certs.credentials(pkid).curve} (CI {pkid.hex()})"
        for pkid in certs.ci_pkids if pkid in certs.credential_pkids) or "none",
        len(certs.crls), data_dir / "crl")
    if certs.serves_side_by_side(args.hostname.lower()):
        raise ValueError(f"--smdp-identity: {args.hostname} is the address of the default identity "
                         f"(--hostname)")
    for host, side in certs.side_by_side.items():
        log.info("also serving SM-DP+ %s at %s: %s", side[0].label, host, ", ".join(
            f"{c.curve} {c.smdp_oid} (CI {c.ci_pkid.hex()})" for c in side))
    from smdpp.announce import announce_profiles
    announce_profiles(profiles, args.hostname, args.qr_dir, also=certs.side_by_side)
    return certs, profiles


def version() -> str:
    """The installed version of smdpp."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return installed("smdpp")
    except PackageNotFoundError:  # run from a checkout that was never installed
        from smdpp import __version__
        return __version__


def check_listen_options(args: argparse.Namespace) -> None:
    """ES9+ and admin addresses free, the admin token readable and needed; else ValueError.

    Called before anything is written to the data folder (smdpp/ports.py).
    """
    from smdpp.ports import check_free

    check_free(args.host, args.port, "-p PORT")
    args.admin_token = None
    if args.admin_port is not None:
        from smdpp.admin import check_admin_options
        args.admin_token = check_admin_options(args.admin_host, args.admin_token_file)
        check_free(args.admin_host, args.admin_port, "--admin-port PORT")


def build_engine(args: argparse.Namespace,
                 material: tuple[CertificateStore, ProfileInventory] | None = None,
                 orders: OrdersService | None = None) -> RspEngine:
    """The engine over ``material`` (default: :func:`load_material`) and a new store connection,
    asking ``orders`` (``--es2-port``) before the lab's upp/ files."""
    from smdpp.store import open_store

    certs, profiles = material if material is not None else load_material(args)
    store = open_store(args.store, args.data_dir)
    config = EngineConfig(hostname=args.hostname, session_lifetime=args.session_lifetime)
    return RspEngine(certs, profiles, store, config,
                     orders=orders.downloads if orders is not None else None)


def open_orders(args: argparse.Namespace) -> OrdersService | None:
    """The orders of the data folder with ``--es2-port`` (store, pool/), else None."""
    if getattr(args, "es2_port", None) is None:
        return None
    from smdpp.orders.service import OrdersService
    shared = args.store if args.store.split(":", 1)[0] in ("postgresql", "postgres") else None
    return OrdersService(args.data_dir, args.hostname, url=shared)


def run(args: argparse.Namespace) -> int:
    """One process: build the engine and serve until the reactor stops; the exit code."""
    try:
        args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        orders = open_orders(args)
        engine = build_engine(args, orders=orders)
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return serve(engine, args, orders=orders)


def serve(engine: RspEngine, args: argparse.Namespace,
          listen: Callable[[Any], Any] | None = None,
          on_listening: Callable[[str, int], None] | None = None,
          orders: OrdersService | None = None,
          es2_listen: Callable[[Any], Any] | None = None,
          admin_listen: Callable[[Any], Any] | None = None,
          announce_orders: bool = True) -> int:
    """Serve ES9+ with ``engine`` in this process until the reactor stops.

    ``listen(site)`` opens the listening port (default: TCP on --host/--port);
    ``on_listening(host, port)`` is told where it listens (default: the
    "serving ES9+" log line); ``admin_listen(site)`` opens the admin port
    (default: TCP on --admin-host/--admin-port).  ``--workers``
    (:mod:`smdpp.workers`) passes those.
    With ``orders`` ES2+ is served on ``--es2-port`` (``es2_listen(site)``
    opens that port, as ``listen`` does for ES9+) and queued
    HandleDownloadProgressInfo are sent (:mod:`smdpp.orders.service`), and the
    released orders' activation codes logged (unless ``announce_orders`` is
    False: ``--workers`` logs them once, in the parent).
    """
    import signal

    # From here until the reactor's own handlers are in place, SIGINT/SIGTERM are noted,
    # not raised: a KeyboardInterrupt inside the reactor's start-up or a LoopingCall is
    # swallowed by Twisted (logged, not propagated), and the server would run on, deaf.
    pending = STOP_SIGNALS_RECEIVED  # also those whose KeyboardInterrupt was swallowed

    def later(signo: int, frame: Any) -> None:
        pending.append(signo)

    for signo in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signo, later)
    from twisted.internet import reactor, task
    from twisted.internet.error import CannotListenError
    from smdpp import logs
    from smdpp.http.es9p import Es9pApi
    from smdpp.observe import Observers

    from smdpp.http.guard import (LISTEN_BACKLOG, TRIM_INTERVAL, ConnectionGuard,
                                  GuardedFactory, Limits, fair_accepts, log_twisted_warnings,
                                  raise_fd_limit, trim_memory)

    observers = Observers()  # each ES9+/ES2+ call's one report (smdpp/observe.py)
    if args.log_format == "json":
        observers.add(logs.call_logger)
    admin = None
    if args.admin_port is not None:
        from smdpp import admin as admin_listener
        admin = admin_listener.setup(engine, observers, version=version(), workers=args.workers,
                                     token=getattr(args, "admin_token", None),
                                     orders=orders.store if orders is not None else None)
        admin.start(reactor)  # --workers: this worker's sessions for every worker's page
    api = Es9pApi(engine, observer=observers or None)
    log_twisted_warnings()
    limits = Limits.from_namespace(args).fitted_or_warned(
        raise_fd_limit(), given=getattr(args, "max_connections", None) is not None)
    log.info("limits: head %g s, body %g s (at least %g bytes/s), idle %g s, TLS handshake %g s; "
             "%d connections per process, %d per client", limits.head_timeout,
             limits.body_timeout, limits.body_min_rate, limits.idle_timeout,
             limits.tls_handshake_timeout, limits.max_connections, limits.max_per_client)
    site: Any
    if args.http == "klein":
        from smdpp.http.klein_routes import Es9pRoutes
        site = Es9pRoutes(api).site(limits)
    else:
        from smdpp.http.server import HttpFactory
        site = HttpFactory(api.handle, api.max_body, limits=limits)
    factory: Any = site
    scheme = "http"
    if args.tls:
        dptls = tls_server(engine)
        if dptls is None:
            engine.store.close()
            return 1
        factory, scheme = dptls.wrap(site, limits.tls_handshake_timeout), "https"
    guard = ConnectionGuard(limits.max_connections, limits.max_per_client)
    if admin is not None:  # connections open and refused, on either front, TLS or not
        admin.metrics.watch_connections(guard)
    factory = GuardedFactory(factory, guard)
    try:
        if listen is None:
            port = reactor.listenTCP(args.port, factory, backlog=LISTEN_BACKLOG,
                                     interface=args.host)
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
    fair_accepts(port)  # a burst of connections does not hold the open ones for long
    if admin is not None:
        try:
            if admin_listen is None:
                admin_port = reactor.listenTCP(args.admin_port, admin.site(), interface=args.admin_host)
            else:
                admin_port = admin_listen(admin.site())
        except (CannotListenError, OSError) as exc:
            from smdpp.ports import hint
            error = getattr(exc, "socketError", exc)
            log.error("cannot start the admin listener: %s", hint(
                args.admin_host, args.admin_port, "--admin-port PORT", error))
            port.stopListening()
            engine.store.close()
            return 1
        admin_address = admin_port.getHost()
        log.info("status page on http://%s:%d/ (also /health, /ready, /metrics)",
                 _url_host(admin_address.host), admin_address.port)
    address = port.getHost()
    if admin is not None:  # the page names the address actually served (-p 0: the kernel's pick)
        admin.set_es9_url(f"{scheme}://{_url_host(address.host)}:{address.port}/gsma/rsp2/es9plus/")
    if orders is not None and not _serve_orders(orders, engine, args, reactor, es2_listen,
                                                limits, observers or None, announce_orders):
        engine.store.close()
        return 1
    reload_crls_on_sighup(engine.certs, reactor, orders.load_pool if orders else None)
    task.LoopingCall(trim_memory).start(TRIM_INTERVAL, now=False)
    expiry = task.LoopingCall(engine.expire_sessions)
    expiry.start(min(60.0, args.session_lifetime), now=True)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: log.info(
        "stopping: %s", _stop_reason(reactor)))
    reactor.addSystemEventTrigger("before", "shutdown", engine.store.close)

    def announce() -> None:  # once the reactor runs, its SIGTERM handler installed
        # Twisted installs its SIGINT handler only over Python's default one: ours is here
        signal.signal(signal.SIGINT, reactor.sigInt)
        if pending:  # a signal came while starting: stop now, the way Twisted's handlers do
            (reactor.sigInt if pending[0] == signal.SIGINT else reactor.sigTerm)(pending[0])
            return
        if on_listening is None:
            log.info("serving ES9+ for %s on %s://%s:%d/gsma/rsp2/es9plus/", args.hostname,
                     scheme, address.host, address.port)
            sys.stdout.flush()
        else:
            on_listening(address.host, address.port)

    reactor.callWhenRunning(announce)
    reactor.run()
    log.info("stopped")
    return 0


def _stop_reason(reactor: Any) -> str:
    """Why the reactor stops: the signal Twisted received, if any."""
    import signal
    number = getattr(reactor, "_exitSignal", None)  # set by Twisted's SIGINT/SIGTERM handlers
    if number:
        name = signal.Signals(number).name
        return f"{name} received" + (" (Ctrl-C)" if name == "SIGINT" else "")
    return "the reactor was stopped"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _serve_orders(orders: OrdersService, engine: RspEngine, args: argparse.Namespace,
                  reactor: Any, listen: Callable[[Any], Any] | None = None,
                  limits: Any = None, observer: Callable[[Any], None] | None = None,
                  announce: bool = True) -> bool:
    """Listen for ES2+ and start sending notifications; False after a "cannot start" line.

    ``observer`` hears of each ES2+ call and each notification sent (smdpp/observe.py)."""
    from twisted.internet.error import CannotListenError
    host = args.es2_host or args.host
    try:
        url = orders.listen_es2(reactor, host, args.es2_port, certs=engine.certs,
                                plain_http=args.es2_plain_http, cert_file=args.es2_cert,
                                key_file=args.es2_key, listen=listen, limits=limits,
                                observer=observer)
    except CannotListenError as exc:
        log.error("cannot listen for ES2+ on %s:%d: %s", host, args.es2_port, exc.socketError)
        return False
    except (OSError, ValueError) as exc:
        log.error("cannot start ES2+: %s", exc)
        return False
    orders.start_delivery(reactor, engine.certs, observer=observer)
    reactor.addSystemEventTrigger("before", "shutdown", orders.close)
    log.info("serving ES2+ on %s/gsma/rsp2/es2plus/ (%s; operators in %s)", url,
             "plain HTTP" if args.es2_plain_http else "mutual TLS",
             orders.operators.folder)
    if announce:
        from smdpp.announce import announce_orders
        announce_orders(orders.store, args.hostname, args.qr_dir, es2_url=url,
                        data_dir=args.data_dir)
    return True


def reload_crls_on_sighup(certs: CertificateStore, reactor: Any,
                          also: Callable[[], None] | None = None) -> None:
    """SIGHUP reads the CRL folder again; if a file fails, the CRLs in use stay (and it is logged).

    ``also`` runs after it (the orders' pool/ folder)."""
    import signal

    def reload() -> None:
        if also is not None:
            also()
        try:
            count = certs.reload_crls()
        except ValueError as exc:
            log.error("SIGHUP: CRLs not reloaded, still using the previous %d: %s", len(certs.crls), exc)
            return
        log.info("SIGHUP: %d CRL(s) in use", count)

    # The handler only schedules the reload: the reactor runs it between requests.
    signal.signal(signal.SIGHUP, lambda signo, frame: reactor.callFromThread(reload))


def tls_server(engine: RspEngine) -> Any | None:
    """The TLS side of ``--tls`` (:mod:`smdpp.http.tls`) over the loaded DPtls, its start-up lines logged:
    per SM-DP+ address (``--hostname``, identities side by side) the DPtls naming it, chosen by SNI.

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
        # The certificate store checks each DPtls (CI, policy, dates, CRL, key) and that each
        # address served has one naming it; then OpenSSL's part.
        dptls = DptlsServer.from_sites(engine.certs.tls_sites(engine.config.hostname))
    except ValueError as exc:  # TlsSetupError included
        log.error("cannot start: %s", exc)
        return None
    log.info("%s", dptls.summary)
    for warning in dptls.warnings:
        log.warning("%s", warning)
    return dptls
