"""ES9+ over the built-in TLS (``--tls``): SGP.22 2.6.6 suites, TLS 1.3, NIST and Brainpool DPtls.

Clients are Python's ``ssl`` (the system OpenSSL) and, where that OpenSSL
cannot speak TLS 1.3 with a Brainpool certificate (it has no RFC 8734
signature schemes), pyOpenSSL.  Servers are ``./osmo-smdpp.py --tls``
subprocesses started the README way.
"""
from __future__ import annotations

import select
import shutil
import socket
import ssl
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client
from smdpp.http.client_hello import ClientHello, choose_certificate, parse_client_hello
from smdpp.http.tls import SGP22_TLS12_CIPHERS, DptlsServer, TlsSetupError, probe_openssl
from smdpp.pki.issue import create_test_pki
from smdpp.pki.store import CertificateStore

from .conftest import REPO, RunningServer, start_server
from .flow import ADDRESS

# --- helpers -------------------------------------------------------------------


def make_data_dir(base: Path, curve: str) -> Path:
    """A data folder with a test PKI on ``curve`` ('nist' or 'brainpool')."""
    create_test_pki(base / "certs", base / "euicc", curve=curve)
    return base


def add_pki(data_dir: Path, other: Path) -> None:
    """Copy the CI (certificate only), DPauth, DPpb and DPtls of ``other`` into ``data_dir``."""
    for folder in ("CertificateIssuer", "DPauth", "DPpb", "DPtls"):
        for f in (other / "certs" / folder).iterdir():
            if not f.name.startswith("SK_CI_"):
                shutil.copy2(f, data_dir / "certs" / folder / f.name)


def ci_pem(data_dir: Path, suffix: str = "NIST") -> str:
    return str(data_dir / "certs" / "CertificateIssuer" / f"CERT_CI_ECDSA_{suffix}.pem")


def dptls_der(data_dir: Path, suffix: str = "NIST") -> bytes:
    return (data_dir / "certs" / "DPtls" / f"CERT_S_SM_DP_TLS_{suffix}.der").read_bytes()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def client_context(ca_file: str, *, tls12: bool = False, ciphers: str | None = None,
                   curve: str | None = None) -> ssl.SSLContext:
    """A verifying client context: TLS 1.2 only, one suite list or one ECDHE curve if asked."""
    context = ssl.create_default_context(cafile=ca_file)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    if curve:
        context.set_ecdh_curve(curve)  # the only group the client offers
    return context


def handshake(url: str, context: ssl.SSLContext) -> tuple[str, str, bytes]:
    """(TLS version, cipher suite, server certificate DER) of one handshake with ``url``."""
    with socket.create_connection(host_port(url), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=ADDRESS) as tls:
            version, cipher = tls.version(), tls.cipher()[0]
            der = tls.getpeercert(binary_form=True)
    assert version is not None and der is not None
    return version, cipher, der


def pyopenssl_tls13(url: str, ca_file: str, sigalgs: str | None = None) -> tuple[str, bytes]:
    """(TLS version, server certificate DER) of a TLS 1.3 handshake with the OpenSSL of the cryptography wheel."""
    from OpenSSL._util import lib

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION)
    context.load_verify_locations(ca_file)
    context.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1] == 1)
    if sigalgs:
        assert lib.SSL_CTX_set1_sigalgs_list(context._context, sigalgs.encode()) == 1
    with socket.create_connection(host_port(url), timeout=10) as raw:
        conn = SSL.Connection(context, raw)
        conn.set_tlsext_host_name(ADDRESS.encode())
        conn.set_connect_state()
        while True:  # a socket with a timeout is non-blocking underneath
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                if not select.select([raw], [], [], 10)[0]:
                    raise TimeoutError("TLS handshake") from None
        peer = conn.get_peer_certificate()
        assert peer is not None
        return conn.get_protocol_version_name(), peer.to_cryptography().public_bytes(serialization.Encoding.DER)


