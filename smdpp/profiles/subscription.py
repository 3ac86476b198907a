"""One subscription to put into a profile template: the values a user gives.

Every field is optional except where a caller says otherwise (the CLI and
the CSV batch require the ICCID); a field left as None keeps the template's
value.  :meth:`Subscription.from_text` takes the values as typed on a command
line or in a CSV cell, checks each and names the field in its error, so that
``smdpp-profile`` and the ES2+ order code report the same messages.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Mapping

from smdpp.profiles.codings import adm_value, encode_ef_spn, pin_value, puk_value
from smdpp.profiles.identifiers import luhn_check_digit, luhn_valid, validate_imsi
from smdpp.profiles.milenage import KEY_SIZE, OP_SIZE

__all__ = ["ALGORITHMS", "FieldError", "Subscription", "FIELD_NAMES"]

#: ``--algorithm`` names and their SAIP AlgoParameter.algorithmID (SAIP 8.4).
ALGORITHMS = {"milenage": 1, "tuak": 2, "xor": 3}
# E.118 ICCIDs of eSIM profiles: 19 digits, or 20 (with the Luhn digit).
_ICCID_DIGITS = (19, 20)
_TUAK_KEY_SIZES = (16, 32)  # TS 35.231: K of 128 or 256 bits
_TUAK_TOPC_SIZE = 32  # TS 35.231: TOP / TOPc of 256 bits
_MAX_PROFILE_NAME = 100  # SAIP ProfileHeader.profileType SIZE(1..100)
# A matching ID becomes a file name (lab mode): letters, digits, '-', '_', '.'.
_SAFE_MATCHING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class FieldError(ValueError):
    """A value that cannot be used; ``field`` names it (a CLI option / CSV column)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class Subscription:
    """Checked values for :func:`smdpp.profiles.personalize.personalize`.

    ``ki``, ``opc`` and ``op`` are bytes; the PINs the digits as typed;
    ``mnc_length`` (2 or 3) is the MNC length of ``imsi`` (default: the
    template's EF.AD).  ``matching_id`` only names the output file.
    """

    iccid: str | None = None
    imsi: str | None = None
    ki: bytes | None = None
    opc: bytes | None = None
    op: bytes | None = None
    algorithm: str | None = None
    pin1: str | None = None
    puk1: str | None = None
    pin2: str | None = None
    puk2: str | None = None
    adm1: str | None = None
    spn: str | None = None
    profile_name: str | None = None
    mnc_length: int | None = None
    matching_id: str | None = None

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.iccid is not None:
            if not (self.iccid.isascii() and self.iccid.isdigit()
                    and len(self.iccid) in _ICCID_DIGITS):
                raise FieldError("iccid", "must be 19 or 20 decimal digits")
            if not luhn_valid(self.iccid):
                raise FieldError("iccid", "the last digit is not the Luhn check digit "
                                 f"(ITU-T E.118); it would be {luhn_check_digit(self.iccid[:-1])}")
        if self.imsi is not None:
            try:
                validate_imsi(self.imsi)
            except ValueError as exc:
                raise FieldError("imsi", str(exc).replace("IMSI ", "")) from None
        if self.mnc_length not in (None, 2, 3):
            raise FieldError("mnc_length", "must be 2 or 3")
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise FieldError("algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        self._check_keys()
        for name, check in (("pin1", pin_value), ("pin2", pin_value), ("puk1", puk_value),
                            ("puk2", puk_value), ("adm1", adm_value)):
            value = getattr(self, name)
            if value is not None:
                try:
                    check(value, name)
                except ValueError as exc:
                    raise FieldError(name, str(exc).removeprefix(f"{name} ")) from None
        if self.spn is not None:
            try:
                encode_ef_spn(self.spn)
            except ValueError as exc:
                raise FieldError("spn", str(exc).removeprefix("SPN ")) from None
        if self.profile_name is not None and not 1 <= len(self.profile_name) <= _MAX_PROFILE_NAME:
            raise FieldError("profile_name", f"must be 1 to {_MAX_PROFILE_NAME} characters")
        if self.matching_id is not None and not _SAFE_MATCHING_ID.fullmatch(self.matching_id):
            raise FieldError("matching_id", "must be 1 to 64 letters, digits, '-', '_' or '.'")

    def _check_keys(self) -> None:
        if self.opc is not None and self.op is not None:
            raise FieldError("op", "give either opc or op, not both")
        tuak = self.algorithm == "tuak"
        key_sizes = _TUAK_KEY_SIZES if tuak else (KEY_SIZE,)
        if self.ki is not None and len(self.ki) not in key_sizes:
            raise FieldError("ki", f"must be {' or '.join(str(s) for s in key_sizes)} bytes "
                             f"({' or '.join(str(2 * s) for s in key_sizes)} hex digits), "
                             f"got {len(self.ki)}")
        opc_size = _TUAK_TOPC_SIZE if tuak else OP_SIZE
        if self.opc is not None and len(self.opc) != opc_size:
            raise FieldError("opc", f"must be {opc_size} bytes ({2 * opc_size} hex digits), "
                             f"got {len(self.opc)}")
        if self.op is not None:
            if self.algorithm in ("tuak", "xor"):
                raise FieldError("op", f"OPc is computed from OP for MILENAGE only, not "
                                 f"{self.algorithm}; give the opc")
            if len(self.op) != OP_SIZE:
                raise FieldError("op", f"must be {OP_SIZE} bytes ({2 * OP_SIZE} hex digits), "
                                 f"got {len(self.op)}")
            if self.ki is None:
                raise FieldError("op", "computing the OPc needs the ki")

    @classmethod
    def from_text(cls, values: Mapping[str, str | None], *,
                  compute_luhn: bool = False) -> "Subscription":
        """A Subscription from text values keyed by field name; empty text means absent.

        Hex fields (ki, opc, op) may contain spaces or ':' between bytes.  With
        ``compute_luhn`` the iccid is given without its check digit (18 or 19
        digits) and the Luhn digit is appended.  Raises :class:`FieldError`.
        """
        unknown = set(values) - set(FIELD_NAMES)
        if unknown:
            name = sorted(unknown)[0]
            raise FieldError(name, f"unknown field (known: {', '.join(FIELD_NAMES)})")
        clean = {k: v.strip() for k, v in values.items() if v is not None and v.strip()}
        kwargs: dict[str, object] = dict(clean)
        for name in ("ki", "opc", "op"):
            if name in clean:
                kwargs[name] = _hex(name, clean[name])
        if "algorithm" in clean:
            kwargs["algorithm"] = clean["algorithm"].lower()
        if "mnc_length" in clean:
            if clean["mnc_length"] not in ("2", "3"):
                raise FieldError("mnc_length", "must be 2 or 3")
            kwargs["mnc_length"] = int(clean["mnc_length"])
        if compute_luhn and "iccid" in clean:
            body = clean["iccid"]
            if not (body.isascii() and body.isdigit() and len(body) + 1 in _ICCID_DIGITS):
                raise FieldError("iccid", "without its check digit must be 18 or 19 decimal digits")
            kwargs["iccid"] = body + luhn_check_digit(body)
        return cls(**kwargs)  # type: ignore[arg-type]


FIELD_NAMES = tuple(f.name for f in fields(Subscription))


def _hex(name: str, text: str) -> bytes:
    compact = text.replace(" ", "").replace(":", "")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise FieldError(name, "is not hex digits") from None
