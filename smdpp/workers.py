"""``--workers N``: N SM-DP+ processes accepting on one port, sharing one session store.

The parent prepares the data folder and loads certificates and profiles once,
checks that the session store can be shared and reached (creating its file or
schema once, before any worker races for it), and reserves the address with a
bound but not listening ``SO_REUSEPORT`` socket (with ``-p 0`` that is how
the port is chosen).  Then it forks the workers.  Each worker opens its own
store connection, binds its own ``SO_REUSEPORT`` listening socket to that
address and hands it to its own Twisted reactor; the kernel spreads incoming
connections over the listening sockets, so the calls of one download may
reach different workers, which is why the store must be shared and its
:meth:`~smdpp.rsp.session_store.SessionStore.put_if` atomic.

The parent prints the usual "serving ES9+" line once every worker listens,
restarts a worker that dies abnormally, passes SIGHUP on to every worker (each
reloads its CRLs), and on SIGTERM or SIGINT stops them all.  The parent never
imports the reactor: a reactor created before ``fork()`` would be shared by all
the children.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from smdpp.logs import JsonFormatter, LineFormatter

if TYPE_CHECKING:
    from smdpp.pki.store import CertificateStore
    from smdpp.profiles.inventory import ProfileInventory

log = logging.getLogger("smdpp.workers")

START_TIMEOUT = 60.0  # seconds for every worker to load and listen
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
RESTART_DELAY = 1.0  # seconds before a crashed worker is started again
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class ListenAddress:
    """Where every worker binds: the resolved --host and the (chosen) port."""

    family: socket.AddressFamily
    sockaddr: tuple[Any, ...]

    @property
    def url_host(self) -> str:
        host = str(self.sockaddr[0])
        return f"[{host}]" if self.family == socket.AF_INET6 else host

    @property
    def port(self) -> int:
        return int(self.sockaddr[1])


def resolve(host: str, port: int) -> ListenAddress:
    """The address to bind for ``host``, IPv4 first as Twisted's listenTCP does."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _type, _proto, _name, sockaddr = infos[0]
    return ListenAddress(socket.AddressFamily(family), sockaddr)


