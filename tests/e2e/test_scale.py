"""Scale-out over real HTTP: several smdpp processes sharing one session store.

Two separate server processes take turns on the ES9+ calls of one download,
over the sqlite shelve of one shared data folder (one host), a real
redis-server and a real PostgreSQL (two hosts: each process has its own copy
of the data folder, with the same ``session-store.key``).  The same
authenticateClient sent to both at once is accepted exactly once.
``--workers 2`` serves downloads whose calls land on both workers and
survives the loss of a worker.

redis-server and PostgreSQL come from the distribution packages (``.ci/run``
installs them); each fixture starts a private instance on 127.0.0.1 on a free
port in a temporary folder and stops it afterwards.  PostgreSQL refuses to run
as root, so as root its cluster runs as the ``postgres`` user (``runuser``).
Without a binary the tests skip, except under ``CI`` where they fail.
"""
from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, NoReturn

import pytest

from smdpp.app import load_material
from smdpp.cli import parse_args
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.es9 import Es9Client, Es9Reply, b64e
from smdpp.rsp.session import Session, SessionState
from smdpp.store import open_store

from .conftest import REPO, RunningServer, start_server
from .flow import Flow, assert_failed, assert_ok

ICCID = "89000123456789012341"
BACKENDS = ["shelve", "redis", "postgresql"]


def _missing(what: str) -> NoReturn:
    """No such server here: a failure under CI (which installs it), else a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}; .ci/run installs it")
    pytest.skip(f"{what} (apt-get install redis-server postgresql)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(ready: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


# -- the database servers ---------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed")
    try:
        import redis
    except ImportError:
        _missing("the python package redis is not installed")
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    log = open(folder / "redis.log", "wb")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        _wait_until(client.ping, "redis-server")
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian keeps it off PATH)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda p: int(re.sub(r"\D", "", Path(p).parts[-3]) or 0))
        return Path(newest).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 (trust authentication, no fsync)."""
    bindir = _postgres_bin()
    if bindir is None:
        _missing("PostgreSQL (initdb, pg_ctl) is not installed")
    try:
        import psycopg
    except ImportError:
        _missing("the python package psycopg is not installed")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="smdpp-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # the server refuses root: run the cluster as postgres
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _missing("there is no postgres user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            _missing("runuser (util-linux) is not installed")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    data = folder / "data"
    port = _free_port()
    subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(data), "-U", "smdpp",
                              "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, cwd=folder)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    pg_ctl = as_user + [str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(pg_ctl + ["-l", str(folder / "server.log"), "-w", "-t", "60",
                                 "-o", options, "start"],
                       check=True, capture_output=True, cwd=folder)
        with psycopg.connect(f"postgresql://smdpp@127.0.0.1:{port}/postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE smdpp")
        yield f"postgresql://smdpp@127.0.0.1:{port}/smdpp"
    finally:
        subprocess.run(pg_ctl + ["-m", "fast", "stop"], capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


def _store_url(request: pytest.FixtureRequest, backend: str) -> str:
    if backend == "shelve":
        return "shelve:"
    return request.getfixturevalue(f"{backend}_url")


# -- two processes, one store ---------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the test PKI and profile, made once and copied for each server."""
    folder = tmp_path_factory.mktemp("template") / "smdpp-data"
    load_material(parse_args(["--data-dir", str(folder)]))
    return folder


class Pair:
    """Two smdpp processes sharing one session store."""

    def __init__(self, url: str, a: RunningServer, b: RunningServer) -> None:
        self.url, self.a, self.b = url, a, b

    def card(self) -> SoftEuicc:
        return SoftEuicc.from_identity_dir(self.a.data_dir / "euicc")


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         template: Path) -> Iterator[Pair]:
    url = _store_url(request, request.param)
    base = tmp_path_factory.mktemp(request.param)
    a = start_server(Path(shutil.copytree(template, base / "host-a")), "--store", url)
    data_b = base / "host-a"  # one host: the same data folder, so the same sqlite file
    if request.param != "shelve":  # another host: its own copy, with the same seal key
        data_b = Path(shutil.copytree(base / "host-a", base / "host-b"))
    try:
        b = start_server(data_b, "--store", url)
    except BaseException:
        a.stop()
        raise
    yield Pair(url, a, b)
    a.stop()
    b.stop()


