"""A small generic test profile, built as a SAIP Unprotected Profile Package.

The package follows the shape of the GSMA TS.48 generic eUICC test profiles
but keeps to what a USIM needs: ProfileHeader, the MF template, PUK and PIN
codes, the USIM template with its PIN, MILENAGE parameters and the End
element.  Files are created from the SAIP templates (annex A of the eUICC
Profile Package Interoperable Format specification) and only the contents a
subscription needs are written: EF.ICCID, EF.DIR, EF.ARR, EF.IMSI, EF.UST,
EF.SPN, EF.EST, EF.ACC, EF.AD.  The result is DER encoded with
:func:`smdpp.asn1.pe`.

The default identifiers and keys below are public test values, not secrets:
the test PLMN 001/01 (3GPP TS 23.003 / ITU-T E.212 test network code) and
the MILENAGE key and OPc of 3GPP TS 35.208 test set 1.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable

from smdpp.asn1 import pe
from smdpp.profiles.codings import (
    encode_ef_acc,
    encode_ef_ad,
    encode_ef_spn,
    pin_value,
    puk_value,
)
from smdpp.profiles.identifiers import (
    encode_ef_imsi,
    iccid_to_bcd,
    iccid_to_ef,
    validate_iccid,
)

# -- default test subscription --------------------------------------------

#: ICCID with the telecom prefix 89 and a made-up issuer part; the last digit
#: is its Luhn check digit (ITU-T E.118).
DEFAULT_ICCID = "89000123456789012341"
#: IMSI in the test network MCC 001 / MNC 01.
DEFAULT_IMSI = "001010123456789"
#: 3GPP TS 35.208 4.3 test set 1: K, and the OPc derived from its OP
#: (cdc202d5...cb318).  Public test values.
DEFAULT_KI = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
DEFAULT_OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
DEFAULT_PROFILE_TYPE = "smdpp Generic Test Profile"
DEFAULT_SPN = "smdpp test"

# -- SAIP constants ---------------------------------------------------------

# SAIP version the package claims in its ProfileHeader (same as TS.48 v4).
_SAIP_MAJOR = 2
_SAIP_MINOR = 3
# Template OIDs of SAIP annex A / annex B.
OID_TEMPLATE_MF = "2.23.143.1.2.1"
OID_TEMPLATE_USIM = "2.23.143.1.2.4"

# USIM AID (ETSI TS 101 220 annex E: RID A000000087, application code 1002
# for the 3GPP USIM), with the country / provider part TS.48 uses.
USIM_AID = bytes.fromhex("A0000000871002FF49FF0589")
# Temporary file ID of ADF.USIM, only used for paths inside the package.
_ADF_USIM_TEMP_FID = bytes.fromhex("7FF1")

# PIN key references of ETSI TS 102 221 9.5.1 (also SAIP PINKeyReferenceValue).
_KEY_PIN1 = 0x01  # global PIN1, pinAppl1
_KEY_ADM1 = 0x0A  # adm1
_KEY_PIN2 = 0x81  # local PIN of the first application, secondPINAppl1
_KEY_PUK1 = 0x01  # pukAppl1
_KEY_PUK2 = 0x81  # secondPUKAppl1

# pinAttributes as in the TS.48 generic test profile for its PIN1, its
# local PIN and its ADM keys.
_PIN1_ATTRIBUTES = 6
_LOCAL_PIN_ATTRIBUTES = 3
_ADM_ATTRIBUTES = 3
# maxNumOfAttemps-retryNumLeft: attempts in the high nibble, left in the low.
_ADM_ATTEMPTS = 0xAA  # 10 attempts

# AlgoParameter.algorithmOptions for MILENAGE: RES and MAC 64 bits, CK and IK
# 128 bits.
_MILENAGE_OPTIONS = b"\x01"
_MILENAGE = 1  # AlgoParameter.algorithmID milenage(1)

# -- file contents ------------------------------------------------------------

# Access modes and security conditions of ETSI TS 102 221 9.2 / 9.3 (the
# expanded format of ISO/IEC 7816-4 used in EF.ARR records).
_AM_READ = 0x01  # EF: READ BINARY / READ RECORD / SEARCH
_AM_UPDATE = 0x02  # EF: UPDATE; DF: CREATE FILE (EF)
_AM_CREATE_DF = 0x04  # DF: CREATE FILE (DF)
_AM_DEACTIVATE = 0x08
_AM_ACTIVATE = 0x10
_AM_DELETE_SELF = 0x40
_AM_ADMIN = _AM_DEACTIVATE | _AM_ACTIVATE | _AM_DELETE_SELF
_INS_INCREASE = 0x32
_SC_ALWAYS = bytes.fromhex("9000")
_SC_NEVER = bytes.fromhex("9700")


def _am(modes: int) -> bytes:
    """Access mode data object '80' with the access mode byte."""
    return bytes([0x80, 0x01, modes])


def _ins(ins: int) -> bytes:
    """Access mode data object '84': one command, named by its INS byte."""
    return bytes([0x84, 0x01, ins])


def _sc_key(key_reference: int) -> bytes:
    """Security condition: user verification ('95' = '08') with that key reference."""
    return bytes([0xA4, 0x06, 0x83, 0x01, key_reference, 0x95, 0x01, 0x08])


_SC_PIN1 = _sc_key(_KEY_PIN1)
_SC_PIN2 = _sc_key(_KEY_PIN2)
_SC_ADM1 = _sc_key(_KEY_ADM1)


def _arr_record(*rules: tuple[bytes, bytes]) -> bytes:
    """One EF.ARR record: pairs of access mode data object and security condition."""
    return b"".join(mode + condition for mode, condition in rules)


# The access rules SAIP annex A recommends for EF.ARR; the templates' files
# refer to them by record number.
_ARR_RECORDS: tuple[bytes, ...] = (
    # 1: read always, update PIN1, administration ADM1
    _arr_record((_am(_AM_READ), _SC_ALWAYS), (_am(_AM_UPDATE), _SC_PIN1),
                (_am(_AM_ADMIN), _SC_ADM1)),
    # 2: read PIN1, everything else ADM1
    _arr_record((_am(_AM_READ), _SC_PIN1), (_am(_AM_UPDATE | _AM_ADMIN), _SC_ADM1)),
    # 3: everything ADM1
    _arr_record((_am(_AM_READ | _AM_UPDATE | _AM_ADMIN), _SC_ADM1)),
    # 4: read always, everything else never
    _arr_record((_am(_AM_READ), _SC_ALWAYS), (_am(_AM_UPDATE | _AM_ADMIN), _SC_NEVER)),
    # 5: read and update PIN1, administration ADM1
    _arr_record((_am(_AM_READ | _AM_UPDATE), _SC_PIN1), (_am(_AM_ADMIN), _SC_ADM1)),
    # 6: read and activate PIN1, update / deactivate / delete ADM1
    _arr_record((_am(_AM_READ | _AM_ACTIVATE), _SC_PIN1),
                (_am(_AM_UPDATE | _AM_DEACTIVATE | _AM_DELETE_SELF), _SC_ADM1)),
    # 7: as 5, plus INCREASE with PIN1 (cyclic files such as EF.ACM)
    _arr_record((_am(_AM_READ | _AM_UPDATE), _SC_PIN1), (_am(_AM_ADMIN), _SC_ADM1),
                (_ins(_INS_INCREASE), _SC_PIN1)),
    # 8: read PIN1, update PIN2 (EF.FDN style), administration ADM1
    _arr_record((_am(_AM_READ), _SC_PIN1), (_am(_AM_UPDATE), _SC_PIN2),
                (_am(_AM_ADMIN), _SC_ADM1)),
    # 9: read always, update / (de)activate PIN1, delete ADM1
    _arr_record((_am(_AM_READ), _SC_ALWAYS),
                (_am(_AM_UPDATE | _AM_DEACTIVATE | _AM_ACTIVATE), _SC_PIN1),
                (_am(_AM_DELETE_SELF), _SC_ADM1)),
    # 10: read always, everything else ADM1
    _arr_record((_am(_AM_READ), _SC_ALWAYS), (_am(_AM_UPDATE | _AM_ADMIN), _SC_ADM1)),
    # 11: read always, (de)activate ADM1, update / delete never
    _arr_record((_am(_AM_READ), _SC_ALWAYS), (_am(_AM_DEACTIVATE | _AM_ACTIVATE), _SC_ADM1),
                (_am(_AM_UPDATE | _AM_DELETE_SELF), _SC_NEVER)),
    # 12: read PIN1, everything else never
    _arr_record((_am(_AM_READ), _SC_PIN1), (_am(_AM_UPDATE | _AM_ADMIN), _SC_NEVER)),
    # 13: read / update / activate PIN1, deactivate / delete ADM1
    _arr_record((_am(_AM_READ | _AM_UPDATE | _AM_ACTIVATE), _SC_PIN1),
                (_am(_AM_DEACTIVATE | _AM_DELETE_SELF), _SC_ADM1)),
    # 14: for DFs: create EF / DF, (de)activate and delete with ADM1
    _arr_record((_am(_AM_UPDATE | _AM_CREATE_DF | _AM_ADMIN), _SC_ADM1)),
)

# EF.DIR: 4 records, each room for a 16-byte AID and a 16-character label.
_DIR_RECORDS = 4
_DIR_RECORD_LENGTH = 2 + 2 + 16 + 2 + 16

# EF.UST (3GPP TS 31.102 4.2.8) is 17 bytes in the USIM template.  Services
# declared available, each backed by files the template creates:
# 10 SMS, 12 SMS parameters, 19 service provider name, 33 packet switched
# domain, 85 EPS mobility management information.
_UST_SIZE = 17
_UST_SERVICES = (10, 12, 19, 33, 85)

# Filler files that make a package larger (``fill_to``): transparent EFs under
# the MF, created by PE-GenericFileManagement (SAIP 8.3.5).  File IDs 2FA0 to
# 2FDF are used by no template the profile instantiates; each file holds at
# most 32 KB, so 64 of them allow packages up to about 2 MB.
_FILLER_FIRST_FID = 0x2FA0
_FILLER_MAX_FILES = 64
_FILLER_FILE_SIZE = 32 * 1024
# fileDescriptor of a shareable transparent working EF (ETSI TS 102 221 11.1.1.4.3).
_TRANSPARENT_EF = bytes([0x41, 0x21])
# EF.ARR 2F06 record 10 (see _ARR_RECORDS): read always, everything else ADM1.
_FILLER_ARR_REFERENCE = bytes([0x2F, 0x06, 10])


def _min_bytes(value: int) -> bytes:
    """Big-endian on the fewest octets (SAIP wants sizes without leading zeros)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _linear_fixed_fcp(record_length: int, records: int) -> dict[str, bytes]:
    """Fcp fields of a shareable linear fixed EF (ETSI TS 102 221 11.1.1.4.3)."""
    return {
        "fileDescriptor": bytes([0x42, 0x21]) + record_length.to_bytes(2, "big"),
        "efFileSize": _min_bytes(record_length * records),
    }


