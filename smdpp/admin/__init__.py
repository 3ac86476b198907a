"""The admin listener (``--admin-port``): status page, ``/health``, ``/ready``, ``/metrics``.

:func:`setup` is all that start-up calls: it adds the observers (recent
sessions, metrics) to the ES9+ adapter's :class:`~smdpp.observe.Observers`,
times the engine's session store, and returns the :class:`Admin` whose
:meth:`Admin.site` the start-up code listens with (and whose
:meth:`Admin.start` shares this worker's sessions with ``--workers``).  Everything else lives in
:mod:`smdpp.admin.api` (requests), :mod:`smdpp.admin.page` (HTML),
:mod:`smdpp.admin.recent` (sessions and steps), :mod:`smdpp.admin.worker_sessions`
(every worker's), :mod:`smdpp.admin.orders` and :mod:`smdpp.admin.metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smdpp.admin.api import AdminApi, AdminInfo, is_loopback, read_token
from smdpp.admin.multiproc import multiprocess_dir
from smdpp.admin.recent import RecentSessions
from smdpp.observe import Observers

if TYPE_CHECKING:
    from smdpp.admin.metrics import Metrics
    from smdpp.rsp.engine import RspEngine

__all__ = ["Admin", "setup", "check_admin_options", "is_loopback"]

#: Connections open on the admin listener at most, and from one client address.
MAX_CONNECTIONS = 64
MAX_PER_CLIENT = 16


@dataclass
class Admin:
    """The admin side of one server process."""

    api: AdminApi
    metrics: Metrics

    def start(self, clock: Any) -> None:
        """With ``--workers``: write this worker's recent sessions for the others' pages."""
        if self.api.session_files is not None:
            self.api.session_files.start(clock)

    def set_es9_url(self, url: str) -> None:
        """Where ES9+ is served, once it listens (the page shows it)."""
        self.api.info = replace(self.api.info, es9_url=url)

    def site(self) -> Any:
        """The Twisted factory serving the admin requests (the built-in HTTP/1.1 server), with
        the default deadlines and its own small connection caps: a page reader and a scraper
        need few, and an admin port reachable by others must not use up the open files that
        ES9+ needs."""
        from smdpp.http.guard import ConnectionGuard, GuardedFactory
        from smdpp.http.server import HttpFactory
        guard = ConnectionGuard(MAX_CONNECTIONS, MAX_PER_CLIENT, listener="admin",
                                options=(f"{MAX_CONNECTIONS}, fixed", f"{MAX_PER_CLIENT}, fixed"))
        return GuardedFactory(HttpFactory(self.api.handle, self.api.max_body), guard)


def check_admin_options(host: str, token_file: Any) -> str | None:
    """The admin token (or None); ValueError when a non-loopback listener would have none."""
    token = read_token(token_file) if token_file else None
    if token is None and not is_loopback(host):
        raise ValueError(f"--admin-host {host} is not a loopback address: the status page and "
                         "/metrics show EIDs, so give a token with --admin-token-file FILE "
                         "(or listen on 127.0.0.1)")
    return token


def setup(engine: RspEngine, observers: Observers, *, version: str, es9_url: str = "-",
          workers: int = 1, token: str | None = None, orders: Any = None) -> Admin:
    """Observe every ES9+ call and the store of ``engine``; the admin listener's handler.

    ``orders``: the order store (``--es2-port``), whose pool and orders the page shows."""
    from smdpp.admin.metrics import Metrics, TimedStore

    metrics = Metrics()
    metrics.watch(engine.certs, engine.store)
    engine.store = TimedStore(engine.store, metrics.store_latency)
    recent = RecentSessions()
    observers.add(recent)
    observers.add(metrics)
    api = AdminApi(engine, recent, metrics, AdminInfo(version, es9_url, workers), token,
                   orders=orders)
    folder = multiprocess_dir()  # --workers: the supervisor's per-run folder
    if folder is not None and workers > 1:
        from smdpp.admin.worker_sessions import SessionFiles
        api.session_files = SessionFiles(recent, Path(folder))
    return Admin(api, metrics)