def brainpool_client(url: str, ca_file: str) -> Es9Client:
    """An ES9+ client for a Brainpool DPtls: TLS 1.2 offering brainpoolP256r1 (SGP.22 2.6.6).

    The system OpenSSL 3.0 behind Python's ssl has no TLS 1.3 signature
    scheme for Brainpool certificates (RFC 8734) and no Brainpool group by
    default, so the client is set up the way a Brainpool LPA would be.
    """
    context = ssl.create_default_context(cafile=ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ecdh_curve("brainpoolP256r1")
    return Es9Client(url, tls_server_name=ADDRESS, ssl_context=context)


def assert_download(client: Es9Client, identity: Path, data_dir: Path) -> None:
    card = SoftEuicc.from_identity_dir(identity)
    with client:
        result = download(client, card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    assert result.upp == (data_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()
    assert result.notification_sent, result.notification_error


def run_server(data_dir: Path, *extra: str, prelude: str = "") -> subprocess.CompletedProcess:
    """Run the server expecting it to refuse to start; ``prelude`` is Python run before main()."""
    code = f"import sys\n{prelude}\nfrom smdpp.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "-H", "127.0.0.1", "-p", "0",
                           "--data-dir", str(data_dir), *extra],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


# --- fixtures ------------------------------------------------------------------


@pytest.fixture(scope="module")
def nist_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(make_data_dir(tmp_path_factory.mktemp("nist") / "data", "nist"), "--tls")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def brainpool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("brp") / "data", "brainpool")


@pytest.fixture(scope="module")
def brainpool_server(brainpool_dir: Path) -> Iterator[RunningServer]:
    """A server whose only credentials (DPauth, DPpb, DPtls) are on brainpoolP256r1."""
    server = start_server(brainpool_dir, "--tls")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def both_server(tmp_path_factory: pytest.TempPathFactory, brainpool_dir: Path) -> Iterator[RunningServer]:
    """One server with NIST and Brainpool credentials (DPauth, DPpb and DPtls of both)."""
    data_dir = make_data_dir(tmp_path_factory.mktemp("both") / "data", "nist")
    add_pki(data_dir, brainpool_dir)
    both_cas = data_dir / "both-cis.pem"
    both_cas.write_text(Path(ci_pem(data_dir)).read_text() + Path(ci_pem(brainpool_dir, "BRP")).read_text())
    server = start_server(data_dir, "--tls")
    yield server
    server.stop()


# --- built-in TLS on NIST P-256 -------------------------------------------------


def test_nist_download_over_https(nist_server: RunningServer) -> None:
    data_dir = nist_server.data_dir
    assert nist_server.url.startswith("https://")
    assert "TLS 1.2 and 1.3" in nist_server.log() and "CERT_S_SM_DP_TLS_NIST.pem" in nist_server.log()
    client = Es9Client(nist_server.url, ca_file=ci_pem(data_dir), tls_server_name=ADDRESS)
    assert_download(client, data_dir / "euicc", data_dir)
    _, _, der = handshake(nist_server.url, client_context(ci_pem(data_dir)))
    assert der == dptls_der(data_dir)


def test_plain_http_is_not_served_on_the_tls_port(nist_server: RunningServer) -> None:
    host, port = host_port(nist_server.url)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 0\r\n\r\n")
        answer = raw.recv(64)
    assert not answer.startswith(b"HTTP/")


@pytest.mark.parametrize("suite", SGP22_TLS12_CIPHERS)
def test_tls12_negotiates_each_sgp22_suite(nist_server: RunningServer, suite: str) -> None:
    context = client_context(ci_pem(nist_server.data_dir), tls12=True, ciphers=suite)
    version, cipher, _ = handshake(nist_server.url, context)
    assert (version, cipher) == ("TLSv1.2", suite)


def test_tls12_default_client_gets_an_sgp22_suite(nist_server: RunningServer) -> None:
    version, cipher, _ = handshake(nist_server.url, client_context(ci_pem(nist_server.data_dir), tls12=True))
    assert version == "TLSv1.2" and cipher in SGP22_TLS12_CIPHERS


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305",
                                   "ECDHE-ECDSA-AES128-SHA"])