def test_download_alternating_between_two_processes(pair: Pair) -> None:
    """initiate on A, authenticate on B, getBoundProfilePackage on A, notification on B."""
    card = pair.card()
    with Es9Client(pair.a.url) as on_a, Es9Client(pair.b.url) as on_b:
        flow = Flow(on_a, card)
        assert_ok(flow.initiate())
        flow.client = on_b
        assert_ok(flow.authenticate())
        flow.client = on_a
        assert_ok(flow.get_bpp())
        result = flow.install()
        flow.client = on_b
        reply = flow.notify(result)
        assert reply.http_status == 204, reply.describe()
    assert card.installed[ICCID] == (pair.a.data_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()
    tid = flow.tid
    _wait_until(lambda: f"transactionId={tid}: ProfileInstallationResult success"
                in pair.b.log(), "the notification log line", timeout=10)
    assert f"transactionId={tid}: initiateAuthentication" in pair.a.log()
    assert f"transactionId={tid}: authenticateClient" in pair.b.log()
    assert f"transactionId={tid}: getBoundProfilePackage" in pair.a.log()
    store = open_store(pair.url, pair.a.data_dir)
    try:
        session = store.get(tid)
    finally:
        store.close()
    assert session is not None and session.state is SessionState.DONE
    assert session.result["success"] is True and session.smdp_ot_key is None
    if pair.url != "shelve:":  # the sessions really were in the shared server
        assert not (pair.a.data_dir / "sessions.sqlite").exists()
        assert not (pair.b.data_dir / "sessions.sqlite").exists()


def _send_together(urls: list[str], function: str, body: dict[str, Any]) -> list[Es9Reply]:
    """POST the same body to each URL from its own thread, released at the same instant."""
    replies: list[Es9Reply | None] = [None] * len(urls)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(urls))

    def send(i: int) -> None:
        try:
            with Es9Client(urls[i]) as client:
                barrier.wait(timeout=30)
                replies[i] = client.call(function, body)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return [reply for reply in replies if reply is not None]


def test_replayed_authenticate_client_is_accepted_once(pair: Pair) -> None:
    """The same authenticateClient reaches both processes at once: exactly one accepts it."""
    card = pair.card()
    with Es9Client(pair.a.url) as on_a:
        for _ in range(3):
            flow = Flow(on_a, card)
            assert_ok(flow.initiate())
            body = {"transactionId": flow.tid,
                    "authenticateServerResponse": b64e(flow.authenticate_server())}
            replies = _send_together([pair.a.url, pair.b.url], "authenticateClient", body)
            assert len(replies) == 2
            accepted = [r for r in replies if r.function_status == "Executed-Success"]
            refused = [r for r in replies if r.function_status != "Executed-Success"]
            assert len(accepted) == 1, [r.describe() for r in replies]
            assert_failed(refused[0], "8.10.1", "3.9")


# -- the backends themselves ----------------------------------------------------


