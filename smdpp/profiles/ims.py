"""IMS identities that derive from the IMSI (3GPP TS 23.003 13.2-13.4B, TS 31.103).

* the home network domain ``ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org``
  (TS 23.003 13.2), the MNC always with three digits (a two-digit MNC gets a
  leading zero);
* the IMPI ``<IMSI>@<domain>`` (13.3) and the temporary IMPU
  ``sip:<IMSI>@<domain>`` (13.4B) of an ISIM-less or test subscription.

The ISIM stores each identity as a TLV, tag '80' then the NAI / URI in UTF-8
(TS 31.103 4.2.2 EF.IMPI, 4.2.4 EF.IMPU records).  A template's identity
counts as derived from its IMSI as :func:`rederive` says; personalizing puts
the new IMSI and home network domain there, leaving any other domain
(``test.3gpp.com``) as it is.
"""
from __future__ import annotations

import re

from smdpp.asn1.tlv import TlvError, encode_tlv, read_tlv

_NAI_TAG = b"\x80"
_MCC_DIGITS = 3
_IDENTITY = re.compile(r"(?P<scheme>sip:|)(?P<user>[^@]+)@(?P<domain>[^@]+)")
_HOME_DOMAIN = re.compile(r"ims\.mnc[0-9]{3}\.mcc[0-9]{3}\.3gppnetwork\.org", re.IGNORECASE)


def home_network_domain(imsi: str, mnc_length: int) -> str:
    """``ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org`` of an IMSI (TS 23.003 13.2)."""
    if mnc_length not in (2, 3):
        raise ValueError("MNC length must be 2 or 3")
    mcc = imsi[:_MCC_DIGITS]
    mnc = imsi[_MCC_DIGITS:_MCC_DIGITS + mnc_length].rjust(3, "0")
    return f"ims.mnc{mnc}.mcc{mcc}.3gppnetwork.org"


def derived_impi(imsi: str, mnc_length: int) -> str:
    """The private user identity derived from the IMSI (TS 23.003 13.3)."""
    return f"{imsi}@{home_network_domain(imsi, mnc_length)}"


def derived_impu(imsi: str, mnc_length: int) -> str:
    """The temporary public user identity derived from the IMSI (TS 23.003 13.4B)."""
    return f"sip:{derived_impi(imsi, mnc_length)}"


def rederive(identity: str, old_imsi: str, old_mnc_length: int,
             new_imsi: str, new_mnc_length: int) -> str:
    """``identity`` with its IMSI-derived parts taken from the new IMSI.

    * the user part (before '@', after an optional ``sip:``) when it is an
      IMSI of the template's home network: 6-15 digits that start with the
      old IMSI's MCC and MNC (TS.48 profiles carry one that is not exactly
      their EF.IMSI, so equality would miss it);
    * a home network domain ``ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org``.

    Anything else (``sip:+11234567890@test.3gpp.com``, ``user@...``) stays.
    """
    match = _IDENTITY.fullmatch(identity)
    if match is None:
        return identity
    scheme, user, domain = match.group("scheme", "user", "domain")
    plmn = old_imsi[:_MCC_DIGITS + old_mnc_length]
    if new_imsi != old_imsi and user.isdigit() and 6 <= len(user) <= 15 \
            and user.startswith(plmn):
        user = new_imsi
    if _HOME_DOMAIN.fullmatch(domain):
        domain = home_network_domain(new_imsi, new_mnc_length)
    return f"{scheme}{user}@{domain}"


def decode_identity(data: bytes) -> tuple[str, int] | None:
    """The NAI / URI of an EF.IMPI content or EF.IMPU record, and the TLV's length.

    None when ``data`` does not start with a well-formed '80' TLV of UTF-8
    text (an empty 'FF' record, for example).
    """
    try:
        tlv = read_tlv(data)
        if tlv.tag != _NAI_TAG:
            return None
        return tlv.value.decode("utf-8"), tlv.end
    except (TlvError, UnicodeDecodeError):
        return None


def encode_identity(identity: str) -> bytes:
    """The '80' TLV of an identity (TS 31.103 4.2.2 / 4.2.4)."""
    return encode_tlv(_NAI_TAG, identity.encode("utf-8"))
