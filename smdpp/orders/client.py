"""An ES2+ client (the operator's side of SGP.22 5.3 / 6.5), for ``smdpp-order`` and the tests.

It reuses the JSON-over-HTTP transport of our LPA (:class:`~smdpp.euicc.es9.Es9Client`:
keep-alive, TLS with a server name of our choosing) under the ES2+ path, and
adds the operator's part: a TLS client certificate and the request header
(functionRequesterIdentifier, a fresh functionCallIdentifier per call).
"""
from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Any

from smdpp.euicc.es9 import Es9Client, Es9Reply

ES2_PATH = "/gsma/rsp2/es2plus/"


class Es2pFailed(Exception):
    """The SM-DP+ answered the ES2+ call with a failed functionExecutionStatus (or an HTTP error)."""

    def __init__(self, reply: Es9Reply) -> None:
        super().__init__(reply.describe())
        self.reply = reply
        self.subject_code = reply.status_code_data.get("subjectCode")
        self.reason_code = reply.status_code_data.get("reasonCode")


class Es2pTransport(Es9Client):
    """JSON over HTTP(S) to ``<base URL>/gsma/rsp2/es2plus/<function>`` (either direction of ES2+)."""

    def path(self, function: str) -> str:
        return f"{self._prefix}{ES2_PATH}{function}"


def client_context(ca_file: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """A verifying TLS client context that presents ``cert``/``key`` when given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class Es2pClient:
    """Calls ES2+ functions of one SM-DP+ as one operator."""

    def __init__(self, url: str, requester: str, *, cert: Path | None = None,
                 key: Path | None = None, ca_file: Path | None = None,
                 server_name: str | None = None, timeout: float = 30) -> None:
        context = client_context(ca_file, cert, key) if url.startswith("https:") else None
        self.requester = requester
        self._http = Es2pTransport(url, timeout=timeout, ssl_context=context,
                                tls_server_name=server_name)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Es2pClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def header(self, call_id: str | None = None) -> dict[str, str]:
        """The request header of SGP.22 6.5.1.3."""
        return {"functionRequesterIdentifier": self.requester,
                "functionCallIdentifier": call_id or uuid.uuid4().hex}

    def raw(self, function: str, body: dict[str, Any]) -> Es9Reply:
        """POST ``body`` as it is (tests of refusals)."""
        return self._http.call(function, body)

    def call(self, function: str, **fields: Any) -> dict[str, Any]:
        """Call ``function`` with ``fields`` (None values left out); the answer's JSON, or Es2pFailed."""
        body = {"header": self.header(), **{k: v for k, v in fields.items() if v is not None}}
        reply = self.raw(function, body)
        if reply.http_status != 200 or reply.function_status != "Executed-Success":
            raise Es2pFailed(reply)
        return reply.json

    def download_order(self, *, iccid: str | None = None, eid: str | None = None,
                       profile_type: str | None = None) -> str:
        """ES2+.DownloadOrder (SGP.22 5.3.1); the ICCID reserved."""
        return self.call("downloadOrder", iccid=iccid, eid=eid, profileType=profile_type)["iccid"]

    def confirm_order(self, iccid: str, *, release: bool, eid: str | None = None,
                      matching_id: str | None = None,
                      confirmation_code: str | None = None) -> dict[str, Any]:
        """ES2+.ConfirmOrder (SGP.22 5.3.2); the answer (matchingId, smdpAddress, eid)."""
        return self.call("confirmOrder", iccid=iccid, eid=eid, matchingId=matching_id,
                         confirmationCode=confirmation_code, releaseFlag=release)

    def cancel_order(self, iccid: str, final_status: str = "Available", *,
                     eid: str | None = None, matching_id: str | None = None) -> None:
        """ES2+.CancelOrder (SGP.22 5.3.3)."""
        self.call("cancelOrder", iccid=iccid, eid=eid, matchingId=matching_id,
                  finalProfileStatusIndicator=final_status)

    def release_profile(self, iccid: str) -> None:
        """ES2+.ReleaseProfile (SGP.22 5.3.4)."""
        self.call("releaseProfile", iccid=iccid)