def test_tls12_refuses_other_suites(nist_server: RunningServer, suite: str) -> None:
    context = client_context(ci_pem(nist_server.data_dir), tls12=True, ciphers=suite)
    with pytest.raises(ssl.SSLError):
        handshake(nist_server.url, context)


def test_tls11_is_refused(nist_server: RunningServer) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ci_pem(nist_server.data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    hello = parse_client_hello(client_hello_bytes(context))
    assert hello is not None and hello.legacy_version == 0x0302 and not hello.supported_versions
    with pytest.raises(ssl.SSLError):
        handshake(nist_server.url, context)


def test_tls13_when_the_client_offers_it(nist_server: RunningServer) -> None:
    context = client_context(ci_pem(nist_server.data_dir))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    version, _, der = handshake(nist_server.url, context)
    assert version == "TLSv1.3" and der == dptls_der(nist_server.data_dir)


# --- Brainpool, and both curves in one server -----------------------------------


def test_brainpool_download_over_https(brainpool_server: RunningServer, brainpool_dir: Path) -> None:
    server = brainpool_server
    assert "brainpoolP256r1, valid until" in server.log()
    assert_download(brainpool_client(server.url, ci_pem(brainpool_dir, "BRP")), brainpool_dir / "euicc",
                    brainpool_dir)
    context = client_context(ci_pem(brainpool_dir, "BRP"), tls12=True, curve="brainpoolP256r1")
    version, cipher, der = handshake(server.url, context)
    assert (version, der) == ("TLSv1.2", dptls_der(brainpool_dir, "BRP")) and cipher in SGP22_TLS12_CIPHERS
    # TLS 1.3 with a Brainpool certificate (RFC 8734), from a client whose OpenSSL has it.
    assert pyopenssl_tls13(server.url, ci_pem(brainpool_dir, "BRP")) == ("TLSv1.3", dptls_der(brainpool_dir, "BRP"))


def test_both_curves_certificate_chosen_per_handshake(both_server: RunningServer, brainpool_dir: Path) -> None:
    data_dir = both_server.data_dir
    cas = str(data_dir / "both-cis.pem")
    nist, brp = dptls_der(data_dir), dptls_der(data_dir, "BRP")
    assert "chosen per handshake" in both_server.log()
    assert handshake(both_server.url, client_context(cas))[2] == nist  # TLS 1.3, no Brainpool scheme offered
    assert handshake(both_server.url, client_context(cas, tls12=True))[2] == nist
    assert handshake(both_server.url, client_context(cas, tls12=True, curve="prime256v1"))[2] == nist
    assert handshake(both_server.url, client_context(cas, tls12=True, curve="brainpoolP256r1"))[2] == brp
    assert pyopenssl_tls13(both_server.url, cas, "ecdsa_brainpoolP256r1tls13_sha256") == ("TLSv1.3", brp)
    assert pyopenssl_tls13(both_server.url, cas) == ("TLSv1.3", nist)


def test_both_curves_nist_and_brainpool_euicc_download(both_server: RunningServer, brainpool_dir: Path) -> None:
    data_dir = both_server.data_dir
    cas = str(data_dir / "both-cis.pem")
    assert_download(Es9Client(both_server.url, ca_file=cas, tls_server_name=ADDRESS), data_dir / "euicc", data_dir)
    assert_download(brainpool_client(both_server.url, cas), brainpool_dir / "euicc", data_dir)


def test_handshake_failure_is_logged_with_what_the_client_offered(brainpool_server: RunningServer,
                                                                  brainpool_dir: Path) -> None:
    server = brainpool_server
    with pytest.raises(ssl.SSLError):  # TLS 1.2 without brainpoolP256r1: the Brainpool DPtls cannot be used
        handshake(server.url, client_context(ci_pem(brainpool_dir, "BRP"), tls12=True, curve="prime256v1"))
    for _ in range(50):
        if "handshake with 127.0.0.1 failed" in server.log():
            break
        time.sleep(0.1)
    assert "handshake with 127.0.0.1 failed, alert 40 (handshake_failure)" in server.log()
    assert "TLS 1.3: no, groups secp256r1" in server.log()


# --- refusals at start-up --------------------------------------------------------


def test_expired_sgp26_dptls_refuses_to_start(server_factory, shared_testdata: Path, tmp_path: Path) -> None:
    """The SGP.26 DPtls (notAfter 2026-08-02), read in place: --tls refuses, plain HTTP serves."""
    data_dir = tmp_path / "sgp26-data"
    (data_dir / "certs").mkdir(parents=True)
    for folder in ("CertificateIssuer", "DPauth", "DPpb", "DPtls"):
        (data_dir / "certs" / folder).symlink_to(shared_testdata / "sgp26" / folder)
    run = run_server(data_dir, "--tls")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    refusal = [line for line in out.splitlines() if "cannot start" in line]
    assert len(refusal) == 1, out
    assert "CERT_S_SM_DP_TLS_NIST" in refusal[0] and "expired on 2026-08-02" in refusal[0]
    assert "serving ES9+" not in out
    server: RunningServer = server_factory(data_dir)  # plain HTTP never needs DPtls
    assert server.url.startswith("http://")


def test_openssl_without_brainpool_group_says_so_at_start(brainpool_dir: Path, tmp_path: Path) -> None:
    """An OpenSSL that refuses the group (simulated by asking for an unknown name): one line, the way out."""
    data_dir = tmp_path / "data"
    shutil.copytree(brainpool_dir / "certs", data_dir / "certs")
    prelude = "import smdpp.http.tls as tls; tls.BRAINPOOL_TLS12_GROUP = 'brainpoolP256r1-absent'"
    run = run_server(data_dir, "--tls", prelude=prelude)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    refusal = [line for line in out.splitlines() if "cannot start" in line]
    assert len(refusal) == 1, out
    assert "CERT_S_SM_DP_TLS_BRP" in refusal[0] and "brainpoolP256r1-absent" in refusal[0]
    assert "way out" in refusal[0] and "nginx" in refusal[0]
    assert "serving ES9+" not in out


def test_openssl_without_brainpool_group_serves_nist_and_warns(brainpool_dir: Path, tmp_path: Path) -> None:
    data_dir = make_data_dir(tmp_path / "data", "nist")
    add_pki(data_dir, brainpool_dir)
    store = CertificateStore.load(data_dir / "certs")
    support = probe_openssl()
    lacking = replace(support, groups=tuple(g for g in support.groups if g != "brainpoolP256r1"))
    server = DptlsServer.from_credentials(store.tls_all, support=lacking)
    assert [c.cert_path.name for c in server.credentials] == ["CERT_S_SM_DP_TLS_NIST.pem"]
    assert len(server.warnings) == 1
    assert "serving the NIST DPtls only" in server.warnings[0] and "way out" in server.warnings[0]
    full = DptlsServer.from_credentials(store.tls_all, support=support)
    assert [c.cert_path.name for c in full.credentials] == ["CERT_S_SM_DP_TLS_NIST.pem", "CERT_S_SM_DP_TLS_BRP.pem"]
    assert full.warnings == ()


def test_openssl_without_the_sgp22_suites_refuses(tmp_path: Path) -> None:
    data_dir = make_data_dir(tmp_path / "data", "nist")
    store = CertificateStore.load(data_dir / "certs")
    with pytest.raises(TlsSetupError, match="none of the SGP.22 2.6.6"):
        DptlsServer.from_credentials(store.tls_all, support=replace(probe_openssl(), tls12_ciphers=()))


def test_tls_without_dptls_refuses(tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="no DPtls certificate"):
        DptlsServer.from_credentials(())


# --- ClientHello parsing and the choice of certificate ---------------------------


def client_hello_bytes(context: ssl.SSLContext) -> bytes:
    """The records of the ClientHello that ``context`` sends first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=ADDRESS)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_parse_client_hello_of_real_clients() -> None:
    default = parse_client_hello(client_hello_bytes(ssl.create_default_context()))
    assert default is not None and default.offers_tls13
    assert 23 in default.supported_groups and 0x0403 in default.signature_algorithms
    assert 26 not in default.supported_groups
    tls12 = ssl.create_default_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_ecdh_curve("brainpoolP256r1")
    hello = parse_client_hello(client_hello_bytes(tls12))
    assert hello is not None and not hello.offers_tls13 and hello.supported_groups == (26,)


def test_parse_client_hello_across_records_and_broken_input() -> None:
    data = client_hello_bytes(ssl.create_default_context())
    assert data[0] == 22 and len(data) == 5 + int.from_bytes(data[3:5], "big")
    message = data[5:]
    split = b"".join(bytes([22]) + data[1:3] + len(part).to_bytes(2, "big") + part
                     for part in (message[:50], message[50:]))
    assert parse_client_hello(split) == parse_client_hello(data) is not None
    assert parse_client_hello(data[:-1]) is None  # incomplete
    assert parse_client_hello(bytes([23]) + data[1:]) is None  # application data, not a handshake
    assert parse_client_hello(b"POST / HTTP/1.1\r\n\r\n") is None
    assert parse_client_hello(b"") is None


def test_choose_certificate() -> None:
    both = ("secp256r1", "brainpoolP256r1")
    tls13 = ClientHello(0x0303, (0x0304, 0x0303), (29, 23), (0x0403, 0x081A))
    assert choose_certificate(both, tls13) == 0
    assert choose_certificate(both, replace(tls13, signature_algorithms=(0x081A,))) == 1
    tls12 = ClientHello(0x0303, (), (26,), (0x0403,))
    assert choose_certificate(both, tls12) == 1
    assert choose_certificate(both, replace(tls12, supported_groups=(23, 26))) == 0
    assert choose_certificate(both, replace(tls12, supported_groups=None)) == 0
    assert choose_certificate(both, ClientHello(0x0303, (), (24,), None)) == 0  # none fits: the default
    assert choose_certificate(("brainpoolP256r1",), tls13) == 0
    assert choose_certificate(both, None) == 0


def test_dptls_and_its_key_in_one_pem_file(tmp_path: Path) -> None:
    """``cat CERT.pem SK.pem`` as the DPtls file: --tls serves that certificate with that key."""
    data_dir = make_data_dir(tmp_path / "data", "nist")
    tls_dir = data_dir / "certs" / "DPtls"
    combined = tls_dir / "DP_TLS_NIST_WITH_KEY.pem"
    combined.write_bytes((tls_dir / "CERT_S_SM_DP_TLS_NIST.pem").read_bytes()
                         + (tls_dir / "SK_S_SM_DP_TLS_NIST.pem").read_bytes())
    expected = dptls_der(data_dir)
    for name in ("CERT_S_SM_DP_TLS_NIST.pem", "CERT_S_SM_DP_TLS_NIST.der", "SK_S_SM_DP_TLS_NIST.pem"):
        (tls_dir / name).unlink()
    server = start_server(data_dir, "--tls")
    try:
        assert "DP_TLS_NIST_WITH_KEY.pem (NIST P-256" in server.log()
        assert handshake(server.url, client_context(ci_pem(data_dir)))[2] == expected
    finally:
        server.stop()