def _records(contents: Iterable[bytes], record_length: int, records: int) -> bytes:
    """Whole content of a linear fixed EF: each record 'FF' padded."""
    body = bytearray()
    for content in contents:
        if len(content) > record_length:
            raise ValueError("record content longer than the record")
        body += content.ljust(record_length, b"\xff")
    return bytes(body).ljust(record_length * records, b"\xff")


def _ef_arr() -> tuple[dict[str, bytes], bytes]:
    """FCP and content of the MF's EF.ARR."""
    length = max(len(r) for r in _ARR_RECORDS)
    count = len(_ARR_RECORDS)
    return _linear_fixed_fcp(length, count), _records(_ARR_RECORDS, length, count)


def _ef_dir() -> tuple[dict[str, bytes], bytes]:
    """FCP and content of EF.DIR (ETSI TS 102 221 13.1): one record, the USIM."""
    label = b"USIM"
    template = bytes([0x4F, len(USIM_AID)]) + USIM_AID + bytes([0x50, len(label)]) + label
    record = bytes([0x61, len(template)]) + template
    return (_linear_fixed_fcp(_DIR_RECORD_LENGTH, _DIR_RECORDS),
            _records([record], _DIR_RECORD_LENGTH, _DIR_RECORDS))


def _ef_ust() -> bytes:
    table = bytearray(_UST_SIZE)
    for service in _UST_SERVICES:
        table[(service - 1) // 8] |= 1 << ((service - 1) % 8)
    return bytes(table)


def _content(data: bytes) -> list[tuple[str, Any]]:
    """A File that only replaces the content of a template file."""
    return [("fillFileContent", data)]


def _filler_element(header: dict[str, Any], fid: int, size: int) -> bytes:
    """One PE-GenericFileManagement creating a transparent EF of ``size`` bytes under the MF.

    ``filePath`` is the path from the MF without '3F00' (SAIP 8.3.5), so empty
    means the MF itself.  The content is a deterministic pseudo-random stream
    (SHAKE-128 of the file ID): the same arguments always give the same
    package, and it does not look like padding.
    """
    fid_bytes = fid.to_bytes(2, "big")
    content = hashlib.shake_128(b"smdpp filler " + fid_bytes).digest(size)
    fcp = {
        "fileDescriptor": _TRANSPARENT_EF,
        "fileID": fid_bytes,
        "securityAttributesReferenced": _FILLER_ARR_REFERENCE,
        "efFileSize": _min_bytes(size),
        "shortEFID": b"",  # no short file identifier
    }
    element = {
        "gfm-header": header,
        "fileManagementCMD": [[("filePath", b""), ("createFCP", fcp), ("fillFileContent", content)]],
    }
    return pe().encode("ProfileElement", ("genericFileManagement", element))


def _fillers(ids: "_Ids", room: int) -> list[bytes]:
    """Filler elements whose encodings add up to ``room`` bytes or just over.

    ``room`` counts the filler elements and the PE-End that follows them
    (whose identification number comes after theirs).
    """
    spec = pe()
    fillers: list[bytes] = []
    while True:
        if len(fillers) == _FILLER_MAX_FILES:
            raise ValueError("fill_to is larger than the filler files can hold")
        fid = _FILLER_FIRST_FID + len(fillers)
        header = ids.header()
        end = spec.encode("ProfileElement", ("end", {"end-header": ids.peek()}))
        left = room - sum(map(len, fillers)) - len(end)
        full = _filler_element(header, fid, _FILLER_FILE_SIZE)
        smallest = _filler_element(header, fid, 1)
        if len(full) + len(smallest) <= left:
            fillers.append(full)
            continue
        # The last file: the smallest content that reaches the target.  Its
        # overhead varies with the length octets, hence the adjustment loops.
        size = max(1, _FILLER_FILE_SIZE - (len(full) - left))
        while len(_filler_element(header, fid, size)) < left:
            size += 1
        while size > 1 and len(_filler_element(header, fid, size - 1)) >= left:
            size -= 1
        fillers.append(_filler_element(header, fid, size))
        return fillers


class _Ids:
    """PEHeader values with consecutive identification numbers."""

    def __init__(self) -> None:
        self._next = 1

    def header(self) -> dict[str, Any]:
        value = self.peek()
        self._next += 1
        return value

    def peek(self) -> dict[str, Any]:
        """The header the next call of :meth:`header` returns."""
        return {"mandated": None, "identification": self._next}


def generate_test_profile(
    *,
    iccid: str,
    imsi: str,
    ki: bytes,
    opc: bytes,
    pin1: str = "0000",
    puk1: str = "12345678",
    pin2: str = "9999",
    puk2: str = "87654321",
    adm1: str = "88888888",
    spn: str = DEFAULT_SPN,
    profile_type: str = DEFAULT_PROFILE_TYPE,
    mnc_length: int = 2,
    fill_to: int | None = None,
) -> bytes:
    """DER bytes of a TS.48-like USIM test profile (an Unprotected Profile Package).

    ``iccid`` is 18-20 digits whose last digit is the Luhn check digit;
    ``imsi`` up to 15 digits; ``ki`` and ``opc`` the 16-byte MILENAGE K and
    OPc.  ``pin1`` is the global PIN1 (unblocked by ``puk1``), ``pin2`` the
    USIM's local PIN2 (unblocked by ``puk2``), ``adm1`` the administrative
    key.  ``mnc_length`` (2 or 3) tells the handset where the MNC ends in the
    IMSI (EF.AD).  ``fill_to`` (bytes) pads the package to that size with
    filler EFs created by PE-GenericFileManagement elements before PE-End
    (for benchmarks of large profiles): exactly, or one byte more where the
    DER length octets leave no exact fit, or up to one filler element (about
    40 bytes) more when the profile leaves less room than that; ValueError if
    the profile alone is already larger.  Raises ValueError for
    malformed input.
    """
    validate_iccid(iccid)
    if len(ki) != 16 or len(opc) != 16:
        raise ValueError("ki and opc must be 16 bytes each")
    if not 1 <= len(profile_type) <= 100:
        raise ValueError("profile_type must be 1 to 100 characters")
    ef_imsi = encode_ef_imsi(imsi)
    ids = _Ids()

    header = {
        "major-version": _SAIP_MAJOR,
        "minor-version": _SAIP_MINOR,
        "profileType": profile_type,
        "iccid": iccid_to_bcd(iccid),
        "eUICC-Mandatory-services": {"usim": None, "milenage": None},
        "eUICC-Mandatory-GFSTEList": [OID_TEMPLATE_MF, OID_TEMPLATE_USIM],
    }

    arr_fcp, arr_content = _ef_arr()
    dir_fcp, dir_content = _ef_dir()
    mf = {
        "mf-header": ids.header(),
        "templateID": OID_TEMPLATE_MF,
        # SAIP lists the key references of the PS template; PIN1 and ADM1.
        "mf": [("fileDescriptor", {"pinStatusTemplateDO": bytes([_KEY_PIN1, _KEY_ADM1])})],
        "ef-iccid": _content(iccid_to_ef(iccid)),
        "ef-dir": [("fileDescriptor", dir_fcp), ("fillFileContent", dir_content)],
        "ef-arr": [("fileDescriptor", arr_fcp), ("fillFileContent", arr_content)],
    }

    # PUKs come first: PINConfiguration.unblockingPINReference must name one.
    puk_codes = {
        "puk-Header": ids.header(),
        "pukCodes": [
            {"keyReference": _KEY_PUK1, "pukValue": puk_value(puk1, "puk1")},
            {"keyReference": _KEY_PUK2, "pukValue": puk_value(puk2, "puk2")},
        ],
    }
    # A PE-PINCodes applies to the DF created just before it: here the MF.
    mf_pins = {
        "pin-Header": ids.header(),
        "pinCodes": ("pinconfig", [
            {"keyReference": _KEY_PIN1, "pinValue": pin_value(pin1, "pin1"),
             "unblockingPINReference": _KEY_PUK1, "pinAttributes": _PIN1_ATTRIBUTES},
            {"keyReference": _KEY_ADM1, "pinValue": pin_value(adm1, "adm1"),
             "pinAttributes": _ADM_ATTRIBUTES, "maxNumOfAttemps-retryNumLeft": _ADM_ATTEMPTS},
        ]),
    }

    usim = {
        "usim-header": ids.header(),
        "templateID": OID_TEMPLATE_USIM,
        "adf-usim": [("fileDescriptor", {
            "fileID": _ADF_USIM_TEMP_FID,
            "dfName": USIM_AID,
            "pinStatusTemplateDO": bytes([_KEY_PIN1, _KEY_PIN2, _KEY_ADM1]),
        })],
        "ef-imsi": _content(ef_imsi),
        # The USIM's EF.ARR is a link to the MF's, so the template's record
        # numbers resolve to the rules written above.
        "ef-arr": [("fileDescriptor", {"linkPath": bytes.fromhex("2F06")})],
        "ef-ust": _content(_ef_ust()),
        "ef-spn": _content(encode_ef_spn(spn)),
        "ef-est": _content(b"\x00"),  # FDN, BDN, APN control all off
        "ef-acc": _content(encode_ef_acc(imsi)),
        "ef-ad": _content(encode_ef_ad(mnc_length, bytes(3))),
        # No change: an empty EF.ECC makes the handset use 112 and 911.
        "ef-ecc": [],
    }
    usim_pins = {
        "pin-Header": ids.header(),
        "pinCodes": ("pinconfig", [
            {"keyReference": _KEY_PIN2, "pinValue": pin_value(pin2, "pin2"),
             "unblockingPINReference": _KEY_PUK2, "pinAttributes": _LOCAL_PIN_ATTRIBUTES},
        ]),
    }

    # rotationConstants, xoringConstants and the SQN parameters keep their
    # DEFAULT values (the standard MILENAGE r1..r5 / c1..c5 of 3GPP TS
    # 35.206), which DER requires to be left out.
    aka = {
        "aka-header": ids.header(),
        "algoConfiguration": ("algoParameter", {
            "algorithmID": _MILENAGE,
            "algorithmOptions": _MILENAGE_OPTIONS,
            "key": bytes(ki),
            "opc": bytes(opc),
        }),
    }
    spec = pe()
    elements = [
        ("header", header),
        ("mf", mf),
        ("pukCodes", puk_codes),
        ("pinCodes", mf_pins),
        ("usim", usim),
        ("pinCodes", usim_pins),
        ("akaParameter", aka),
    ]
    body = b"".join(spec.encode("ProfileElement", element) for element in elements)
    fillers: list[bytes] = []
    if fill_to is not None:
        end_size = len(spec.encode("ProfileElement", ("end", {"end-header": ids.peek()})))
        if fill_to < len(body) + end_size:
            raise ValueError(f"fill_to {fill_to} is smaller than the profile itself "
                             f"({len(body) + end_size} bytes)")
        if fill_to > len(body) + end_size:
            fillers = _fillers(ids, fill_to - len(body))
    end = spec.encode("ProfileElement", ("end", {"end-header": ids.header()}))
    return body + b"".join(fillers) + end


def generate_default_test_profile() -> bytes:
    """The profile of :func:`generate_test_profile` with all default test values."""
    return generate_test_profile(
        iccid=DEFAULT_ICCID, imsi=DEFAULT_IMSI, ki=DEFAULT_KI, opc=DEFAULT_OPC,
    )
