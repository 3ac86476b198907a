"""The ES9+ transport of an LPA: HTTP(S) POST of JSON to the SM-DP+ (SGP.22 6.5).

Every ES9+ function is ``POST {base}/gsma/rsp2/es9plus/<function>`` with a
JSON body and the headers of SGP.22 6.5.1 (``Content-Type:
application/json``, ``X-Admin-Protocol: gsma/rsp/v2.2.0``, an LPA
``User-Agent``).  Responses are JSON whose ``header.functionExecutionStatus``
says ``Executed-Success`` or ``Failed`` with ``statusCodeData``
(SGP.22 6.5.1.4); handleNotification is answered with HTTP 204 and no body.
Binary values travel as standard base64 (SGP.22 6.5.2).

:class:`Es9Client` keeps one connection alive across calls and reconnects
once if the server dropped an idle connection.  It never interprets the
function status: :meth:`Es9Client.call` returns what came back, so tests can
send forged or out-of-order messages and look at the raw answer.
"""
from __future__ import annotations

import base64
import binascii
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

__all__ = ["Es9Client", "Es9Reply", "Es9TransportError", "ES9_PATH", "b64e", "b64d"]

#: Path prefix of the ES9+ functions (SGP.22 6.5.2).
ES9_PATH = "/gsma/rsp2/es9plus/"
ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
USER_AGENT = "gsma-rsp-lpad"


def b64e(data: bytes) -> str:
    """Standard base64 (RFC 4648 section 4, with padding) as SGP.22 6.5.2 uses for binary data."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    """Decode standard base64 strictly; ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError("base64 value is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


class Es9TransportError(Exception):
    """The request did not get an HTTP response (connection, TLS or timeout failure)."""


@dataclass(frozen=True)
class Es9Reply:
    """One HTTP answer of the SM-DP+ to an ES9+ request."""

    http_status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    json: Any  # the parsed JSON body, or None if the body is empty or not JSON

    @property
    def function_status(self) -> str | None:
        """``header.functionExecutionStatus.status``, if present."""
        try:
            return self.json["header"]["functionExecutionStatus"]["status"]
        except (KeyError, TypeError):
            return None

    @property
    def status_code_data(self) -> dict[str, Any]:
        """``header.functionExecutionStatus.statusCodeData`` ({} if absent)."""
        try:
            data = self.json["header"]["functionExecutionStatus"]["statusCodeData"]
        except (KeyError, TypeError):
            return {}
        return data if isinstance(data, dict) else {}

    def describe(self) -> str:
        """A short human-readable summary, for error messages."""
        if self.http_status == 204:
            return "HTTP 204"
        status = self.function_status
        if status is None:
            snippet = self.body[:120].decode("utf-8", "replace")
            return f"HTTP {self.http_status} without an ES9+ status ({snippet!r})"
        codes = self.status_code_data
        if codes:
            return (f"HTTP {self.http_status} {status} subjectCode {codes.get('subjectCode')} "
                    f"reasonCode {codes.get('reasonCode')}: {codes.get('message', '')}")
        return f"HTTP {self.http_status} {status}"


class Es9Client:
    """An ES9+ client over :mod:`http.client` with one kept-alive connection.

    ``base_url`` is ``http://host[:port][/prefix]`` or ``https://...``; for
    HTTPS the server certificate is checked against ``ca_file`` (PEM) or the
    system trust store when it is None, and must name ``tls_server_name``
    (default: the URL's host), which is also sent as SNI.  That lets a test
    reach an SM-DP+ on 127.0.0.1 whose certificate names its FQDN.
    ``ssl_context`` replaces the default context (and ``ca_file``), e.g. for
    a TLS 1.2 client offering only brainpoolP256r1.
    """

    def __init__(self, base_url: str, *, timeout: float = 30, ca_file: str | None = None,
                 tls_server_name: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SM-DP+ URL {base_url!r} must be http://host[:port] or https://host[:port]")
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._server_name = tls_server_name or parts.hostname
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            self._ssl = ssl_context or ssl.create_default_context(cafile=ca_file)
        self._conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> "Es9Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            assert self._ssl is not None
            return _HttpsConnection(self._host, self._port, timeout=self._timeout,
                                    tls_context=self._ssl, server_name=self._server_name)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _where(self) -> str:
        """host:port as connected to (the scheme's default port named too)."""
        return f"{self._host}:{self._port or (443 if self._https else 80)}"

    def _explain(self, exc: BaseException) -> str:
        """What a transport failure means for the user, with the way out where there is one."""
        where = self._where()
        if isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc):
            return (f"{where} does not answer TLS: it looks like plain HTTP (smdpp serves plain "
                    f"HTTP unless started with --tls); use --smdp http://{where} ({exc!r})")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"the TLS certificate of {where} is not trusted for {self._server_name}: "
                    f"{exc.verify_message}; give the CI certificate with --ca-file ({exc!r})")
        if isinstance(exc, ConnectionRefusedError):
            return (f"{where} refused the connection: nothing listens on port "
                    f"{where.rsplit(':', 1)[1]} there (is the SM-DP+ running, on that port?)")
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return f"no answer from {where} within {self._timeout:g} s"
        return repr(exc)

    def path(self, function: str) -> str:
        """The request path of an ES9+ function."""
        return f"{self._prefix}{ES9_PATH}{function}"

    def call(self, function: str, body: Mapping[str, Any]) -> Es9Reply:
        """POST ``body`` as JSON to the ES9+ ``function``; return the answer, whatever its status.

        Raises :class:`Es9TransportError` only when no HTTP response arrives.
        """
        return self.post(function, json.dumps(body).encode("utf-8"))

    def post(self, function: str, payload: bytes, *,
             headers: Mapping[str, str | None] | None = None) -> Es9Reply:
        """POST raw ``payload`` to ``function``; ``headers`` override the SGP.22 ones (None drops one).

        For tests that send malformed JSON or wrong headers.
        """
        send = {"Content-Type": "application/json", "X-Admin-Protocol": ADMIN_PROTOCOL,
                "User-Agent": USER_AGENT}
        for name, value in (headers or {}).items():
            send.pop(name, None)
            if value is not None:
                send[name] = value
        path = self.path(function)
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request("POST", path, body=payload, headers=send)
                response = self._conn.getresponse()
                data = response.read()
            except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine,
                    http.client.CannotSendRequest) as exc:
                # A kept-alive connection the server has closed meanwhile: retry once on a new one.
                self.close()
                if reused and attempt == 1:
                    continue
                raise Es9TransportError(f"POST {path} to {self._where()}: {self._explain(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise Es9TransportError(f"POST {path} to {self._where()}: {self._explain(exc)}") from None
            if response.will_close:
                self.close()
            return Es9Reply(http_status=response.status,
                            headers={k.lower(): v for k, v in response.getheaders()},
                            body=data, json=_parse_json(data))
        raise AssertionError("unreachable")  # the loop returns or raises


class _HttpsConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` that verifies the certificate for ``server_name`` (and sends it as SNI)."""

    def __init__(self, host: str, port: int | None, *, timeout: float, tls_context: ssl.SSLContext,
                 server_name: str) -> None:
        super().__init__(host, port, timeout=timeout, context=tls_context)
        self._tls_context = tls_context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the TCP connection, then TLS on top of it
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


def _parse_json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
