"""lpac's stdio drivers, served by the virtual eUICC (and, optionally, an HTTP bridge).

With ``LPAC_APDU=stdio`` lpac writes one JSON object per line on its stdout,
``{"type":"apdu","payload":{"func":F,"param":HEX or null}}``, and reads the
answer ``{"type":"apdu","payload":{"ecode":N,"data":HEX}}`` on its stdin.
F is ``connect``, ``disconnect``, ``logic_channel_open`` (param: the AID;
ecode: the channel, negative on failure), ``logic_channel_close`` (param: the
channel) or ``transmit`` (a command APDU; data: the response APDU).  With
``LPAC_HTTP=stdio`` its HTTP requests come the same way,
``{"type":"http","payload":{"url":U,"tx":HEX,"headers":["Name: value",...]}}``,
answered ``{"type":"http","payload":{"rcode":200,"rx":HEX}}``; an answer
without ``rx`` makes lpac see a transport failure.  Lines of other types
(``lpa``, ``progress``) are lpac's own output and pass through unchanged.

:class:`StdioBridge` answers one line (sans I/O apart from the HTTP it is
asked to carry); :func:`run_lpac` starts lpac with those drivers and serves
it until it exits.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
from typing import IO, Any, Sequence
from urllib.parse import urlsplit

from smdpp.euicc.apdu import ApduCard, cla_for_channel

__all__ = ["StdioBridge", "run_lpac", "MAX_LINE"]

log = logging.getLogger(__name__)

#: A protocol line longer than this is not answered (lpac's BPP is the largest, well below it).
MAX_LINE = 16 * 1024 * 1024


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a hex string")
    return bytes.fromhex(value)


class StdioBridge:
    """Answers lpac's ``apdu`` lines with the card and its ``http`` lines through ``http_base``."""

    def __init__(self, card: ApduCard, http_base: str | None = None, timeout: float = 60) -> None:
        self.card = card
        self.timeout = timeout
        self._http = None
        if http_base is not None:
            parts = urlsplit(http_base)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"--http-bridge {http_base!r} must be http(s)://host[:port][/prefix]")
            self._http = parts

    def handle_line(self, line: bytes) -> bytes | None:
        """The answer line (with newline) for a request line; None for a line to pass through."""
        if len(line) > MAX_LINE or not line.lstrip().startswith(b"{"):
            return None
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict) or message.get("type") not in ("apdu", "http"):
            return None
        payload = message.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        if message["type"] == "apdu":
            answer = self.apdu(payload)
        elif self._http is None:
            return None  # not ours: lpac was not given LPAC_HTTP=stdio by us
        else:
            answer = self.http(payload)
        return json.dumps({"type": message["type"], "payload": answer}).encode("ascii") + b"\n"

    # --- APDU ---------------------------------------------------------------------

    def apdu(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One ``apdu`` request: ``{"ecode": N}`` plus ``data`` for ``transmit``."""
        func = payload.get("func")
        try:
            if func == "connect":
                self.card.reset()
                return {"ecode": 0}
            if func == "disconnect":
                self.card.reset()
                return {"ecode": 0}
            if func == "logic_channel_open":
                return {"ecode": self._open(_hex(payload.get("param"), "AID"))}
            if func == "logic_channel_close":
                channel = _hex(payload.get("param"), "channel")
                if len(channel) != 1:
                    raise ValueError("channel is not one byte")
                self.card.transmit(bytes([0x00, 0x70, 0x80, channel[0]]))
                return {"ecode": 0}
            if func == "transmit":
                apdu = _hex(payload.get("param"), "APDU")
                return {"ecode": 0, "data": self.card.transmit(apdu).hex().upper()}
        except ValueError as exc:
            log.info("apdu %s refused: %s", str(func)[:32], exc)
            return {"ecode": -1}
        log.info("unknown apdu function %r", str(func)[:32])
        return {"ecode": -1}

    def _open(self, aid: bytes) -> int:
        """MANAGE CHANNEL open, then SELECT ``aid`` on the new channel; its number or -1."""
        if not 1 <= len(aid) <= 16:
            return -1
        opened = self.card.transmit(bytes.fromhex("0070000001"))
        if len(opened) != 3 or opened[1:] != b"\x90\x00":
            return -1
        channel = opened[0]
        cla = cla_for_channel(channel, proprietary=False)
        selected = self.card.transmit(bytes([cla, 0xA4, 0x04, 0x00, len(aid)]) + aid + b"\x00")
        if selected[-2:] != b"\x90\x00" and selected[-2] != 0x61:
            self.card.transmit(bytes([0x00, 0x70, 0x80, channel]))
            return -1
        return channel

    # --- HTTP ---------------------------------------------------------------------

    def http(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``tx`` to the bridge base with the path of ``url``; rcode and rx, or no rx on failure."""
        assert self._http is not None
        try:
            url = payload.get("url")
            if not isinstance(url, str):
                raise ValueError("url is not a string")
            body = _hex(payload.get("tx"), "tx")
            headers = {}
            for item in payload.get("headers") or []:
                if not isinstance(item, str) or ":" not in item:
                    raise ValueError("a header is not 'Name: value'")
                name, value = item.split(":", 1)
                headers[name.strip()] = value.strip()
        except ValueError as exc:
            log.info("http request refused: %s", exc)
            return {"rcode": 0}
        target = urlsplit(url)
        path = self._http.path.rstrip("/") + (target.path or "/")
        if target.query:
            path += "?" + target.query
        conn_class = http.client.HTTPSConnection if self._http.scheme == "https" else http.client.HTTPConnection
        conn = conn_class(self._http.hostname, self._http.port, timeout=self.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            log.warning("HTTP bridge: POST %s failed: %s", path[:200], exc)
            return {"rcode": 0}
        finally:
            conn.close()
        log.info("HTTP bridge: POST %s -> %d (%d bytes)", path[:200], response.status, len(data))
        return {"rcode": response.status, "rx": data.hex().upper()}


def run_lpac(command: Sequence[str], bridge: StdioBridge, out: IO[bytes], *,
             http_stdio: bool) -> int:
    """Run lpac with the stdio APDU driver (and HTTP driver if ``http_stdio``); its exit code.

    lpac's own lines are copied to ``out`` unchanged; its stderr is inherited.
    """
    env = dict(os.environ, LPAC_APDU="stdio")
    if http_stdio:
        env["LPAC_HTTP"] = "stdio"
    proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            reply = bridge.handle_line(line)
            if reply is None:
                out.write(line)
                out.flush()
                continue
            try:
                proc.stdin.write(reply)
                proc.stdin.flush()
            except BrokenPipeError:
                break  # lpac is gone; its exit code says why
    finally:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    return proc.wait()
