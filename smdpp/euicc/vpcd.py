"""The virtual eUICC as a card in vsmartcard's virtual PC/SC reader (vpcd).

vpcd is a PC/SC reader driver (Debian package ``vsmartcard-vpcd``) that pcscd
loads; it listens on TCP (port 35963 unless its reader.conf says otherwise)
and a virtual card connects to it.  Each message is a 2-byte big-endian
length and a payload.  A 1-byte payload is a control code: 0 power off,
1 power on, 2 reset, 4 get ATR (answered with the ATR); any longer payload
is a command APDU, answered with the response APDU in the same framing.

:class:`VpcdProtocol` is the sans-I/O part (one payload in, an answer or
None out); :func:`serve_vpcd` connects to vpcd and serves until it closes.
"""
from __future__ import annotations

import logging
import socket
import time

from smdpp.euicc.apdu import ATR, ApduCard

__all__ = ["VpcdProtocol", "serve_vpcd", "DEFAULT_PORT", "frame"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 35963
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4


def frame(payload: bytes) -> bytes:
    """One vpcd message: 2-byte big-endian length, then the payload."""
    if len(payload) > 0xFFFF:
        raise ValueError("vpcd payload longer than 65535 bytes")
    return len(payload).to_bytes(2, "big") + payload


class VpcdProtocol:
    """What the card answers to each vpcd payload."""

    def __init__(self, card: ApduCard) -> None:
        self.card = card

    def handle(self, payload: bytes) -> bytes | None:
        """The answer payload, or None for the control codes vpcd expects no answer to."""
        if len(payload) == 1:
            code = payload[0]
            if code in (POWER_OFF, POWER_ON, RESET):
                self.card.reset()
                log.info("vpcd: %s", {0: "power off", 1: "power on", 2: "reset"}[code])
                return None
            if code == GET_ATR:
                return ATR
            log.info("vpcd: unknown control code %d", code)
            return None
        if not payload:
            return None
        return self.card.transmit(payload)


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_vpcd(card: ApduCard, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *,
               connect_timeout: float = 30.0) -> None:
    """Connect to vpcd (retrying while it is not listening yet) and serve until it hangs up.

    OSError if vpcd cannot be reached within ``connect_timeout`` seconds.
    """
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    sock.settimeout(None)
    log.info("connected to vpcd at %s:%d", host, port)
    protocol = VpcdProtocol(card)
    with sock:
        while True:
            header = _read_exact(sock, 2)
            if header is None:
                break
            payload = _read_exact(sock, int.from_bytes(header, "big"))
            if payload is None:
                break
            answer = protocol.handle(payload)
            if answer is not None:
                sock.sendall(frame(answer))
    log.info("vpcd closed the connection")
