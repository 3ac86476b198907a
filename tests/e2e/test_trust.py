"""Trust end to end, through the real server: CRLs, sub-CA chains, both curves, start-up refusals.

The data folder is prepared before the server starts (a NIST and a brainpool
PKI side by side, CRLs in ``crl/``); the server creates only its test profile.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client, b64d, b64e
from smdpp.euicc.identity import EuiccIdentity, load_identity
from smdpp.pki.crl import issue_crl, revoke
from smdpp.pki.issue import (
    create_test_pki,
    issue_dp_certificate,
    issue_euicc_identity,
    issue_eum,
    issue_sub_ca,
)
from smdpp.pki.oids import ID_RSP_ROLE_EUICC_V3, ID_RSP_ROLE_EUM_V3

from .conftest import REPO, RunningServer, start_server
from .flow import ADDRESS, Flow, assert_failed, assert_ok

MATCHING_ID = "SMDPP-TEST-1"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _ci(certs: Path, suffix: str = "NIST") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    folder = certs / "CertificateIssuer"
    cert = x509.load_der_x509_certificate((folder / f"CERT_CI_ECDSA_{suffix}.der").read_bytes())
    key = serialization.load_pem_private_key((folder / f"SK_CI_ECDSA_{suffix}.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _eum(identity_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_der_x509_certificate((identity_dir / "eum_cert.der").read_bytes())
    key = serialization.load_pem_private_key((identity_dir / "eum_key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _card(ci: x509.Certificate, next_cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
          eid: str, other_certs: tuple[x509.Certificate, ...] = (), **kwargs) -> SoftEuicc:
    """A software eUICC with a new certificate issued by ``next_cert`` (EUM or EUM SubCA)."""
    cert, key = issue_euicc_identity(next_cert, issuer_key, eid, **kwargs)
    identity = EuiccIdentity(ci_cert=ci, eum_cert_der=_der(next_cert), euicc_cert_der=_der(cert),
                             euicc_key=key, eid=eid)
    return SoftEuicc(identity, other_certs_in_chain=[_der(c) for c in other_certs])


def _wait_for(server: RunningServer, text: str, after: int, timeout: float = 20.0) -> str:
    """The first log line past line ``after`` that contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.lines[after:]:
            if text in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the server log:\n{server.log()}")


@dataclass
class Trust:
    """The shared server and the eUICCs made for it."""

    server: RunningServer
    nist: SoftEuicc
    brainpool: SoftEuicc
    revoked_euicc: SoftEuicc  # its certificate is on the EUM's CRL
    revoked_eum: SoftEuicc  # its EUM is on the CI's CRL
    subca_chain: tuple  # (CI, EUM SubCA, its key, EID, EUM): CI -> EUM -> EUM SubCA -> eUICC
    nist_pkid: bytes
    brainpool_pkid: bytes

    def subca_card(self, *, send_chain: bool = True) -> SoftEuicc:
        """A new eUICC under the EUM SubCA (v3 policies), sending the EUM in otherCertsInChain or not."""
        ci, sub, sub_key, eid, eum = self.subca_chain
        return _card(ci, sub, sub_key, eid, other_certs=(eum,) if send_chain else (),
                     policy=ID_RSP_ROLE_EUICC_V3)


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trust]:
    data = tmp_path_factory.mktemp("trust") / "smdpp-data"
    certs, crl = data / "certs", data / "crl"
    create_test_pki(certs, data / "euicc")
    create_test_pki(certs, data / "euicc-brainpool", curve="brainpool")
    ci, ci_key = _ci(certs)
    eum, eum_key = _eum(data / "euicc")
    base_eid = load_identity(data / "euicc").eid

    revoked_euicc = _card(ci, eum, eum_key, base_eid)
    other_eum, other_eum_key = issue_eum(ci, ci_key)
    revoked_eum = _card(ci, other_eum, other_eum_key, base_eid)
    v3_eum, v3_eum_key = issue_eum(ci, ci_key, path_length=1, policy=ID_RSP_ROLE_EUM_V3)
    sub, sub_key = issue_sub_ca(v3_eum, v3_eum_key, "eum-subca")

    revoke(crl, eum, eum_key, [x509.load_der_x509_certificate(revoked_euicc.euicc_certificate).serial_number])
    revoke(crl, ci, ci_key, [other_eum.serial_number])

    server = start_server(data)
    nist = SoftEuicc.from_identity_dir(data / "euicc")
    brainpool = SoftEuicc.from_identity_dir(data / "euicc-brainpool")
    yield Trust(server, nist, brainpool, revoked_euicc, revoked_eum, (ci, sub, sub_key, base_eid, v3_eum),
                nist.ci_pkid, brainpool.ci_pkid)
    server.stop()


