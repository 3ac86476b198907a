"""A small HTTPS server playing the operator's ES2+ endpoint, for HandleDownloadProgressInfo.

It has its own CA and a certificate for 127.0.0.1, asks the SM-DP+ for a
client certificate and records it with each request.  pyOpenSSL rather than
Python's ssl: the SM-DP+ presents its DPtls, whose extendedKeyUsage is
serverAuth only (SGP.22), which OpenSSL's default purpose check for a TLS
client would refuse; the test compares the certificate itself instead.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(timezone.utc) - timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class OperatorEndpoint:
    """Listens on 127.0.0.1; ``received`` holds (path, JSON body, client certificate DER)."""

    folder: Path
    port: int = 0
    received: list[tuple[str, dict, bytes | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("operator test CA", ca_key, None, ca_key, True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("127.0.0.1", key, ca.subject, ca_key, False)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.folder / "operator-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self._context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self._context.use_certificate(cert)
        self._context.use_privatekey(key)
        self._context.set_verify(SSL.VERIFY_PEER, lambda *args: True)
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "OperatorEndpoint":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(8)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except OSError:
                continue
            try:
                self._one(raw)
            except (OSError, SSL.Error, ValueError):
                pass
            finally:
                raw.close()

    def _one(self, raw: socket.socket) -> None:
        # blocking (pyOpenSSL turns a socket timeout into WantReadError), bounded by SO_RCVTIMEO
        raw.setblocking(True)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
        conn = SSL.Connection(self._context, raw)
        conn.set_accept_state()
        conn.do_handshake()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines
                       if line.lower().startswith("content-length:")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        peer = conn.get_peer_certificate()
        der = peer.to_cryptography().public_bytes(serialization.Encoding.DER) if peer else None
        self.received.append((lines[0].split(" ")[1], json.loads(body), der))
        conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        conn.shutdown()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, dict, bytes | None]]:
        """Wait until ``count`` notifications have arrived; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.received) >= count, self.received
        return self.received
