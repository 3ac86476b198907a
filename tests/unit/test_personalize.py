"""Personalization of profile templates (smdpp.profiles.personalize and its codings)."""
from __future__ import annotations

from pathlib import Path

import pytest

from smdpp.profiles.codings import (
    adm_value,
    decode_ef_ad_mnc_length,
    decode_ef_spn,
    encode_ef_acc,
    encode_ef_ad,
    encode_ef_spn,
)
from smdpp.profiles.elements import (
    InvalidPackage,
    file_image,
    parse_package,
    write_file,
)
from smdpp.profiles.generate import generate_default_test_profile
from smdpp.profiles.identifiers import decode_ef_imsi, encode_ef_imsi, iccid_from_bcd, iccid_to_ef
from smdpp.profiles.ims import derived_impi, derived_impu, home_network_domain, rederive
from smdpp.profiles.milenage import opc_from_op
from smdpp.profiles.personalize import PersonalizationError, Template, personalize
from smdpp.profiles.subscription import FieldError, Subscription

TS48 = ["TS48V2-SAIP2-1-NOBERTLV-UNIQUE", "TS48V4-SAIP2-3-BERTLV-UNIQUE",
        "TS48V5-SAIP2-1A-NOBERTLV-UNIQUE"]

# 3GPP TS 35.208 4.3, test sets 1 to 6: K, OP and the OPc they give.
TS35208_OPC = [
    ("465b5ce8b199b49faa5f0a2ee238a6bc", "cdc202d5123e20f62b6d676ac72cb318",
     "cd63cb71954a9f4e48a5994e37a02baf"),
    ("0396eb317b6d1c36f19c1c84cd6ffd16", "ff53bade17df5d4e793073ce9d7579fa",
     "53c15671c60a4b731c55b4a441c0bde2"),
    ("fec86ba6eb707ed08905757b1bb44b8f", "dbc59adcb6f9a0ef735477b7fadf8374",
     "1006020f0a478bf6b699f15c062e42b3"),
    ("9e5944aea94b81165c82fbf9f32db751", "223014c5806694c007ca1eeef57f004f",
     "a64a507ae1a2a98bb88eb4210135dc87"),
    ("4ab1deb05ca6ceb051fc98e77d026a84", "2d16c5cd1fdf6b22383584e3bef2a8d8",
     "dcf07cbd51855290b92a07a9891e523e"),
    ("6c38a116ac280c454f59332ee35c8c4f", "1ba00a1a7c6700ac8c3ff3e96ad08725",
     "3803ef5363b947c6aaa225e58fae3934"),
]

NEW = {
    "iccid": "8988211000000000011", "imsi": "999700000000017",
    "ki": "000102030405060708090a0b0c0d0e0f", "op": "cdc202d5123e20f62b6d676ac72cb318",
    "algorithm": "milenage", "pin1": "1234", "puk1": "13572468", "pin2": "4321",
    "puk2": "86427531", "adm1": "31415926", "spn": "Open5GS", "profile_name": "My own profile",
}


def template(shared_testdata: Path, name: str) -> bytes:
    return (shared_testdata / "upp" / f"{name}.der").read_bytes()


def only(elements, kind: str):
    found = [e for e in elements if e.kind == kind]
    assert len(found) == 1, kind
    return found[0].value


def configs(elements, kind: str) -> list[dict]:
    out = []
    for e in elements:
        if e.kind == kind:
            items = e.value[kind]
            out += items[1] if kind == "pinCodes" else items
    return out


# -- known answers ------------------------------------------------------------------


@pytest.mark.parametrize("k, op, opc", TS35208_OPC)
def test_opc_from_op_ts35208_test_sets(k: str, op: str, opc: str) -> None:
    assert opc_from_op(bytes.fromhex(k), bytes.fromhex(op)) == bytes.fromhex(opc)


def test_opc_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="K must be 16 bytes"):
        opc_from_op(bytes(15), bytes(16))
    with pytest.raises(ValueError, match="OP must be 16 bytes"):
        opc_from_op(bytes(16), bytes(17))