def reuseport_socket(address: ListenAddress) -> socket.socket:
    """A TCP socket bound to ``address`` with SO_REUSEPORT, not yet listening."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address.sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Worker:
    index: int
    pid: int
    started: float


class Supervisor:
    """The parent process: forks, watches and stops the workers."""

    def __init__(self, args: argparse.Namespace,
                 material: tuple[CertificateStore, ProfileInventory],
                 address: ListenAddress, reservation: socket.socket,
                 es2: tuple[ListenAddress, socket.socket] | None = None) -> None:
        self.args = args
        self.material = material
        self.address = address
        self.reservation = reservation
        self.es2 = es2  # --es2-port: the ES2+ address, reserved like the ES9+ one
        self.workers: dict[int, _Worker] = {}  # by pid
        #: the admin listener's address and reservation (--admin-port), bound like ES9+'s
        self.admin: tuple[ListenAddress, socket.socket] | None = None
        self._parent_pid = os.getpid()
        self._signal_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)

    def run(self) -> int:
        """Start every worker, announce the address, supervise until told to stop."""
        try:
            if not self._start_all():
                self._stop_all()
                return 1
            if self.admin is not None:
                log.info("status page on http://%s:%d/ (also /health, /ready, /metrics), "
                         "served by each worker", self.admin[0].url_host, self.admin[0].port)
            log.info("serving ES9+ for %s on %s://%s:%d/gsma/rsp2/es9plus/ with %d workers",
                     self.args.hostname, "https" if getattr(self.args, "tls", False) else "http",
                     self.address.url_host, self.address.port, len(self.workers))
            sys.stdout.flush()
            code = self._supervise()
            self._stop_all()
            return code
        finally:
            self.reservation.close()
            if self.es2 is not None:
                self.es2[1].close()
            if self.admin is not None:
                self.admin[1].close()
            signal.pthread_sigmask(signal.SIG_SETMASK, self._signal_mask)

    # -- starting ---------------------------------------------------------

    def _start_all(self) -> bool:
        """Fork the workers and wait until each says it listens (or fails)."""
        pending: dict[int, int] = {}  # read end of a worker's ready pipe -> worker index
        for index in range(1, self.args.workers + 1):
            read_fd, write_fd = os.pipe()
            self._fork(index, write_fd)
            os.close(write_fd)
            pending[read_fd] = index
        deadline = time.monotonic() + START_TIMEOUT
        ok = True
        while pending:
            remaining = deadline - time.monotonic()
            readable = select.select(list(pending), [], [], max(0.0, remaining))[0]
            if not readable:
                log.error("workers %s did not start within %.0f s",
                          sorted(pending.values()), START_TIMEOUT)
                ok = False
                break
            for fd in readable:
                index = pending.pop(fd)
                if os.read(fd, 1) != b"R":  # end of file: the worker exited first
                    log.error("worker %d failed to start", index)
                    ok = False
                os.close(fd)
            if not ok:
                break
        for fd in pending:
            os.close(fd)
        return ok

    def _fork(self, index: int, ready_fd: int | None) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would print the parent's buffered output again
        pid = os.fork()
        if pid == 0:
            self._worker_process(index, ready_fd)
        self.workers[pid] = _Worker(index, pid, time.monotonic())

    # -- supervising --------------------------------------------------------

    def _supervise(self) -> int:
        """Wait for signals: reap and restart workers, return on SIGTERM/SIGINT."""
        restart_at: dict[int, float] = {}  # worker index -> monotonic time
        while True:
            timeout = None
            if restart_at:
                timeout = max(0.0, min(restart_at.values()) - time.monotonic())
            info = (signal.sigtimedwait(_SIGNALS, timeout) if timeout is not None
                    else signal.sigwaitinfo(_SIGNALS))
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping %d workers", signal.Signals(info.si_signo).name,
                         len(self.workers))
                return 0
            if info is not None and info.si_signo == signal.SIGHUP:
                log.info("SIGHUP: passed on to %d workers", len(self.workers))
                for pid in self.workers:
                    _signal(pid, signal.SIGHUP)
            for worker, status in self._reap():
                code = os.waitstatus_to_exitcode(status)
                if code == 0:  # a clean exit: it was told to stop (e.g. Ctrl-C to the group)
                    log.info("worker %d (pid %d) stopped", worker.index, worker.pid)
                    continue
                log.warning("worker %d (pid %d) died with %s; restarting it", worker.index,
                            worker.pid, f"exit code {code}" if code > 0
                            else signal.Signals(-code).name)
                restart_at[worker.index] = time.monotonic() + RESTART_DELAY
            now = time.monotonic()
            for index, when in list(restart_at.items()):
                if when <= now:
                    del restart_at[index]
                    self._fork(index, None)
            if not self.workers and not restart_at:
                log.info("all workers have stopped")
                return 0

    def _reap(self) -> list[tuple[_Worker, int]]:
        """Every worker that has exited, with its wait status."""
        dead = []
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            worker = self.workers.pop(pid, None)
            if worker is not None:
                dead.append((worker, status))
                if self.admin is not None:  # its live gauges (open connections) end with it
                    from smdpp.admin.multiproc import mark_process_dead
                    mark_process_dead(pid)
        return dead

    def _stop_all(self) -> None:
        """SIGTERM every worker, SIGKILL what is left after :data:`STOP_TIMEOUT`."""
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers:
            self._reap()
            remaining = deadline - time.monotonic()
            if not self.workers or remaining <= 0:
                break
            signal.sigtimedwait({signal.SIGCHLD}, min(remaining, 0.5))
        for pid, worker in list(self.workers.items()):
            log.warning("worker %d (pid %d) did not stop: killed", worker.index, pid)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.workers.clear()

    # -- in the worker ------------------------------------------------------

    def _worker_process(self, index: int, ready_fd: int | None) -> NoReturn:
        """The child side of the fork: serve until stopped, never return to the caller."""
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._signal_mask)
            _die_with_parent(self._parent_pid)
            self.reservation.close()
            if self.admin is not None:
                self.admin[1].close()
            _tag_log_lines(index)
            code = self._serve(ready_fd)
        except KeyboardInterrupt:  # SIGTERM/SIGINT before its reactor ran (smdpp.cli.main)
            log.info("worker %d stopped while starting", index)
            code = 0
        except BaseException:  # noqa: BLE001 - the child must reach os._exit whatever happens
            log.exception("worker %d failed", index)
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(code)

    def _serve(self, ready_fd: int | None) -> int:
        from twisted.internet import reactor

        from smdpp.app import build_engine, open_orders, serve
        from smdpp.http.guard import LISTEN_BACKLOG  # the one backlog, as with one process

        orders = open_orders(self.args)  # with --es2-port: this worker's order store connection
        engine = build_engine(self.args, self.material, orders)  # and its own session store

        def listener(address: ListenAddress) -> Any:
            def listen(site: Any) -> Any:
                sock = reuseport_socket(address)
                try:
                    sock.listen(LISTEN_BACKLOG)
                    sock.setblocking(False)
                    return reactor.adoptStreamPort(sock.fileno(), address.family, site)
                finally:
                    sock.close()  # the reactor holds its own duplicate of the descriptor
            return listen

        listen = listener(self.address)
        es2_listen = listener(self.es2[0]) if self.es2 is not None else None
        admin_listen = listener(self.admin[0]) if self.admin is not None else None

        def on_listening(host: str, port: int) -> None:
            log.info("listening on %s:%d", host, port)
            if ready_fd is not None:
                os.write(ready_fd, b"R")
                os.close(ready_fd)

        return serve(engine, self.args, listen=listen, on_listening=on_listening,
                     orders=orders, es2_listen=es2_listen, admin_listen=admin_listen,
                     announce_orders=False)  # the parent did, once


def _signal(pid: int, signo: signal.Signals) -> None:
    try:
        os.kill(pid, signo)
    except ProcessLookupError:
        pass


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGTERM this worker if the parent dies (Linux), so no orphan keeps
    the port; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _tag_log_lines(index: int) -> None:
    """Name the worker in each log line it writes."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.worker = index
            continue
        fmt = handler.formatter._fmt if handler.formatter else None  # noqa: SLF001
        if fmt and "%(message)s" in fmt:
            handler.setFormatter(LineFormatter(
                fmt.replace("%(message)s", f"[worker {index}] %(message)s")))


