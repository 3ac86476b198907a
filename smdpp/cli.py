"""The command line of the SM-DP+ (``./osmo-smdpp.py``, ``smdpp``): parsing only.

The options osmo-smdpp's users know (``-H/--host``, ``-p/--port``) plus the
data folder, the SM-DP+ address, the session store and logging.  What the
options start is :mod:`smdpp.app` (one process) or :mod:`smdpp.workers`
(``--workers N``); nothing in the package imports this module but the entry
points (``osmo-smdpp.py``, ``python -m smdpp``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from smdpp import app, config, logs
from smdpp.http.guard import Limits
from smdpp.store import default_url

DEFAULT_HOSTNAME = "testsmdpplus1.example.com"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(  # prog: osmo-smdpp.py or smdpp, as it was started
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
    parser.add_argument("-c", "--certdir", type=Path, default=Path("certs"),
                        help="certificate folder, relative to the data folder or absolute "
                             "(default: %(default)s)")
    parser.add_argument("--smdp-identity", metavar="NAME|OID[=ADDRESS]", action="append",
                        default=[],
                        help="the SM-DP+ identity to serve when certs/ holds several under one "
                             "CI (SGP.26: DP, DP2 ...), by its name or SM-DP+ OID (default: "
                             "the one whose DPauth file is named CERT_S_SM_DPauth_*); given "
                             "again, or with =ADDRESS, one more identity served side by side at "
                             "its own address (default: its DPtls dNSName)")
    parser.add_argument("--hostname", default=DEFAULT_HOSTNAME,
                        help="the SM-DP+ address (FQDN) eUICCs ask for (default: %(default)s)")
    parser.add_argument("-b", "--brainpool", action="store_true",
                        help="prefer the brainpoolP256r1 credentials when an eUICC trusts both a "
                             "NIST and a brainpool CI of ours (every DPauth/DPpb set in certs/ "
                             "is loaded and used for the eUICCs that trust its CI)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with the DPtls certificate(s) in certs/DPtls "
                             "(SGP.22 2.6.6 TLS 1.2 suites, and TLS 1.3)")
    parser.add_argument("-s", "--nossl", action="store_true",
                        help="serve plain HTTP (the default; kept for osmo-smdpp's command lines)")
    parser.add_argument("-m", "--in-memory", action="store_true",
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
    es2 = parser.add_argument_group("ES2+ and orders (operators order profiles of pool/)")
    es2.add_argument("--es2-port", type=int, default=None, metavar="PORT",
                     help="serve ES2+ on this port (0: any free one) under mutual TLS; "
                          "turns orders on")
    es2.add_argument("--es2-host", default=None, metavar="ADDR",
                     help="address of the ES2+ listener (default: that of -H)")
    es2.add_argument("--es2-cert", type=Path, default=None, metavar="FILE",
                     help="ES2+ server certificate (PEM or DER; default: the DPtls)")
    es2.add_argument("--es2-key", type=Path, default=None, metavar="FILE",
                     help="its key (PEM)")
    es2.add_argument("--es2-plain-http", action="store_true",
                     help="ES2+ over plain HTTP without client certificates (labs; loopback "
                          "addresses only)")
    add_limit_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text",
                        help="text lines, or json: one JSON object a line, with one more per "
                             "ES9+ call (transactionId, EID, matchingId, outcome, code, "
                             "duration) (default: %(default)s)")
    parser.add_argument("--qr-dir", type=Path, metavar="DIR",
                        help="write a QR code PNG of each profile's activation code into DIR "
                             "at start (<matchingId>.png)")
    parser.add_argument("--admin-port", type=int, metavar="PORT",
                        help="serve the status page, /health, /ready and /metrics on this port "
                             "(0: any free one; default: no admin listener)")
    parser.add_argument("--admin-host", default="127.0.0.1",
                        help="address of the admin listener (default: %(default)s); any other "
                             "than loopback needs --admin-token-file")
    parser.add_argument("--admin-token-file", type=Path, metavar="FILE",
                        help="file holding the token (16 characters or more) that the status page "
                             "and /metrics require, as Bearer token or HTTP Basic password")
    parser.add_argument("--version", action="version", version=f"%(prog)s {app.version()}")
    config.add_options(parser)
    args = config.parse(parser, argv)
    for name, value in vars(Limits.from_namespace(args)).items():
        if not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be more than 0".replace(
                "--max-per-client", "--max-connections-per-client"))
    if args.es2_port is None and (args.es2_host or args.es2_cert or args.es2_key
                                  or args.es2_plain_http):
        parser.error("the --es2-* options need --es2-port")
    if (args.es2_cert is None) != (args.es2_key is None):
        parser.error("--es2-cert and --es2-key go together")
    if args.in_memory and args.store not in (None, "memory:"):
        parser.error(f"--in-memory contradicts --store {args.store}")
    # The first identity without an address is the one at --hostname; the others side by side.
    plain = [i for i in args.smdp_identity if "=" not in i]
    args.default_identity = plain[0] if plain else None
    args.side_by_side = [(name, address or None) for name, _, address in
                         (i.partition("=") for i in args.smdp_identity if i != args.default_identity)]
    if args.nossl and args.tls:
        parser.error("--nossl contradicts --tls")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.store is None:
        args.store = "memory:" if args.in_memory else default_url(args.workers)
    if args.print_config:
        config.print_config(parser, args)
        parser.exit(0)
    return args


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Deadlines and connection caps of an exposed server (:class:`Limits`)."""
    d = Limits()
    group = parser.add_argument_group(
        "limits", "deadlines that a trickle of bytes does not move, and connection caps "
        "(the defaults are far beyond what an LPA on a slow mobile link needs)")
    for flag, name, kind, text in (
            ("--head-timeout", "head_timeout", float, "seconds for a request head from its first byte"),
            ("--body-timeout", "body_timeout", float, "seconds at most for a request body"),
            ("--body-min-rate", "body_min_rate", float,
             "bytes/s: a body of N bytes may take 10 s + N/rate (up to --body-timeout)"),
            ("--idle-timeout", "idle_timeout", float,
             "seconds a kept-alive connection may wait for its next request"),
            ("--tls-handshake-timeout", "tls_handshake_timeout", float,
             "seconds for the TLS handshake (--tls)"),
            ("--max-connections", "max_connections", int,
             f"open connections per process (default: {d.max_connections}, lowered to fit "
             "the open files limit; a value given is kept, with a warning if that limit "
             "is lower)"),
            ("--max-connections-per-client", "max_per_client", int,
             "open connections per client address")):
        # the per-process cap has no default here: Limits' applies, fitted to the file limit
        default = None if name == "max_connections" else getattr(d, name)
        group.add_argument(flag, dest=name, type=kind, default=default, metavar="N",
                           help=text if default is None else f"{text} (default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, then start the SM-DP+ and serve until stopped.

    SIGINT (Ctrl-C) or SIGTERM at any moment ends it with one line saying
    so, never a traceback: while the reactor runs, its handlers stop it
    cleanly; before that, both raise KeyboardInterrupt, which unwinds to here.
    """
    import signal

    received = app.STOP_SIGNALS_RECEIVED

    def _interrupt(signo: int, frame: Any) -> None:
        received.append(signo)  # kept: the KeyboardInterrupt may be swallowed (app.serve)
        raise KeyboardInterrupt

    def _unraisable(hook_args: Any, default: Any = sys.unraisablehook) -> None:
        # a KeyboardInterrupt raised in a __del__ is printed, not raised: it is recorded
        # above and app.serve stops on it, so the traceback would only alarm
        if not isinstance(hook_args.exc_value, KeyboardInterrupt):
            default(hook_args)

    sys.unraisablehook = _unraisable
    # Python's default SIGINT handler is replaced by one that also records; Twisted's
    # reactor would keep ours, so app.serve installs the reactor's own once it runs
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # smdpp.run blocked both while the modules loaded: one that came meanwhile is
        # delivered here, to the handler above
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        return _main(argv)
    except KeyboardInterrupt:
        name = signal.Signals(received[-1]).name if received else "SIGINT"
        app.log.info("stopped: %s received%s", name, " (Ctrl-C)" if name == "SIGINT" else "")
        return 130 if name == "SIGINT" else 143


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    logs.configure(verbose=args.verbose, log_format=args.log_format)
    try:  # before anything is written to the data folder
        app.check_listen_options(args)
    except ValueError as exc:
        app.log.error("cannot start: %s", exc)
        return 1
    if args.workers > 1:
        from smdpp.workers import run_workers
        return run_workers(args)
    return app.run(args)
