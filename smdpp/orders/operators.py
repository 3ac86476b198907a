"""Operators: the ES2+ function requesters this SM-DP+ trusts, each bound to its TLS client certificate.

SGP.22 2.6.6 / 6.5 puts ES2+ under mutual TLS: an operator is known by the
certificate it presents, and its ``functionRequesterIdentifier`` is the name
registered with that certificate.  The registry is the folder
``smdpp-data/operators/``, one ``NAME.json`` per operator::

    {"name": "NAME", "certificateSha256": "<hex of SHA-256 over the DER>",
     "notifyUrl": "https://operator.example/es2plus", "notifyCa": "/path/ca.pem"}

``smdpp-pki operator`` writes these files.  The folder is looked at again on
every lookup (a listing and a stat per file, ES2+ calls are few), so a new or
changed operator takes effect without a restart.  A damaged file is skipped
with a warning naming it.

HandleDownloadProgressInfo goes to ``notifyUrl`` + ``/gsma/rsp2/es2plus/
handleDownloadProgressInfo``; ``http://`` is accepted only for a loopback
host (labs), everything else must be ``https://``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

OPERATORS_DIR = "operators"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_FILE = 16 * 1024


@dataclass(frozen=True)
class Operator:
    """One registered operator."""

    name: str  # its functionRequesterIdentifier
    certificate_sha256: bytes
    notify_url: str | None = None
    notify_ca: Path | None = None  # CA file verifying the operator's HTTPS endpoint

    def to_json(self) -> bytes:
        return json.dumps({"name": self.name, "certificateSha256": self.certificate_sha256.hex(),
                           "notifyUrl": self.notify_url,
                           "notifyCa": str(self.notify_ca) if self.notify_ca else None},
                          indent=2).encode() + b"\n"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP literals."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_notify_url(url: str) -> str:
    """The notify URL if usable: https://, or http:// to a loopback host; else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"notify URL {url[:100]!r} must be https://HOST[:PORT][/PATH]")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"notify URL {url[:100]!r}: http:// only for a loopback address "
                         "(labs); use https://")
    if parts.query or parts.fragment:
        raise ValueError(f"notify URL {url[:100]!r} must not have a query or fragment")
    return url.rstrip("/")


def certificate_fingerprint(der: bytes) -> bytes:
    """SHA-256 over a certificate's DER: what binds it to an operator."""
    return hashlib.sha256(der).digest()


def _parse(path: Path) -> Operator:
    if path.stat().st_size > MAX_FILE:
        raise ValueError("file too large")
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name) or name != path.stem:
        raise ValueError("name must match the file name (letters, digits, '.', '_', '-')")
    fingerprint = bytes.fromhex(str(data.get("certificateSha256", "")))
    if len(fingerprint) != 32:
        raise ValueError("certificateSha256 must be 64 hex digits")
    url = data.get("notifyUrl")
    ca = data.get("notifyCa")
    return Operator(name, fingerprint, check_notify_url(url) if url else None,
                    Path(ca) if isinstance(ca, str) and ca else None)


class OperatorRegistry:
    """The operators of one folder, re-read when its files change."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._by_fingerprint: dict[bytes, Operator] = {}
        self._by_name: dict[str, Operator] = {}

    def _refresh(self) -> None:
        try:
            files = sorted(p for p in self.folder.glob("*.json") if p.is_file())
            signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        except OSError:
            files, signature = [], ()
        if signature == self._signature:
            return
        by_fingerprint: dict[bytes, Operator] = {}
        by_name: dict[str, Operator] = {}
        for path in files:
            try:
                operator = _parse(path)
            except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
                log.warning("operators: skipping %s: %s", path, str(exc)[:200])
                continue
            if operator.certificate_sha256 in by_fingerprint:
                log.warning("operators: skipping %s: its certificate is already %s's", path,
                            by_fingerprint[operator.certificate_sha256].name)
                continue
            by_fingerprint[operator.certificate_sha256] = operator
            by_name[operator.name] = operator
        self._signature = signature
        self._by_fingerprint, self._by_name = by_fingerprint, by_name
        log.info("operators: %d registered (%s)", len(by_name), ", ".join(sorted(by_name)) or "-")

    def by_certificate(self, der: bytes) -> Operator | None:
        """The operator whose client certificate this is, or None."""
        self._refresh()
        return self._by_fingerprint.get(certificate_fingerprint(der))

    def by_name(self, name: str) -> Operator | None:
        """The operator with this functionRequesterIdentifier, or None."""
        self._refresh()
        return self._by_name.get(name)

    def register(self, operator: Operator) -> Path:
        """Write (or replace) the operator's file; returns its path."""
        from smdpp.pki.files import make_dir, write_file
        make_dir(self.folder)
        path = self.folder / f"{operator.name}.json"
        write_file(path, operator.to_json(), 0o600)
        return path
