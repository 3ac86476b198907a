"""``python -m bench.store``: process CPU per session store operation.

Times, in process CPU (:func:`time.process_time`, so a busy neighbour on the
machine does not count), the store calls one profile download makes
(SGP.22 3.1.3, as :class:`~smdpp.rsp.engine.RspEngine` makes them):

``get``
    read one live session (authenticated, its one-time key sealed);
``put_if``
    a compare-and-set from one state to the next on a live session;
``insert``
    ``put_if(session, None)``: a new session (initiateAuthentication);
``lifecycle``
    one whole download: insert, then three times get + put_if
    (initiated -> authenticated -> bpp_delivered -> done), i.e. 3 gets and 4
    writes.

Each figure is the median over ``--rounds`` rounds of ``--ops`` operations,
in microseconds per operation.  The journal store (the default of one
server process) and the sqlite shelve (the default with ``--workers``) each
run on a fresh temporary folder, optionally prefilled with ``--prefill``
finished sessions (as a server that has been up for a while holds).  The
memory store is measured for comparison.  ``--baseline OLD/shelf.py`` adds
the ShelveStore of another version of ``smdpp/store/shelf.py`` (with this
tree's codec), measured in the same process, round by round in turn with the
current one: the speed of a shared machine drifts over minutes, so runs an
hour (or a minute) apart do not compare.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from smdpp.rsp.session import Session, SessionState
from smdpp.store import JournalStore, MemoryStore, ShelveStore
from smdpp.rsp.session_store import SessionStore

__all__ = ["main", "measure", "parse_args"]

OPS = ("get", "put_if", "insert", "lifecycle")
STORES = ("journal", "shelve", "memory")
SECRET = bytes(range(121))  # the size of a PKCS#8 P-256 private key


def _session(n: int, state: SessionState, expires: float) -> Session:
    """A session of realistic size: what authenticateClient + getBoundProfilePackage store."""
    tid = f"{n:032X}"
    session = Session(transaction_id=tid, state=state, created=time.time(), expires=expires,
                      smdp_address="smdp.example.com", euicc_challenge=b"\x01" * 16,
                      server_challenge=b"\x02" * 16, ci_pkid=b"\x03" * 20, eid="8" * 32,
                      euicc_public_key=b"\x04" * 91, matching_id="TS48V2-SAIP2-1-BERTLV",
                      iccid="8949449999999990023", smdp_signature2=b"\x05" * 67)
    if state is not SessionState.INITIATED:
        session.euicc_otpk = b"\x06" * 65
        session.smdp_ot_key = SECRET
    return session


def _prefill(store: SessionStore, count: int, base: int) -> None:
    expires = time.time() + 3600
    for n in range(base, base + count):
        session = _session(n, SessionState.AUTHENTICATED, expires)
        session.finish(SessionState.DONE, {"success": True})
        store.put(session)


def _timed(body: Callable[[], None], ops: int) -> float:
    """µs of process CPU per operation for ``body`` (which runs ``ops`` operations)."""
    started = time.process_time()
    body()
    return (time.process_time() - started) / ops * 1e6


def measure(store: SessionStore, op: str, ops: int, base: int) -> float:
    """µs per ``op`` on ``store``, over ``ops`` operations on sessions numbered from ``base``."""
    expires = time.time() + 3600
    tids = range(base, base + ops)
    if op == "insert":
        sessions = [_session(n, SessionState.INITIATED, expires) for n in tids]
        return _timed(lambda: [store.put_if(s, None) for s in sessions], ops)
    # the other operations work on live sessions
    live = [_session(n, SessionState.AUTHENTICATED, expires) for n in tids]
    for session in live:
        store.put(session)
    if op == "get":
        ids = [s.transaction_id for s in live]
        return _timed(lambda: [store.get(tid) for tid in ids], ops)
    if op == "put_if":
        moved = [_session(n, SessionState.BPP_DELIVERED, expires) for n in tids]
        return _timed(lambda: [store.put_if(s, SessionState.AUTHENTICATED) for s in moved], ops)
    if op == "lifecycle":
        return _timed(lambda: [_download(store, n, expires) for n in range(base + ops,
                                                                           base + 2 * ops)], ops)
    raise ValueError(f"unknown operation {op!r}")


def _download(store: SessionStore, n: int, expires: float) -> None:
    """The store calls of one download, as the engine makes them."""
    session = _session(n, SessionState.INITIATED, expires)
    ok = store.put_if(session, None)
    for step in (SessionState.AUTHENTICATED, SessionState.BPP_DELIVERED, SessionState.DONE):
        loaded = store.get(session.transaction_id)
        assert loaded is not None
        previous = loaded.state
        session = _session(n, step if step is not SessionState.DONE else
                           SessionState.BPP_DELIVERED, expires)
        if step is SessionState.DONE:
            session.finish(SessionState.DONE, {"success": True})
        ok = ok and store.put_if(session, previous)
    assert ok, "a compare-and-set failed in the benchmark"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=500, help="operations per round (500)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is shown (7)")
    parser.add_argument("--prefill", type=int, default=0,
                        help="finished sessions written before timing (0)")
    parser.add_argument("--store", choices=(*STORES, "all"), default="all")
    parser.add_argument("--only", choices=OPS, action="append",
                        help="measure only this operation (repeatable)")
    parser.add_argument("--baseline", type=Path, metavar="SHELF_PY",
                        help="also measure the ShelveStore of this other shelf.py, interleaved")
    return parser.parse_args(argv)


def _baseline_class(path: Path) -> type:
    """ShelveStore from another copy of ``smdpp/store/shelf.py``."""
    spec = importlib.util.spec_from_file_location("bench_baseline_shelf", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ShelveStore


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """{store: {operation: median µs}}."""
    makers: dict[str, Callable[[Path], SessionStore]] = {}
    if args.baseline is not None:
        makers["baseline"] = _baseline_class(args.baseline)
    if args.store in ("journal", "all"):
        makers["journal"] = JournalStore
    if args.store in ("shelve", "all"):
        makers["shelve"] = ShelveStore
    if args.store in ("memory", "all"):
        makers["memory"] = lambda folder: MemoryStore()
    ops = args.only or OPS
    samples = {kind: {op: [] for op in ops} for kind in makers}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        stores: dict[str, SessionStore] = {}
        for kind, make in makers.items():
            (Path(tmp) / kind).mkdir()
            stores[kind] = make(Path(tmp) / kind)
            _prefill(stores[kind], args.prefill, 10 ** 9)
        base = 0
        for _ in range(args.rounds):
            for kind, store in stores.items():  # stores in turn, then operations in turn:
                for op in ops:  # a drift of the machine's speed hits all of them alike
                    samples[kind][op].append(measure(store, op, args.ops, base))
                    base += 2 * args.ops
        for store in stores.values():
            store.close()
    return {kind: {op: statistics.median(values) for op, values in figures.items()}
            for kind, figures in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per store: µs of process CPU per operation."""
    args = parse_args(argv)
    for kind, figures in run(args).items():
        cells = "  ".join(f"{op} {value:7.1f}" for op, value in figures.items())
        print(f"{kind:8s} µs/op (prefill {args.prefill}): {cells}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
