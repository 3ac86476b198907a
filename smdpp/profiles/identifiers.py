"""Codings of the subscription identifiers a profile carries: ICCID and IMSI.

* ICCID (ITU-T E.118): up to 20 decimal digits, the last one a Luhn check
  digit.  It appears twice in a profile, in two BCD layouts:
  - the SAIP ProfileHeader ``iccid`` holds the digits in reading order, two
    per byte, high nibble first, padded with 'F' to 10 bytes;
  - EF.ICCID (ETSI TS 102 221 13.2) and the SGP.22 ``Iccid`` type hold them
    nibble-swapped: the first digit of each pair in the low nibble.
* IMSI (3GPP TS 23.003 2.2): up to 15 digits, stored in EF.IMSI as coded by
  3GPP TS 31.102 4.2.2.
"""
from __future__ import annotations

ICCID_BYTES = 10
_MAX_ICCID_DIGITS = 2 * ICCID_BYTES
# E.118 numbers are 19 or 20 digits in practice; short ones only in old cards.
_MIN_ICCID_DIGITS = 18
_MIN_IMSI_DIGITS = 6  # MCC + MNC + at least one MSIN digit
_MAX_IMSI_DIGITS = 15  # 3GPP TS 23.003 2.2
EF_IMSI_SIZE = 9  # 3GPP TS 31.102 4.2.2: length byte + 8 bytes


def _require_digits(value: str, what: str, low: int, high: int) -> None:
    if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
        raise ValueError(f"{what} must be {low} to {high} decimal digits")


def luhn_check_digit(body: str) -> str:
    """The Luhn check digit (ISO/IEC 7812-1 annex B) that completes ``body``."""
    _require_digits(body, "number", 1, 64)
    total = 0
    # Walking from the right, every second digit starting with the last one of
    # the body is doubled, because the check digit will take the last place.
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True if the last digit of ``number`` is the Luhn check digit of the rest."""
    if len(number) < 2 or not (number.isascii() and number.isdigit()):
        return False
    return luhn_check_digit(number[:-1]) == number[-1]


def validate_iccid(iccid: str) -> None:
    """Raise ValueError unless ``iccid`` is 18-20 digits with a right Luhn digit."""
    _require_digits(iccid, "ICCID", _MIN_ICCID_DIGITS, _MAX_ICCID_DIGITS)
    if not luhn_valid(iccid):
        raise ValueError("ICCID check digit is wrong (ITU-T E.118 uses the Luhn formula)")


def iccid_to_bcd(iccid: str) -> bytes:
    """The ProfileHeader ``iccid``: digits in reading order, 'F' padded to 10 bytes."""
    _require_digits(iccid, "ICCID", 1, _MAX_ICCID_DIGITS)
    return bytes.fromhex(iccid.ljust(_MAX_ICCID_DIGITS, "F"))


def iccid_from_bcd(data: bytes) -> str:
    """Digits of a ProfileHeader ``iccid``; only trailing 'F' padding is accepted."""
    if len(data) != ICCID_BYTES:
        raise ValueError(f"ICCID must be {ICCID_BYTES} bytes, got {len(data)}")
    nibbles = data.hex().upper()
    digits = nibbles.rstrip("F")
    if not digits or not digits.isdigit():
        raise ValueError("ICCID is not BCD digits with trailing 'F' padding")
    return digits


def iccid_to_ef(iccid: str) -> bytes:
    """EF.ICCID / SGP.22 ``Iccid``: the 'F'-padded digits with each pair swapped."""
    padded = iccid_to_bcd(iccid).hex()
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2)))


def encode_ef_imsi(imsi: str) -> bytes:
    """EF.IMSI content (3GPP TS 31.102 4.2.2), 'FF' padded to the file's 9 bytes.

    Byte 1 is the number of bytes that follow.  The first nibble after it is
    the identity type '001' (IMSI) with the parity bit b4 set for an odd
    number of digits; then come the digits, low nibble first, with an 'F'
    filler when the total number of nibbles is odd.
    """
    _require_digits(imsi, "IMSI", _MIN_IMSI_DIGITS, _MAX_IMSI_DIGITS)
    parity_and_type = "9" if len(imsi) % 2 else "1"
    nibbles = parity_and_type + imsi
    if len(nibbles) % 2:
        nibbles += "F"
    swapped = "".join(nibbles[i + 1] + nibbles[i] for i in range(0, len(nibbles), 2))
    body = bytes.fromhex(swapped)
    return (bytes([len(body)]) + body).ljust(EF_IMSI_SIZE, b"\xff")


def decode_ef_imsi(data: bytes) -> str:
    """The IMSI digits of EF.IMSI content (3GPP TS 31.102 4.2.2); ValueError if malformed.

    The inverse of :func:`encode_ef_imsi`: the length byte counts the bytes
    that carry the identity; the first nibble is the type-and-parity nibble.
    """
    if not data or not 1 <= data[0] <= EF_IMSI_SIZE - 1 or len(data) < 1 + data[0]:
        raise ValueError("EF.IMSI: bad length byte")
    body = data[1:1 + data[0]]
    nibbles = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in body)
    type_and_parity, digits = nibbles[0], nibbles[1:]
    if type_and_parity not in ("1", "9"):
        raise ValueError("EF.IMSI: the identity type is not IMSI")
    if type_and_parity == "1":  # even number of digits: the last nibble is the filler
        if not digits.endswith("F"):
            raise ValueError("EF.IMSI: missing 'F' filler")
        digits = digits[:-1]
    if not digits.isdigit() or not _MIN_IMSI_DIGITS <= len(digits) <= _MAX_IMSI_DIGITS:
        raise ValueError("EF.IMSI: the digits are not an IMSI")
    return digits


def validate_imsi(imsi: str) -> None:
    """Raise ValueError unless ``imsi`` is 6 to 15 decimal digits (3GPP TS 23.003 2.2)."""
    _require_digits(imsi, "IMSI", _MIN_IMSI_DIGITS, _MAX_IMSI_DIGITS)