def test_ef_imsi_and_ef_iccid_worked_by_hand() -> None:
    # TS 31.102 4.2.2: IMSI 262 01 9876543210 (15 digits, odd): length 8, then
    # nibble pairs '9' (type 001 + odd parity) '2' | '6' '2' | '0' '1' | '9' '8' |
    # '7' '6' | '5' '4' | '3' '2' | '1' '0', each pair stored low nibble first.
    assert encode_ef_imsi("262019876543210") == bytes.fromhex("082926108967452301")
    assert decode_ef_imsi(bytes.fromhex("082926108967452301")) == "262019876543210"
    # The TS.48 EF.IMSI: 08 09 10 10 10 32 54 06 36 is IMSI 001010123456063.
    assert decode_ef_imsi(bytes.fromhex("080910101032540636")) == "001010123456063"
    # E.118 / TS 102 221 13.2: digits swapped in pairs, 'F' filler after 19 digits.
    assert iccid_to_ef("8988211000000000011") == bytes.fromhex("988812010000000010f1")
    with pytest.raises(ValueError):
        decode_ef_imsi(bytes.fromhex("0829"))  # length byte says 8, one byte follows


def test_ef_acc_ad_spn_known_answers() -> None:
    assert encode_ef_acc("001010123456789") == bytes.fromhex("0200")  # class 9: byte 1 b2
    assert encode_ef_acc("001010123456783", bytes.fromhex("f801")) == bytes.fromhex("f808")
    assert encode_ef_ad(3, bytes.fromhex("800000")) == bytes.fromhex("80000003")
    assert encode_ef_ad(2, bytes.fromhex("80000013")) == bytes.fromhex("80000012")
    assert decode_ef_ad_mnc_length(bytes.fromhex("80000002")) == 2
    assert encode_ef_spn("Open5GS", 1) == bytes.fromhex("014f70656e354753") + b"\xff" * 9
    assert decode_ef_spn(encode_ef_spn("Open5GS")) == "Open5GS"
    assert adm_value("0102030405060708", "adm1") == bytes.fromhex("0102030405060708")
    assert adm_value("31415926", "adm1") == b"31415926"


def test_ims_identities_ts23003() -> None:
    assert home_network_domain("234150999999999", 2) == "ims.mnc015.mcc234.3gppnetwork.org"
    assert home_network_domain("310150123456789", 3) == "ims.mnc150.mcc310.3gppnetwork.org"
    assert derived_impi("234150999999999", 2) == "234150999999999@ims.mnc015.mcc234.3gppnetwork.org"
    assert derived_impu("234150999999999", 2).startswith("sip:234150999999999@ims.mnc015")
    old = "001010123456063"
    assert rederive("001010123456789@test.3gpp.com", old, 2, "999700000000017", 2) == \
        "999700000000017@test.3gpp.com"
    assert rederive("sip:+11234567890@test.3gpp.com", old, 2, "999700000000017", 2) == \
        "sip:+11234567890@test.3gpp.com"
    assert rederive("sip:user@test.3gpp.com", old, 2, "999700000000017", 2) == "sip:user@test.3gpp.com"


def test_write_file_keeps_the_piece_layout() -> None:
    file = [("fileDescriptor", {"fileID": b"\x6f\x04"}), ("fillFileContent", b"abc"),
            ("fillFileOffset", 5), ("fillFileContent", b"xyz")]
    assert write_file(file, 0, b"ABC") == [file[0], ("fillFileContent", b"ABC"),
                                           ("fillFileOffset", 5), ("fillFileContent", b"xyz")]
    # bytes outside every piece become a new piece at the right offset
    assert write_file(file, 4, b"QQ") == [file[0], ("fillFileContent", b"abc"),
                                          ("fillFileOffset", 1), ("fillFileContent", b"QQ"),
                                          ("fillFileOffset", 2), ("fillFileContent", b"xyz")]
    assert file_image(write_file([], 0, b"\x01\x02")) == b"\x01\x02"
    assert file_image(file) == b"abc" + b"\xff" * 5 + b"xyz"


# -- the TS.48 templates ------------------------------------------------------------


@pytest.mark.parametrize("name", TS48)
def test_no_value_gives_the_template_byte_for_byte(shared_testdata: Path, name: str) -> None:
    der = template(shared_testdata, name)
    assert personalize(der, Subscription()) == der
    assert personalize(der, Subscription(matching_id="X")) == der


