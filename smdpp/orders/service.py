"""Start-up of orders in the server process: store, pool, ES2+ listener, notification delivery.

The I/O around the sans-I/O order modules, called by the server's start-up:
it opens the order store of the data folder, reads ``pool/`` (again on
SIGHUP), listens for ES2+ on ``--es2-port`` (mutual TLS with the DPtls, or
the certificate of ``--es2-cert``/``--es2-key``; plain HTTP only with
``--es2-plain-http`` on a loopback address) and sends the queued
HandleDownloadProgressInfo from a pool thread.  The engine gets
:attr:`OrdersService.downloads`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from smdpp.orders.delivery import ClientCredential, start_delivery
from smdpp.orders.downloads import OrderDownloads
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.notify import Notifier
from smdpp.orders.operators import OPERATORS_DIR, OperatorRegistry, is_loopback
from smdpp.orders.pool import POOL_DIR, TEST_PROFILE_TYPE, ensure_test_pool, load_pool
from smdpp.orders.store import OrderStore

log = logging.getLogger(__name__)


def _pem(path: Path) -> Path | None:
    """The PEM form of a certificate file (the .pem beside a .der); None if there is none."""
    if path.suffix == ".pem":
        return path
    beside = path.with_suffix(".pem")
    return beside if beside.is_file() else None


class OrdersService:
    """The orders of one data folder, for one server process."""

    def __init__(self, data_dir: Path, hostname: str, max_cc_attempts: int = 3,
                 url: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        # PostgreSQL when the sessions are there (several hosts), else sqlite in data_dir
        self.store = OrderStore(self.data_dir, url=url)
        self.operators = OperatorRegistry(self.data_dir / OPERATORS_DIR)
        self.notifier = Notifier(self.store, self.operators, hostname)
        self.downloads = OrderDownloads(self.store, self.notifier, max_cc_attempts)
        self.core = Es2pCore(self.store, hostname)
        created = ensure_test_pool(self.data_dir / POOL_DIR, self.store)
        if created:
            log.warning("no profile in %s: generated %d test profiles there (profileType %r)",
                        self.data_dir / POOL_DIR, created, TEST_PROFILE_TYPE)
        self.load_pool()

    def load_pool(self) -> None:
        """Read ``pool/`` into the store (at start and on SIGHUP)."""
        load_pool(self.data_dir / POOL_DIR, self.store)

    def listen_es2(self, reactor: Any, host: str, port: int, *, certs: Any = None,
                   plain_http: bool = False, cert_file: Path | None = None,
                   key_file: Path | None = None, listen: Any = None,
                   limits: Any = None, observer: Any = None) -> str:
        """Listen for ES2+; returns the base URL it serves.  ValueError when it cannot.

        ``certs`` is the server's CertificateStore (its DPtls are served),
        unless ``cert_file``/``key_file`` name the ES2+ certificate.
        ``listen(factory)`` opens the port instead of TCP on host:port (``--workers``);
        ``limits`` are the ES9+ listener's deadlines and connection caps;
        ``observer`` hears of each ES2+ call (:mod:`smdpp.observe`).
        """
        from smdpp.http.es2p import Es2pApi, es2_factory
        dptls = None
        if plain_http:
            if not is_loopback(host):
                raise ValueError(f"--es2-plain-http only on a loopback address, not {host}")
        else:
            dptls = self._tls_server(certs, cert_file, key_file)
        api = Es2pApi(self.core, self.operators, client_certificates=not plain_http,
                      observer=observer)
        factory = es2_factory(api, dptls, limits)
        listening = (listen(factory) if listen is not None
                     else reactor.listenTCP(port, factory, interface=host))
        address = listening.getHost()
        scheme = "http" if plain_http else "https"
        return f"{scheme}://{address.host}:{address.port}"

    @staticmethod
    def _tls_server(certs: Any, cert_file: Path | None, key_file: Path | None) -> Any:
        from smdpp.http.tls import DptlsServer
        if cert_file is not None:
            from smdpp.pki.files import load_certificate
            from smdpp.pki.store import TlsCredential
            if key_file is None:
                raise ValueError("--es2-cert needs --es2-key")
            credentials = (TlsCredential(cert_file, key_file, load_certificate(cert_file)),)
        else:
            credentials = certs.check_tls()
        return DptlsServer.from_credentials(credentials)

    def client_credential(self, certs: Any) -> ClientCredential | None:
        """The DPtls (PEM) presented to operators' HTTPS endpoints; None if there is none."""
        try:
            credentials = certs.check_tls()
        except ValueError as exc:
            log.warning("notifications to operators go without a client certificate: %s", exc)
            return None
        for credential in credentials:
            pem = _pem(credential.cert_path)
            if pem is not None:
                return ClientCredential(pem, credential.key_path)
        log.warning("notifications to operators go without a client certificate: no PEM DPtls")
        return None

    def start_delivery(self, reactor: Any, certs: Any, observer: Any = None) -> Any:
        """Send queued notifications from now on; ``observer`` hears of each attempt."""
        return start_delivery(reactor, self.store, self.operators, self.client_credential(certs),
                              observer=observer)

    def close(self) -> None:
        self.store.close()