def _server_curve(body: dict) -> str:
    return x509.load_der_x509_certificate(b64d(body["serverCertificate"])).public_key().curve.name


def test_nist_and_brainpool_euiccs_download_from_one_server(trust: Trust) -> None:
    assert "2 CRL(s)" in trust.server.log()
    log = trust.server.log()
    assert "secp256r1 (CI" in log and "brainpoolP256r1 (CI" in log
    with Es9Client(trust.server.url) as client:
        for card, curve in ((trust.nist, "secp256r1"), (trust.brainpool, "brainpoolP256r1")):
            flow = Flow(client, card)
            body = assert_ok(flow.initiate())
            assert _server_curve(body) == curve
            assert b64d(body["euiccCiPKIdToBeUsed"])[2:] == card.ci_pkid
            assert_ok(flow.authenticate())
            assert_ok(flow.get_bpp())
            assert flow.notify(flow.install()).http_status == 204
            assert "89000123456789012341" in card.installed
        # And once more each through the LPA's whole procedure.
        for card in (trust.brainpool, trust.nist):
            card.installed.clear()
            result = download(client, card, smdp_address=ADDRESS, matching_id=MATCHING_ID)
            assert result.notification_sent, result.notification_error


def test_ci_choice_follows_the_euicc_without_brainpool_preference(trust: Trust) -> None:
    both = [trust.nist_pkid, trust.brainpool_pkid]
    with Es9Client(trust.server.url) as client:
        for order, curve in ((both, "secp256r1"), (both[::-1], "brainpoolP256r1")):
            info1 = rsp().encode("EUICCInfo1", {"svn": b"\x02\x02\x02",
                                                "euiccCiPKIdListForVerification": order,
                                                "euiccCiPKIdListForSigning": both})
            body = assert_ok(client.call("initiateAuthentication", {
                "euiccChallenge": b64e(b"\x11" * 16), "euiccInfo1": b64e(info1), "smdpAddress": ADDRESS}))
            assert _server_curve(body) == curve


def test_revoked_euicc_is_refused(trust: Trust) -> None:
    with Es9Client(trust.server.url) as client:
        flow = Flow(client, trust.revoked_euicc)
        assert_ok(flow.initiate())
        assert_failed(flow.authenticate(), "8.1.3", "6.1")
    assert "eUICC certificate" in trust.server.log() and "is revoked since" in trust.server.log()


def test_revoked_eum_is_refused(trust: Trust) -> None:
    with Es9Client(trust.server.url) as client:
        flow = Flow(client, trust.revoked_eum)
        assert_ok(flow.initiate())
        assert_failed(flow.authenticate(), "8.1.2", "6.1")


def test_eum_subca_with_other_certs_in_chain(trust: Trust) -> None:
    with Es9Client(trust.server.url) as client:
        result = download(client, trust.subca_card(), smdp_address=ADDRESS, matching_id=MATCHING_ID)
        assert result.notification_sent, result.notification_error
        # Without otherCertsInChain the eUICC cannot show its chain up to the CI.
        flow = Flow(client, trust.subca_card(send_chain=False))
        assert_ok(flow.initiate())
        assert_failed(flow.authenticate(), "8.1.2", "6.1")


@pytest.mark.parametrize("content", [b"", b"\x04\x00"], ids=["empty", "not-a-certificate"])
def test_malformed_other_certs_in_chain(trust: Trust, content: bytes) -> None:
    with Es9Client(trust.server.url) as client:
        flow = Flow(client, trust.subca_card())
        assert_ok(flow.initiate())
        asr = flow.authenticate_server()
        parts = parse_single(asr, b"\xbf\x38").children()[0].children()
        assert parts[-1].tag == b"\xa0"  # the card sent otherCertsInChain
        forged = encode_tlv(b"\xbf\x38", encode_tlv(b"\xa0", b"".join(
            p.raw for p in parts[:-1]) + encode_tlv(b"\xa0", content)))
        assert_failed(flow.authenticate(forged), "1.2", "2.1")


def test_brainpool_preference_decides_only_when_both_match(trust: Trust) -> None:
    server = start_server(trust.server.data_dir, "-b", "--in-memory")
    try:
        both = [trust.nist_pkid, trust.brainpool_pkid]
        with Es9Client(server.url) as client:
            for verification, curve in ((both, "brainpoolP256r1"), ([trust.nist_pkid], "secp256r1")):
                info1 = rsp().encode("EUICCInfo1", {"svn": b"\x02\x02\x02",
                                                    "euiccCiPKIdListForVerification": verification,
                                                    "euiccCiPKIdListForSigning": both})
                body = assert_ok(client.call("initiateAuthentication", {
                    "euiccChallenge": b64e(b"\x22" * 16), "euiccInfo1": b64e(info1), "smdpAddress": ADDRESS}))
                assert _server_curve(body) == curve
            card = SoftEuicc.from_identity_dir(trust.server.data_dir / "euicc-brainpool")
            result = download(client, card, smdp_address=ADDRESS, matching_id=MATCHING_ID)
            assert result.notification_sent
    finally:
        server.stop()


