"""Activation codes (SGP.22 4.1) and their QR codes.

An activation code tells an LPA where to download a profile from::

    1$<SM-DP+ address>$<AC_Token (the matchingId)>[$<SM-DP+ OID>[$<CC required flag>]]

fields separated by ``$``; ``AC_Format`` is ``1``.  The Confirmation Code
Required Flag is ``1`` when the download needs a Confirmation Code, and the
SM-DP+ OID may then be left empty (``1$addr$id$$1``).  In a QR code the text
is prefixed with ``LPA:`` (SGP.22 4.1.3).  One code path for every place that
shows one: the server's start-up lines, ``smdpp-order`` and the status page.
QR images come from segno (pure Python, no dependencies, writes PNG itself).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["ActivationCode", "parse_activation_code", "qr_png", "qr_png_data_uri", "qr_terminal",
           "QR_PREFIX"]

QR_PREFIX = "LPA:"
# matchingIds we issue and accept in codes we write: what every LPA takes
# (letters, digits and '-', SGP.22 4.1 AC_Token); parsing stays lenient.
_TOKEN = re.compile(r"[A-Za-z0-9-]{1,255}")
# host[:port] with the characters of a DNS name or an IP literal
_ADDRESS = re.compile(r"[A-Za-z0-9.\-]{1,255}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_OID = re.compile(r"[0-2](\.[0-9]+)+")


@dataclass(frozen=True)
class ActivationCode:
    """The fields of an activation code (SGP.22 4.1)."""

    smdp_address: str
    matching_id: str
    smdp_oid: str | None = None
    confirmation_code_required: bool = False

    def text(self) -> str:
        """The activation code without the ``LPA:`` prefix, e.g. ``1$smdp.example$ABC``.

        Raises ValueError when a field cannot go into a code that LPAs read.
        """
        if not _ADDRESS.fullmatch(self.smdp_address):
            raise ValueError(f"SM-DP+ address {self.smdp_address[:80]!r} is not a host[:port]")
        if not _TOKEN.fullmatch(self.matching_id):
            raise ValueError(f"matchingId {self.matching_id[:80]!r} is not letters, digits and '-'")
        if self.smdp_oid is not None and not _OID.fullmatch(self.smdp_oid):
            raise ValueError(f"SM-DP+ OID {self.smdp_oid[:80]!r} is not a dotted OID")
        fields = ["1", self.smdp_address, self.matching_id]
        if self.smdp_oid or self.confirmation_code_required:
            fields.append(self.smdp_oid or "")
        if self.confirmation_code_required:
            fields.append("1")
        return "$".join(fields)

    def uri(self) -> str:
        """The text of the QR code: ``LPA:`` + the activation code (SGP.22 4.1.3)."""
        return QR_PREFIX + self.text()

    def __str__(self) -> str:
        return self.uri()


def parse_activation_code(text: str) -> ActivationCode:
    """Parse ``[LPA:]1$SM-DP+ address$AC_Token[$SM-DP+ OID[$CC required flag]]`` (SGP.22 4.1)."""
    body = text[4:] if text[:4].upper() == QR_PREFIX else text
    fields = body.split("$")
    if fields[0] != "1":
        raise ValueError(f"activation code format {fields[0][:20]!r} is not '1'")
    if len(fields) < 3 or len(fields) > 5:
        raise ValueError("activation code must be 1$address$matchingId[$oid[$ccFlag]]")
    address, matching_id = fields[1], fields[2]
    if not address:
        raise ValueError("activation code has no SM-DP+ address")
    oid = fields[3] if len(fields) > 3 and fields[3] else None
    cc_flag = fields[4] if len(fields) > 4 else ""
    if cc_flag not in ("", "1"):
        raise ValueError(f"confirmation code required flag {cc_flag[:20]!r} is not '1'")
    return ActivationCode(address, matching_id, oid, cc_flag == "1")


def _qr(code: ActivationCode):  # -> segno.QRCode (segno is imported only when a QR is wanted)
    import segno
    # byte mode (the address is lower case); level M keeps it readable from a screen photo
    return segno.make_qr(code.uri(), error="m", boost_error=False)


def qr_png(code: ActivationCode, path: Path, scale: int = 8) -> Path:
    """Write the QR code of ``code`` as a PNG file and return its path."""
    _qr(code).save(str(path), kind="png", scale=scale, border=4)
    return path


def qr_png_data_uri(code: ActivationCode, scale: int = 4) -> str:
    """The QR code of ``code`` as a ``data:image/png;base64,...`` URI, for an HTML page."""
    return _qr(code).png_data_uri(scale=scale, border=4)


def qr_terminal(code: ActivationCode, out: TextIO | None = None) -> None:
    """Draw the QR code of ``code`` on a terminal (segno's compact half-block output)."""
    _qr(code).terminal(out=out or sys.stdout, compact=True, border=2)