@pytest.mark.parametrize("name", TS48)
def test_every_value_lands_everywhere_and_nothing_else_changes(shared_testdata: Path,
                                                               name: str) -> None:
    der = template(shared_testdata, name)
    sub = Subscription.from_text(NEW)
    out = personalize(der, sub)
    before, after = parse_package(der), parse_package(out)
    assert [e.kind for e in before] == [e.kind for e in after]

    header = after[0].value
    assert iccid_from_bcd(header["iccid"]) == NEW["iccid"]
    assert header["profileType"] == NEW["profile_name"]
    services = header["eUICC-Mandatory-services"]
    assert "milenage" in services and "usim-test-algorithm" not in services
    assert file_image(only(after, "mf")["ef-iccid"]) == iccid_to_ef(NEW["iccid"])

    usim = only(after, "usim")
    assert decode_ef_imsi(file_image(usim["ef-imsi"])) == NEW["imsi"]
    assert file_image(usim["ef-acc"]) == bytes.fromhex("0080")  # last digit 7
    assert file_image(usim["ef-ad"]) == bytes.fromhex("80000002")  # TS.48 mode, MNC 2
    assert decode_ef_spn(file_image(usim["ef-spn"])) == "Open5GS"
    assert file_image(usim["ef-spn"])[0] == 0x01  # the template's display condition

    isim = only(after, "isim")
    assert NEW["imsi"].encode() + b"@test.3gpp.com" in file_image(isim["ef-impi"])
    impu = file_image(isim["ef-impu"])
    assert b"sip:999700000000017@ims.mnc070.mcc999.3gppnetwork.org" in impu
    assert b"sip:+11234567890@test.3gpp.com" in impu and b"001010123456789" not in impu

    opc = opc_from_op(bytes.fromhex(NEW["ki"]), bytes.fromhex(NEW["op"]))
    akas = [e.value["algoConfiguration"][1] for e in after if e.kind == "akaParameter"]
    assert len(akas) == 2  # the USIM's and the ISIM's
    for aka in akas:
        assert (aka["algorithmID"], aka["key"], aka["opc"]) == (1, bytes.fromhex(NEW["ki"]), opc)

    pins = {c["keyReference"]: c["pinValue"] for c in configs(after, "pinCodes")}
    assert pins == {0x01: b"1234\xff\xff\xff\xff", 0x0A: b"31415926", 0x0B: b"66666666",
                    0x81: b"4321\xff\xff\xff\xff"}
    assert all(c["pinValue"] == b"4321\xff\xff\xff\xff"
               for c in configs(after, "pinCodes") if c["keyReference"] == 0x81)
    puks = {c["keyReference"]: c["pukValue"] for c in configs(after, "pukCodes")}
    assert puks == {0x01: b"13572468", 0x81: b"86427531"}

    changed = {"header", "mf", "usim", "isim", "akaParameter", "pinCodes", "pukCodes"}
    for old, new in zip(before, after):
        if old.kind not in changed:
            assert new.raw == old.raw, (old.index, old.kind)


@pytest.mark.parametrize("name", TS48)
def test_only_the_iccid_touches_only_header_and_mf(shared_testdata: Path, name: str) -> None:
    der = template(shared_testdata, name)
    out = personalize(der, Subscription(iccid="8988211000000000011"))
    before, after = parse_package(der), parse_package(out)
    differing = [old.kind for old, new in zip(before, after) if old.raw != new.raw]
    assert differing == ["header", "mf"]
    mf_old, mf_new = only(before, "mf"), only(after, "mf")
    assert {k for k in mf_old if mf_old[k] != mf_new[k]} == {"ef-iccid"}