def test_sighup_reloads_crls(tmp_path: Path) -> None:
    data = tmp_path / "smdpp-data"
    create_test_pki(data / "certs", data / "euicc")
    server = start_server(data)
    try:
        card = SoftEuicc.from_identity_dir(data / "euicc")
        eum, eum_key = _eum(data / "euicc")
        with Es9Client(server.url) as client:
            flow = Flow(client, card)
            assert_ok(flow.initiate())
            assert_ok(flow.authenticate())

            revoke(data / "crl", eum, eum_key,
                   [x509.load_der_x509_certificate(card.euicc_certificate).serial_number])
            mark = len(server.lines)
            server.process.send_signal(signal.SIGHUP)
            _wait_for(server, "SIGHUP: 1 CRL(s) in use", mark)
            flow = Flow(client, card)
            assert_ok(flow.initiate())
            assert_failed(flow.authenticate(), "8.1.3", "6.1")

            # A broken file in crl/ is reported and the verified CRLs stay in use.
            (data / "crl" / "broken.crl").write_bytes(b"not a CRL")
            mark = len(server.lines)
            server.process.send_signal(signal.SIGHUP)
            line = _wait_for(server, "CRLs not reloaded", mark)
            assert "broken.crl" in line
            flow = Flow(client, card)
            assert_ok(flow.initiate())
            assert_failed(flow.authenticate(), "8.1.3", "6.1")
        assert server.process.poll() is None
    finally:
        server.stop()


def _forged_crl(data: Path) -> None:
    ci, _ = _ci(data / "certs")
    impostor = ec.generate_private_key(ec.SECP256R1())
    (data / "crl").mkdir()
    (data / "crl" / "ci-forged.crl").write_bytes(
        issue_crl(ci, impostor, []).public_bytes(serialization.Encoding.DER))


def _stale_crl(data: Path) -> None:
    ci, ci_key = _ci(data / "certs")
    now = datetime.now(timezone.utc)
    (data / "crl").mkdir()
    (data / "crl" / "ci.crl").write_bytes(issue_crl(
        ci, ci_key, [], this_update=now - timedelta(days=60), next_update=now - timedelta(days=30),
    ).public_bytes(serialization.Encoding.DER))


def _expired_dpauth(data: Path) -> None:
    ci, ci_key = _ci(data / "certs")
    old = datetime(2021, 3, 1, tzinfo=timezone.utc)
    cert, key = issue_dp_certificate(ci, ci_key, "auth", not_before=old, not_after=old + timedelta(days=365))
    auth_dir = data / "certs" / "DPauth"
    (auth_dir / "CERT_S_SM_DPauth_ECDSA_NIST.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (auth_dir / "SK_S_SM_DPauth_ECDSA_NIST.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


_BROKEN = {"forged-crl": _forged_crl, "stale-crl": _stale_crl, "expired-dpauth": _expired_dpauth}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server started on each broken data folder of ``_BROKEN``: its exit status and output."""
    outputs = {}
    for name, breaks in _BROKEN.items():
        data = tmp_path_factory.mktemp(name) / "smdpp-data"
        create_test_pki(data / "certs", data / "euicc")
        breaks(data)
        run = subprocess.run(
            [sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1", "-p", "0", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60, cwd=REPO)
        outputs[name] = f"exit status {run.returncode}\n{run.stdout}{run.stderr}"
    return outputs


def test_crl_with_bad_signature_stops_the_start(refusals: dict[str, str]) -> None:
    out = refusals["forged-crl"]
    assert out.startswith("exit status 1\n"), out
    assert "cannot start" in out and "ci-forged.crl: CRL signature does not verify" in out


def test_stale_crl_stops_the_start(refusals: dict[str, str]) -> None:
    out = refusals["stale-crl"]
    assert out.startswith("exit status 1\n"), out
    assert "ci.crl: CRL is past its nextUpdate" in out


def test_expired_dpauth_stops_the_start(refusals: dict[str, str]) -> None:
    out = refusals["expired-dpauth"]
    assert out.startswith("exit status 1\n"), out
    assert "CERT_S_SM_DPauth_ECDSA_NIST.der: SM-DP+ auth certificate expired on 2022-03-01" in out
