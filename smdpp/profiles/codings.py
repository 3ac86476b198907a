"""Contents of the USIM files and PIN objects a subscription changes.

* EF.SPN (3GPP TS 31.102 4.2.12): display condition and the service provider
  name in the SMS default alphabet (3GPP TS 23.038 6.2.1);
* EF.ACC (31.102 4.2.15): the access control class, from the last IMSI digit
  (3GPP TS 22.011 4.2);
* EF.AD (31.102 4.2.18): the length of the MNC in the IMSI (byte 4);
* PIN, PUK and ADM values as ETSI TS 102 221 9.5.1 stores them (SAIP 8.5
  ``pinValue`` / ``pukValue``: 8 bytes).

Each decoder is the inverse of its encoder, for ``smdpp-profile show``.
"""
from __future__ import annotations

SPN_NAME_SIZE = 16  # EF.SPN: display condition byte + 16 bytes of name
# Code points where the SMS default alphabet has the ASCII character.
_GSM_SAME_AS_ASCII = frozenset(
    [*range(0x20, 0x24), *range(0x25, 0x40), *range(0x41, 0x5B), *range(0x61, 0x7B)]
)
# ASCII characters at other code points of the SMS default alphabet.
_GSM_MOVED = {ord("@"): 0x00, ord("$"): 0x02, ord("_"): 0x11}
_GSM_MOVED_BACK = {gsm: chr(char) for char, gsm in _GSM_MOVED.items()}
_AD_MNC_LENGTH_BYTE = 3  # EF.AD byte 4 (index 3), bits b1-b4
_PIN_SIZE = 8
# Access classes 0-9 are ordinary subscribers (TS 22.011 4.2); in EF.ACC they
# are bits b1-b8 of byte 2 and b1-b2 of byte 1.  Classes 11-15 (b4-b8 of
# byte 1) are special and stay as the template has them.
_ORDINARY_CLASSES_MASK = 0x03FF


def encode_ef_spn(name: str, display_condition: int = 0) -> bytes:
    """EF.SPN: the display condition byte, then the name 'FF' padded to 16 bytes.

    Only the ASCII characters of the SMS default alphabet's basic table
    are accepted (one byte each, no escape sequences).
    """
    raw = name.encode("utf-8")
    if not raw or len(raw) > SPN_NAME_SIZE or not all(
            c in _GSM_SAME_AS_ASCII or c in _GSM_MOVED for c in raw):
        raise ValueError("SPN must be 1 to 16 characters: letters, digits, space, "
                         "and punctuation other than ` [ ] { } \\ ^ ~ |")
    coded = bytes(_GSM_MOVED.get(c, c) for c in raw)
    return bytes([display_condition & 0xFF]) + coded.ljust(SPN_NAME_SIZE, b"\xff")


def decode_ef_spn(data: bytes) -> str:
    """The name in EF.SPN; characters outside the basic table's ASCII ones show as '?'."""
    name = data[1:1 + SPN_NAME_SIZE].rstrip(b"\xff")
    return "".join(chr(c) if c in _GSM_SAME_AS_ASCII else _GSM_MOVED_BACK.get(c, "?")
                   for c in name)


def encode_ef_acc(imsi: str, template: bytes = b"\x00\x00") -> bytes:
    """EF.ACC with the access class of the last IMSI digit (TS 22.011 4.2).

    The special classes 11-15 are taken over from ``template`` unchanged.
    """
    if len(template) != 2:
        raise ValueError("EF.ACC must be 2 bytes")
    special = int.from_bytes(template, "big") & ~_ORDINARY_CLASSES_MASK
    return (special | (1 << int(imsi[-1]))).to_bytes(2, "big")


def encode_ef_ad(mnc_length: int, template: bytes = b"\x00\x00\x00") -> bytes:
    """EF.AD with byte 4 saying the MNC has ``mnc_length`` (2 or 3) digits.

    Bytes 1-3 (operation mode, additional information) and the RFU bits of
    byte 4 come from ``template`` (at least 3 bytes).
    """
    if mnc_length not in (2, 3):
        raise ValueError("MNC length must be 2 or 3")
    if len(template) < _AD_MNC_LENGTH_BYTE:
        raise ValueError("EF.AD must be at least 3 bytes")
    head = bytearray(template[:_AD_MNC_LENGTH_BYTE])
    rfu = template[_AD_MNC_LENGTH_BYTE] & 0xF0 if len(template) > _AD_MNC_LENGTH_BYTE else 0
    return bytes(head) + bytes([rfu | mnc_length]) + template[_AD_MNC_LENGTH_BYTE + 1:]


def decode_ef_ad_mnc_length(data: bytes) -> int | None:
    """The MNC length of EF.AD, or None when the file is too short or says neither 2 nor 3."""
    if len(data) <= _AD_MNC_LENGTH_BYTE:
        return None
    value = data[_AD_MNC_LENGTH_BYTE] & 0x0F
    return value if value in (2, 3) else None


def pin_value(pin: str, what: str) -> bytes:
    """A PIN as TS 102 221 9.5.1 stores it: 4-8 ASCII digits, 'FF' padded to 8 bytes."""
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= _PIN_SIZE):
        raise ValueError(f"{what} must be 4 to 8 decimal digits")
    return pin.encode("ascii").ljust(_PIN_SIZE, b"\xff")


def puk_value(puk: str, what: str) -> bytes:
    """A PUK (unblock PIN): exactly 8 ASCII digits (TS 102 221 9.5.1)."""
    if not (puk.isascii() and puk.isdigit() and len(puk) == _PIN_SIZE):
        raise ValueError(f"{what} must be 8 decimal digits")
    return puk.encode("ascii")


def adm_value(adm: str, what: str) -> bytes:
    """An ADM key: 4-8 digits like a PIN, or 16 hex digits for an 8-byte binary key.

    Operators give ADM keys either way; 16 characters that are all digits
    could be either, so 16 digits are taken as hex (the longer form).
    """
    if len(adm) == 2 * _PIN_SIZE:
        try:
            return bytes.fromhex(adm)
        except ValueError:
            raise ValueError(f"{what} of 16 characters must be hex digits") from None
    if not (adm.isascii() and adm.isdigit() and 4 <= len(adm) <= _PIN_SIZE):
        raise ValueError(f"{what} must be 4 to 8 decimal digits or 16 hex digits")
    return pin_value(adm, what)