def test_xor_keeps_the_algorithm_and_takes_a_new_key(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    out = personalize(der, Subscription(ki=bytes(range(16, 32))))
    for e in parse_package(out):
        if e.kind == "akaParameter":
            params = e.value["algoConfiguration"][1]
            assert params["algorithmID"] == 3 and params["key"] == bytes(range(16, 32))
    assert parse_package(out)[0].raw == parse_package(der)[0].raw  # services unchanged


def test_milenage_with_a_new_key_needs_the_opc(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    with pytest.raises(PersonalizationError, match="opc"):
        personalize(der, Subscription(ki=bytes(16), algorithm="milenage"))


def test_mnc_length_three_changes_ef_ad_and_the_home_domain(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    out = personalize(der, Subscription(imsi="310150123456789", mnc_length=3))
    after = parse_package(out)
    assert file_image(only(after, "usim")["ef-ad"]) == bytes.fromhex("80000003")
    assert b"sip:310150123456789@ims.mnc150.mcc310.3gppnetwork.org" in \
        file_image(only(after, "isim")["ef-impu"])


def test_generated_profile_personalizes(tmp_path: Path) -> None:
    der = generate_default_test_profile()
    out = personalize(der, Subscription(imsi="26201987654321", spn="Lab", pin1="4711"))
    after = parse_package(out)
    assert decode_ef_imsi(file_image(only(after, "usim")["ef-imsi"])) == "26201987654321"
    assert decode_ef_spn(file_image(only(after, "usim")["ef-spn"])) == "Lab"


# -- hostile input ------------------------------------------------------------------


@pytest.mark.parametrize("values, field, message", [
    ({"imsi": "0010101234567890"}, "imsi", "6 to 15 decimal digits"),  # 16 digits
    ({"ki": "00" * 15}, "ki", "got 15"),
    ({"opc": "00" * 17}, "opc", "got 17"),
    ({"ki": "zz" * 16}, "ki", "not hex"),
    ({"iccid": "8988211000000000012"}, "iccid", "Luhn"),
    ({"iccid": "898821100000000001"}, "iccid", "19 or 20"),
    ({"opc": "00" * 16, "op": "00" * 16, "ki": "00" * 16}, "op", "not both"),
    ({"op": "00" * 16}, "op", "needs the ki"),
    ({"op": "00" * 16, "ki": "00" * 16, "algorithm": "xor"}, "op", "MILENAGE only"),
    ({"algorithm": "comp128"}, "algorithm", "one of"),
    ({"pin1": "12"}, "pin1", "4 to 8"),
    ({"puk2": "1234567"}, "puk2", "8 decimal"),
    ({"adm1": "xyz"}, "adm1", "digits"),
    ({"spn": "a" * 17}, "spn", "1 to 16"),
    ({"matching_id": "../etc/passwd"}, "matching_id", "letters"),
    ({"colour": "blue"}, "colour", "unknown field"),
])
def test_bad_values_name_their_field(values: dict, field: str, message: str) -> None:
    with pytest.raises(FieldError, match=message) as info:
        Subscription.from_text(values)
    assert info.value.field == field


def test_compute_luhn() -> None:
    assert Subscription.from_text({"iccid": "898821100000000001"},
                                  compute_luhn=True).iccid == "8988211000000000011"


def test_template_that_is_not_a_profile_package() -> None:
    for data in (b"", b"hello world", bytes.fromhex("3003020101"), b"\xa0\x05\x80"):
        with pytest.raises(PersonalizationError, match="not a Profile Package"):
            Template(data)
    with pytest.raises(InvalidPackage):
        parse_package(bytes.fromhex("aa07a005800081011d"))  # PE-End alone: no header


def test_template_without_a_usim(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    without = b"".join(e.raw for e in parse_package(der) if e.kind != "usim")
    with pytest.raises(PersonalizationError, match="imsi: the template has no USIM"):
        personalize(without, Subscription(imsi="001010000000001"))
    with pytest.raises(PersonalizationError, match="spn: the template has no USIM"):
        personalize(without, Subscription(spn="x"))
    # values with a place still work
    assert personalize(without, Subscription(pin1="1234")) != without


def test_template_without_aka_or_pins(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    bare = b"".join(e.raw for e in parse_package(der)
                    if e.kind not in ("akaParameter", "pukCodes"))
    with pytest.raises(PersonalizationError, match="ki: the template has no AKA parameters"):
        personalize(bare, Subscription(ki=bytes(16)))
    with pytest.raises(PersonalizationError, match="puk1: the template has no key reference 01"):
        personalize(bare, Subscription(puk1="12345678"))


def test_tuak_takes_a_256_bit_key_and_topc(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    with pytest.raises(PersonalizationError, match="opc: TUAK"):
        personalize(der, Subscription(ki=bytes(32), algorithm="tuak"))
    out = personalize(der, Subscription(ki=bytes(range(32)), opc=bytes(32), algorithm="tuak"))
    after = parse_package(out)
    for e in after:
        if e.kind == "akaParameter":
            params = e.value["algoConfiguration"][1]
            assert (params["algorithmID"], params["key"]) == (2, bytes(range(32)))
    services = after[0].value["eUICC-Mandatory-services"]
    assert "tuak256" in services and "usim-test-algorithm" not in services


def test_mnc_length_alone_moves_the_ims_domain(shared_testdata: Path) -> None:
    der = template(shared_testdata, TS48[0])
    after = parse_package(personalize(der, Subscription(mnc_length=3)))
    assert file_image(only(after, "usim")["ef-ad"]) == bytes.fromhex("80000003")
    # IMSI 001010123456063 with a 3-digit MNC: MNC 010
    assert b"sip:001010123456789@ims.mnc010.mcc001.3gppnetwork.org" in \
        file_image(only(after, "isim")["ef-impu"])


def test_ims_identity_grows_into_padding_and_no_further(shared_testdata: Path) -> None:
    from smdpp.profiles.elements import encode_element
    from smdpp.profiles.ims import encode_identity

    der = template(shared_testdata, TS48[0])
    elements = parse_package(der)
    isim = next(e for e in elements if e.kind == "isim")
    # An IMPI with a 14-digit IMSI in the 32-byte file: 'FF' padding after it.
    value = dict(isim.value)
    value["ef-impi"] = write_file(value["ef-impi"], 0,
                                  encode_identity("00101012345678@test.3gpp.com").ljust(32, b"\xff"))
    value["ef-impu"] = [value["ef-impu"][0]]  # no IMPU records: only the IMPI matters here
    short = b"".join(encode_element("isim", value) if e.index == isim.index else e.raw
                     for e in elements)
    out = parse_package(personalize(short, Subscription(imsi="001010000000017")))
    impi = file_image(only(out, "isim")["ef-impi"])
    assert impi == encode_identity("001010000000017@test.3gpp.com").ljust(32, b"\xff")
    # An identity that outgrows the 32-byte file is refused, naming it.
    value["ef-impi"] = [value["ef-impi"][0], ("fillFileContent", encode_identity(
        "00101012345678@0123456789abcd.org"))]  # 2 + 32 bytes, one more with 15 digits
    too_long = b"".join(encode_element("isim", value) if e.index == isim.index else e.raw
                        for e in elements)
    with pytest.raises(PersonalizationError, match="does not fit"):
        personalize(too_long, Subscription(imsi="001010000000017"))


def test_a_wrong_tag_inside_a_sequence_of_is_an_error_not_a_hang(shared_testdata: Path) -> None:
    """asn1tools 0.169.0 loops forever on it; smdpp.asn1 makes it a DecodeError.

    Run in a child process so that a regression fails after the timeout
    instead of hanging the suite.
    """
    import subprocess
    import sys

    # PE-GenericFileManagement whose FileManagement holds a '85' item: no
    # alternative of its CHOICE has that tag.
    element = "a10ca003810101a1053003850100"
    code = ("from smdpp.asn1 import pe\n"
            "try:\n"
            f"    pe().decode('ProfileElement', bytes.fromhex('{element}'))\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "DecodeError" in run.stdout and "does not match its type" in run.stdout, run.stderr
    der = template(shared_testdata, TS48[0])
    elements = parse_package(der)
    hostile = elements[0].raw + bytes.fromhex(element) + b"".join(e.raw for e in elements[1:])
    with pytest.raises(PersonalizationError, match="element 1 .tag a1. does not decode"):
        Template(hostile)


def test_header_iccid_that_is_not_bcd_is_shown_not_a_traceback(shared_testdata: Path) -> None:
    from smdpp.profiles.elements import encode_element
    from smdpp.profiles.show import installed_identifiers, summarize

    elements = parse_package(template(shared_testdata, TS48[0]))
    header = dict(elements[0].value, iccid=bytes.fromhex("89AB449999999990007F"))
    der = encode_element("header", header) + b"".join(e.raw for e in elements[1:])
    assert summarize(der)["iccid"] == "89AB449999999990007F (not BCD digits)"
    assert installed_identifiers(der)[0].endswith("(not BCD digits)")
