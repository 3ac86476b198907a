"""contrib/nginx-smdpp.conf for real: nginx with the DPtls certificate in front of plain-HTTP smdpp.

The example is rendered into a temporary folder with only its port, the
certificate paths and the upstream port replaced, included in a minimal
nginx.conf (pid, logs and temp files in that folder) and run by the
distribution's nginx as a foreground child on 127.0.0.1.  ``.ci/run``
installs nginx; under CI a missing nginx fails the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client
from smdpp.http.tls import SGP22_TLS12_CIPHERS

from .conftest import REPO, RunningServer
from .flow import ADDRESS

EXAMPLE = REPO / "contrib" / "nginx-smdpp.conf"
EXAMPLE_CERTS = "/srv/smdpp/smdpp-data/certs/DPtls/"


def nginx_binary() -> str:
    """The nginx executable; fails under CI (``.ci/run`` installs it), skips elsewhere."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed, and .ci/run should have installed it")
        pytest.skip("nginx not installed (apt-get install nginx; .ci/run does it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replace_once(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace ``old`` exactly ``count`` times: the test must notice when the example changes shape."""
    assert text.count(old) == count, f"{EXAMPLE.name} no longer contains {old!r} {count} time(s)"
    return text.replace(old, new)


def render(example: str, *, port: int, certs_dir: Path, upstream_port: int) -> str:
    """The example with its listen port, DPtls paths and upstream port substituted (IPv4 loopback only)."""
    site = replace_once(example, "    listen 443 ssl;\n", f"    listen 127.0.0.1:{port} ssl;\n")
    site = replace_once(site, "    listen [::]:443 ssl;\n", "")
    site = replace_once(site, EXAMPLE_CERTS, f"{certs_dir / 'DPtls'}/", 2)
    return replace_once(site, "proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{upstream_port};")


def main_config(prefix: Path, site: Path) -> str:
    """A whole nginx.conf that keeps everything inside ``prefix`` and includes the rendered example."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the 0700 temp folder
    temp = "".join(f"    {kind}_temp_path {prefix / kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"daemon off;\n{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n    access_log {prefix / 'access.log'};\n{temp}    include {site};\n}}\n")


def logs(prefix: Path) -> str:
    """What nginx wrote to stderr and its error log."""
    return "".join(f.read_text() for f in (prefix / "stderr.log", prefix / "error.log") if f.exists())


@pytest.fixture
def nginx_in_front(server_factory, tmp_path: Path) -> Iterator[tuple[str, RunningServer]]:
    """(https URL of nginx, the smdpp behind it)."""
    binary = nginx_binary()
    server: RunningServer = server_factory()  # plain HTTP on its embedded defaults
    upstream_port = int(server.url.rsplit(":", 1)[1])
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    site = prefix / "smdpp-site.conf"
    site.write_text(render(EXAMPLE.read_text(), port=port, certs_dir=server.data_dir / "certs",
                           upstream_port=upstream_port))
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    with open(prefix / "stderr.log", "wb") as stderr:
        process = subprocess.Popen([binary, "-e", str(prefix / "error.log"), "-p", str(prefix),
                                    "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail("nginx exited:\n" + logs(prefix))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx does not listen:\n" + logs(prefix))
                time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown of master and workers
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_download_through_nginx(nginx_in_front: tuple[str, RunningServer]) -> None:
    url, server = nginx_in_front
    certs = server.data_dir / "certs"
    ca_file = str(certs / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.pem")
    dptls = (certs / "DPtls" / "CERT_S_SM_DP_TLS_NIST.der").read_bytes()

    host, port = url.split("//", 1)[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=ADDRESS) as tls:
            assert tls.getpeercert(binary_form=True) == dptls
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=ADDRESS) as tls:
            assert tls.version() == "TLSv1.2" and tls.cipher()[0] in SGP22_TLS12_CIPHERS

    card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
    with Es9Client(url, ca_file=ca_file, tls_server_name=ADDRESS) as client:
        result = download(client, card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    assert result.upp == (server.data_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()
    assert result.notification_sent, result.notification_error
    server.wait_for_log("ProfileInstallationResult success")


def test_example_renders_only_the_documented_substitutions() -> None:
    example = EXAMPLE.read_text()
    site = render(example, port=4443, certs_dir=Path("/x/certs"), upstream_port=9000)
    assert "listen 127.0.0.1:4443 ssl;" in site and "[::]" not in site
    assert "ssl_certificate     /x/certs/DPtls/CERT_S_SM_DP_TLS_NIST.pem;" in site
    assert "ssl_certificate_key /x/certs/DPtls/SK_S_SM_DP_TLS_NIST.pem;" in site
    assert "proxy_pass http://127.0.0.1:9000;" in site
    changed = {line for line in site.splitlines()} ^ {line for line in example.splitlines()}
    assert len(changed) == 9  # 5 lines of the example out, 4 rendered lines in (one listen removed)
