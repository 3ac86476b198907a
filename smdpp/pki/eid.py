"""The EID (eUICC identifier) and its check digits (SGP.29 / SGP.02 2.2.2).

An EID is 32 decimal digits.  Digits 31-32 are check digits computed like
ISO/IEC 7064 MOD 97-10: the whole 32-digit number modulo 97 equals 1.  The
first digits are the EIN (EUM Identification Number, SGP.29; the 8-digit IIN
of SGP.02 for EIDs starting with 89), which the EUM certificate restricts
(SGP.22 4.5.2.1.0.2/0.3).
"""
from __future__ import annotations

EID_LENGTH = 32


def eid_is_valid(eid: str) -> bool:
    """True if ``eid`` is 32 ASCII digits whose check digits are correct."""
    return (
        isinstance(eid, str)
        and len(eid) == EID_LENGTH
        and eid.isascii()
        and eid.isdigit()
        and int(eid) % 97 == 1
    )


def eid_check_digits(body: str) -> str:
    """The two check digits for the first 30 digits ``body`` of an EID.

    ISO/IEC 7064 MOD 97-10: append '00', take the remainder modulo 97 and
    subtract it from 98, so that the complete number is 1 modulo 97.
    """
    if len(body) != EID_LENGTH - 2 or not (body.isascii() and body.isdigit()):
        raise ValueError("EID body must be 30 digits")
    return f"{98 - int(body + '00') % 97:02d}"


def make_eid(prefix: str, serial: int) -> str:
    """An EID starting with ``prefix`` (e.g. an EIN), ``serial`` right-aligned, valid check digits."""
    if not (prefix.isascii() and prefix.isdigit()) or len(prefix) > EID_LENGTH - 2:
        raise ValueError("EID prefix must be at most 30 digits")
    room = EID_LENGTH - 2 - len(prefix)
    if serial < 0 or serial >= 10**room:
        raise ValueError(f"serial does not fit into {room} digits after prefix {prefix}")
    body = prefix + str(serial).zfill(room)
    return body + eid_check_digits(body)