def run_workers(args: argparse.Namespace) -> int:
    """``--workers N`` with N > 1: the parent process; returns the exit code."""
    from smdpp.app import load_material, open_orders
    from smdpp.store import is_shared, open_store, redact_url

    if not is_shared(args.store):
        log.error("--workers %d needs a session store the processes can share: %s is private "
                  "to one process (use shelve:, redis:// or postgresql://)", args.workers,
                  args.store)
        return 1
    admin = orders = None
    try:
        material = load_material(args)
        open_store(args.store, args.data_dir).close()  # reachable; file or schema created once
        orders = open_orders(args)  # the order store and pool/ prepared once, before the race
        address = resolve(args.host, args.port)
        reservation = reuseport_socket(address)
        es2 = None
        if getattr(args, "es2_port", None) is not None:
            es2_address = resolve(args.es2_host or args.host, args.es2_port)
            es2_reservation = reuseport_socket(es2_address)
            es2 = (ListenAddress(es2_address.family, es2_reservation.getsockname()),
                   es2_reservation)
        if orders is not None and es2 is not None:  # the released orders' codes, once
            from smdpp.announce import announce_orders
            scheme = "http" if args.es2_plain_http else "https"
            announce_orders(orders.store, args.hostname, args.qr_dir, data_dir=args.data_dir,
                            es2_url=f"{scheme}://{es2[0].url_host}:{es2[0].port}")
        if args.admin_port is not None:
            admin_reservation = reuseport_socket(resolve(args.admin_host, args.admin_port))
            admin = (ListenAddress(admin_reservation.family, admin_reservation.getsockname()),
                     admin_reservation)
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        if orders is not None:
            orders.close()
    address = ListenAddress(address.family, reservation.getsockname())
    log.info("session store %s, starting %d workers", redact_url(args.store), args.workers)
    # each worker guards its own connections (smdpp.http.guard): no counter crosses processes
    log.info("connection caps apply per worker: with %d workers up to %d x --max-connections "
             "in all, and a client up to %d x --max-connections-per-client (the kernel spreads "
             "its connections over the workers)", args.workers, args.workers, args.workers)
    supervisor = Supervisor(args, material, address, reservation, es2)
    supervisor.admin = admin
    if admin is None:
        return supervisor.run()
    # every worker counts into files of its own here; /metrics in any of them sums them all
    import shutil
    import tempfile

    from smdpp.admin import multiproc  # not prometheus_client: the workers import it
    folder = Path(tempfile.mkdtemp(prefix="smdpp-metrics-"))
    try:
        multiproc.prepare(folder)
        return supervisor.run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
