"""The TLS ClientHello, read before OpenSSL answers it (RFC 8446 4.1.2, RFC 8422 5.1).

Which DPtls certificate to present (SGP.22 2.6.6: NIST P-256 or
brainpoolP256r1) depends on what the client can verify: its supported_groups
for TLS 1.2 (RFC 8422 5.1), its signature_algorithms for TLS 1.3 (RFC 8446
4.2.3, RFC 8734).  This module parses those parts of the raw ClientHello
bytes and picks; :mod:`smdpp.http.tls` does the OpenSSL and Twisted side.
Every byte here comes from the network: anything malformed is "no
ClientHello" (None), never an exception.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = ["CURVE_IDS", "ClientHello", "can_use", "choose_certificate", "describe",
           "parse_client_hello"]

#: Per certificate curve: (TLS NamedGroup of the curve for TLS 1.2, TLS 1.3 SignatureScheme).
CURVE_IDS: dict[str, tuple[int, int]] = {
    "secp256r1": (23, 0x0403),  # secp256r1, ecdsa_secp256r1_sha256
    "brainpoolP256r1": (26, 0x081A),  # brainpoolP256r1, ecdsa_brainpoolP256r1tls13_sha256
}
_TLS13 = 0x0304


@dataclass(frozen=True)
class ClientHello:
    """The parts of a TLS ClientHello (RFC 8446 4.1.2) that decide which DPtls to present."""

    legacy_version: int
    supported_versions: tuple[int, ...]  # extension 43; empty if absent
    supported_groups: tuple[int, ...] | None  # extension 10; None if absent
    signature_algorithms: tuple[int, ...] | None  # extension 13; None if absent

    @property
    def offers_tls13(self) -> bool:
        """True if the client offers TLS 1.3, which this server then negotiates."""
        return _TLS13 in self.supported_versions


def _u16_list(data: bytes, length_size: int) -> tuple[int, ...]:
    """A TLS vector of uint16 with a ``length_size``-byte length prefix; ValueError if malformed."""
    size = int.from_bytes(data[:length_size], "big")
    body = data[length_size:length_size + size]
    if len(data) < length_size or len(body) != size or size % 2:
        raise ValueError("bad uint16 vector")
    return tuple(int.from_bytes(body[i:i + 2], "big") for i in range(0, size, 2))


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of ``data`` (TLS records as received); None if incomplete or not one.

    The handshake message may span several records (RFC 8446 5.1).
    """
    handshake = bytearray()
    pos = 0
    try:
        while True:
            if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
                break
            if len(data) < pos + 5 or data[pos] != 22:  # 22: handshake record
                return None
            size = int.from_bytes(data[pos + 3:pos + 5], "big")
            fragment = data[pos + 5:pos + 5 + size]
            if len(fragment) != size:
                return None
            handshake += fragment
            pos += 5 + size
        if handshake[0] != 1:  # 1: client_hello
            return None
        body = bytes(handshake[4:4 + int.from_bytes(handshake[1:4], "big")])
        legacy_version = int.from_bytes(body[0:2], "big")
        at = 2 + 32  # legacy_version, random
        at += 1 + body[at]  # legacy_session_id
        at += 2 + int.from_bytes(body[at:at + 2], "big")  # cipher_suites
        at += 1 + body[at]  # legacy_compression_methods
        extensions: dict[int, bytes] = {}
        if at < len(body):
            end = at + 2 + int.from_bytes(body[at:at + 2], "big")
            if end > len(body):
                return None
            at += 2
            while at < end:
                ext_type = int.from_bytes(body[at:at + 2], "big")
                ext_size = int.from_bytes(body[at + 2:at + 4], "big")
                extensions[ext_type] = body[at + 4:at + 4 + ext_size]
                at += 4 + ext_size
            if at != end:
                return None
        elif at > len(body):
            return None
        versions = _u16_list(extensions[43], 1) if 43 in extensions else ()
        groups = _u16_list(extensions[10], 2) if 10 in extensions else None
        sigalgs = _u16_list(extensions[13], 2) if 13 in extensions else None
    except (IndexError, ValueError):
        return None
    return ClientHello(legacy_version, versions, groups, sigalgs)


def describe(hello: ClientHello) -> str:
    """What a client offered, for the log line of a failed handshake."""
    names = {**{v[0]: k for k, v in CURVE_IDS.items()}, 29: "x25519", 31: "brainpoolP256r1tls13"}
    groups = ("(none listed)" if hello.supported_groups is None
              else ",".join(names.get(g, str(g)) for g in hello.supported_groups))
    return f"TLS 1.3: {'yes' if hello.offers_tls13 else 'no'}, groups {groups}"


def can_use(curve: str, hello: ClientHello) -> bool:
    """True if a client sending ``hello`` can accept a DPtls certificate on ``curve``."""
    group, scheme = CURVE_IDS[curve]
    if hello.offers_tls13:
        return hello.signature_algorithms is not None and scheme in hello.signature_algorithms
    # TLS 1.2: without supported_groups the client accepts any curve (RFC 8422 5.1).
    return hello.supported_groups is None or group in hello.supported_groups


def choose_certificate(curves: Sequence[str], hello: ClientHello | None) -> int:
    """Index into ``curves`` of the certificate to present: the first the client can use, else 0."""
    if hello is not None:
        for index, curve in enumerate(curves):
            if can_use(curve, hello):
                return index
    return 0