@pytest.mark.parametrize("backend", ["redis", "postgresql"])
def test_shared_store_put_if_and_expiry(backend: str, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    """put_if's compare-and-set, sealed secrets and expiry in the real server."""
    url = _store_url(request, backend)
    store = open_store(url, tmp_path)
    other = open_store(url, tmp_path)  # a second connection, as another process would have
    now = time.time()
    tid = os.urandom(16).hex().upper()
    session = Session(transaction_id=tid, state=SessionState.INITIATED, created=now,
                      expires=now + 600, smdp_address="smdp.example",
                      euicc_challenge=b"\x01" * 16, server_challenge=b"\x02" * 16,
                      ci_pkid=b"\x03" * 20)
    try:
        assert store.put_if(session, SessionState.INITIATED) is False  # nothing stored yet
        assert store.put_if(session, None) is True
        assert other.put_if(session, None) is False
        session.state = SessionState.BPP_DELIVERED
        session.smdp_ot_key = b"\x55" * 67
        assert other.put_if(session, SessionState.AUTHENTICATED) is False
        assert store.put_if(session, SessionState.INITIATED) is True
        assert other.put_if(session, SessionState.INITIATED) is False  # the replay loses
        assert other.get(tid) == session
        if backend == "postgresql":  # the sessions-by-state gauge of /metrics
            before = other.count_by_state(now)
            assert before.get("bpp_delivered", 0) >= 1
            assert other.count_by_state(now + 601).get("bpp_delivered", 0) == before["bpp_delivered"] - 1
        old_tid = f"{int(tid, 16) ^ 1:032X}"  # another session (tid[:-2] + "00" was tid 1 in 256)
        old = Session(transaction_id=old_tid, state=SessionState.DONE,
                      created=now - 700, expires=now - 100, smdp_address="smdp.example",
                      euicc_challenge=b"", server_challenge=b"", ci_pkid=b"\x03" * 20)
        store.put(old)
        if backend == "redis":  # Redis drops the key by itself at `expires`
            assert store.get(old.transaction_id) is None
            import redis
            client = redis.Redis.from_url(url)
            assert client.pexpiretime(f"smdpp:session:{tid}") == int(session.expires * 1000)
            assert b"\x55" * 67 not in client.hget(f"smdpp:session:{tid}", "record")
            client.close()
        else:
            assert store.expire(now) >= 1 and store.get(old.transaction_id) is None
        assert store.get(tid) is not None  # the live one stays
        store.delete(tid)
        assert other.get(tid) is None
    finally:
        store.close()
        other.close()


# -- --workers ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _download_on_fresh_connections(url: str, data_dir: Path) -> str:
    """One download with a new TCP connection per call, so the kernel may pick any worker."""
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    flow = Flow(Es9Client(url), card)
    steps = [flow.initiate, flow.authenticate, flow.get_bpp]
    for step in steps:
        flow.client = Es9Client(url)
        try:
            assert_ok(step())
        finally:
            flow.client.close()
    result = flow.install()
    with Es9Client(url) as client:
        flow.client = client
        reply = flow.notify(result)
    assert reply.http_status == 204, reply.describe()
    assert card.installed[ICCID]
    return flow.tid


def test_two_workers_serve_downloads_and_survive_a_crash(tmp_path: Path, template: Path) -> None:
    data_dir = Path(shutil.copytree(template, tmp_path / "smdpp-data"))
    server = start_server(data_dir, "--workers", "2")
    try:
        children = _children(server.process.pid)
        assert len(children) == 2
        tids = [_download_on_fresh_connections(server.url, server.data_dir) for _ in range(6)]
        _wait_until(lambda: all(f"transactionId={t}: ProfileInstallationResult success"
                                in server.log() for t in tids), "the downloads' log lines",
                    timeout=10)
        log = server.log()
        assert "[worker 1] " in log and "[worker 2] " in log
        assert len(set(re.findall(r"\[worker (\d)\] transactionId=", log))) == 2, \
            "24 connections all went to one worker"
        assert log.count("serving ES9+") == 1

        os.kill(server.process.pid, signal.SIGHUP)  # passed on: each worker reloads its CRLs
        _wait_until(lambda: "SIGHUP: passed on to 2 workers" in server.log(), "SIGHUP")
        time.sleep(0.5)
        assert server.process.poll() is None and _children(server.process.pid) == children

        os.kill(children[0], signal.SIGKILL)  # the parent starts a new worker
        _wait_until(lambda: log.count("listening on") + 1 <= server.log().count("listening on"),
                    "the restarted worker")
        assert "died with SIGKILL; restarting it" in server.log()
        assert children[0] not in _children(server.process.pid)
        _download_on_fresh_connections(server.url, server.data_dir)
        children = _children(server.process.pid)
    finally:
        server.stop()
    assert server.process.returncode == 0
    for pid in children:  # no worker outlives the parent
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_workers_refuse_a_private_store(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
                          "-p", "0", "--data-dir", str(tmp_path / "d"), "--workers", "2",
                          "--in-memory"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "--workers 2 needs a session store the processes can share" in run.stdout
