"""A fresh data folder for a benchmark server, and the eUICCs that download from it.

The folder has the layout ``smdpp.app`` expects: ``certs/`` with a test PKI
on the chosen curve (:func:`smdpp.pki.issue.create_test_pki`), ``euicc/``
with its EUM key, and ``upp/`` with one profile of the chosen size:

- ``12k``: the GSMA TS.48 v2 generic test profile (12,207 bytes) from the
  shared test data, linked in place, or, without it, the generated test
  profile padded to 12 KiB;
- ``100k`` / ``500k``: the generated profile padded to that size with filler
  files (``generate_test_profile(fill_to=...)``).

The eUICC identities are issued under the EUM of the folder
(:func:`smdpp.pki.issue.issue_euicc`), with consecutive EIDs in its range.
:func:`prefill_sessions` writes finished sessions into the server's store
before it starts, to show the cost of a download as the store grows.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from smdpp.euicc.identity import EuiccIdentity, load_identity
from smdpp.pki.chain import subject_key_identifier
from smdpp.pki.eid import make_eid
from smdpp.pki.issue import DEFAULT_EID, create_test_pki, issue_euicc
from smdpp.profiles.generate import (
    DEFAULT_ICCID,
    DEFAULT_IMSI,
    DEFAULT_KI,
    DEFAULT_OPC,
    generate_test_profile,
)
from smdpp.rsp.session import Session, SessionState

__all__ = ["HOSTNAME", "PROFILE_SIZES", "DEFAULT_TESTDATA", "BenchData", "prepare",
           "attach", "issue_identities", "prefill_sessions"]

HOSTNAME = "testsmdpplus1.example.com"
#: Profile sizes the benchmark knows, in bytes.
PROFILE_SIZES = {"12k": 12 * 1024, "100k": 100 * 1024, "500k": 500 * 1024}
#: ``../shared/testdata`` beside the repository.
DEFAULT_TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"
TS48_12K = "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der"
# The EIN the test EUM of create_test_pki may issue EIDs for.
_EIN = DEFAULT_EID[:8]
# A prefilled session stays until long after any benchmark run.
_PREFILL_LIFETIME = 7 * 24 * 3600.0


@dataclass(frozen=True)
class BenchData:
    """What a benchmark needs to know about the server's data."""

    data_dir: Path
    matching_id: str
    profile_source: str  # where the profile came from, for the report
    profile_bytes: int
    identities: list[EuiccIdentity]


def _profile(upp_dir: Path, size: str, testdata: Path | None) -> tuple[str, str, int]:
    """Put the profile of ``size`` into ``upp_dir``: (matching ID, source, bytes)."""
    upp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if size not in PROFILE_SIZES:
        raise ValueError(f"profile size {size!r} is not one of {', '.join(PROFILE_SIZES)}")
    if size == "12k" and testdata is not None and (testdata / "upp" / TS48_12K).is_file():
        source = testdata / "upp" / TS48_12K
        (upp_dir / TS48_12K).symlink_to(source.resolve())  # read in place, never copied
        return source.stem, f"TS.48 v2 ({source.name})", source.stat().st_size
    upp = generate_test_profile(iccid=DEFAULT_ICCID, imsi=DEFAULT_IMSI, ki=DEFAULT_KI,
                                opc=DEFAULT_OPC, fill_to=PROFILE_SIZES[size])
    matching_id = f"BENCH-{size.upper()}"
    (upp_dir / f"{matching_id}.der").write_bytes(upp)
    return matching_id, "generated", len(upp)


def issue_identities(eum_dir: Path, out_dir: Path, count: int) -> list[EuiccIdentity]:
    """``count`` eUICC identities under the EUM kept in ``eum_dir``, EIDs ...0001 onwards."""
    if count < 1:
        raise ValueError("at least one eUICC identity is needed")
    identities = []
    for serial in range(1, count + 1):
        eid = make_eid(_EIN, serial)
        identities.append(load_identity(issue_euicc(eum_dir, eid, out_dir / eid)))
    return identities


def prepare(data_dir: Path, *, curve: str, size: str, euiccs: int,
            testdata: Path | None = DEFAULT_TESTDATA) -> BenchData:
    """Fill the empty or new folder ``data_dir`` for a server; see the module docstring."""
    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(data_dir.iterdir()):
        raise ValueError(f"{data_dir} is not empty: the benchmark needs a fresh data folder")
    create_test_pki(data_dir / "certs", data_dir / "euicc", hostname=HOSTNAME, curve=curve)
    matching_id, source, size_bytes = _profile(data_dir / "upp", size, testdata)
    identities = issue_identities(data_dir / "euicc", data_dir / "bench-euiccs", euiccs)
    return BenchData(data_dir, matching_id, source, size_bytes, identities)


def attach(data_dir: Path, identity_dir: Path, *, euiccs: int,
           matching_id: str | None) -> BenchData:
    """The data of a server that is already running on ``data_dir``.

    The eUICC identities are issued under the EUM in ``data_dir/euicc``
    (written there by the server's first start) into ``identity_dir``; the
    profile is ``matching_id`` or the only ``upp/*.der`` there.
    """
    data_dir = Path(data_dir)
    upps = sorted((data_dir / "upp").glob("*.der"))
    if matching_id is None:
        if len(upps) != 1:
            raise ValueError(f"{data_dir / 'upp'} holds {len(upps)} profiles: name one with "
                             "--matching-id")
        matching_id = upps[0].stem
    upp = data_dir / "upp" / f"{matching_id}.der"
    if not upp.is_file():
        raise ValueError(f"no profile {upp}")
    identities = issue_identities(data_dir / "euicc", identity_dir, euiccs)
    return BenchData(data_dir, matching_id, upp.name, upp.stat().st_size, identities)


def prefill_sessions(store: object, count: int, *, ci_cert_der: bytes, matching_id: str,
                     iccid: str = DEFAULT_ICCID, now: float | None = None) -> None:
    """Write ``count`` finished (``done``) sessions, as handleNotification leaves them.

    Synthetic records: random TransactionIds, EIDs of the test EUM, a
    successful installation result, and an expiry a week ahead so that the
    server's expiry does not remove them during the run.  ``store`` is a
    :class:`smdpp.store.SessionStore`.
    """
    now = time.time() if now is None else now
    ci_pkid = subject_key_identifier(x509.load_der_x509_certificate(ci_cert_der)) or b""
    for serial in range(count):
        session = Session(
            transaction_id=os.urandom(16).hex().upper(), state=SessionState.INITIATED,
            created=now, expires=now + _PREFILL_LIFETIME, smdp_address=HOSTNAME,
            euicc_challenge=b"", server_challenge=b"", ci_pkid=ci_pkid,
            eid=make_eid(_EIN, 100_000 + serial), matching_id=matching_id, iccid=iccid,
            bpp_count=1)
        session.finish(SessionState.DONE, {"success": True, "seqNumber": 1})
        store.put(session)  # type: ignore[attr-defined]
