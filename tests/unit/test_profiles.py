"""SAIP profile elements (smdpp/asn1/pe.asn), the generated test profile and the UPP inventory."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smdpp.asn1 import pe
from smdpp.asn1.tlv import iter_tlvs
from smdpp.profiles import (
    Profile,
    ProfileInventory,
    ensure_test_profile,
    generate_default_test_profile,
    generate_test_profile,
)
from smdpp.profiles.generate import DEFAULT_ICCID, DEFAULT_KI, DEFAULT_OPC, DEFAULT_PROFILE_TYPE
from smdpp.profiles.inventory import shared_iccids
from smdpp.profiles.identifiers import (
    encode_ef_imsi,
    iccid_from_bcd,
    iccid_to_bcd,
    iccid_to_ef,
    luhn_check_digit,
)

# Known answers read off the files with xxd: the PE-Header holds
# '83 0A' + the ICCID as plain BCD digits, 'F' padded.
TS48_ICCIDS = {
    "TS48V2-SAIP2-1-NOBERTLV-UNIQUE": "8949449999999990007",  # 830a 8949 4499 9999 9990 007f
    "TS48V4-SAIP2-3-BERTLV-UNIQUE": "8949449999999990122",  # 830a 8949 4499 9999 9990 122f
    "TS48V5-SAIP2-1A-NOBERTLV-UNIQUE": "8949449999999990148",  # 830a 8949 4499 9999 9990 148f
}
TS48_PROFILE_TYPE = "GSMA Generic eUICC Test Profile"


def decode_all(upp: bytes) -> list[tuple[str, dict]]:
    """Every Profile Element of a package, decoded with pe()."""
    spec = pe()
    return [spec.decode("ProfileElement", tlv.raw) for tlv in iter_tlvs(upp)]


def only(elements: list[tuple[str, dict]], name: str) -> dict:
    values = [value for kind, value in elements if kind == name]
    assert len(values) == 1, f"{name}: {len(values)} elements"
    return values[0]


def file_content(file: list[tuple[str, object]]) -> bytes:
    """The concatenated fillFileContent pieces of a File (no offsets used)."""
    return b"".join(v for k, v in file if k == "fillFileContent")  # type: ignore[misc]


@pytest.fixture(scope="module")
def generated() -> bytes:
    return generate_default_test_profile()


# -- pe.asn ---------------------------------------------------------------------


def test_pe_end_element_known_answer() -> None:
    # The last element of the TS.48 v2 package: aa07 a005 8000 8101 1d.
    value = ("end", {"end-header": {"mandated": None, "identification": 29}})
    assert pe().encode("ProfileElement", value) == bytes.fromhex("aa07a005800081011d")
    assert pe().decode("ProfileElement", bytes.fromhex("aa07a005800081011d")) == value


def test_pe_choice_tags_follow_saip_numbering(generated: bytes) -> None:
    tags = [tlv.tag.hex() for tlv in iter_tlvs(generated)]
    # header [0], mf [16], pukCodes [3], pinCodes [2], usim [19], pinCodes,
    # akaParameter [4], end [10]
    assert tags == ["a0", "b0", "a3", "a2", "b3", "a2", "a4", "aa"]


@pytest.mark.parametrize("matching_id", sorted(TS48_ICCIDS))
def test_ts48_profiles_decode_completely_and_reencode(shared_testdata: Path, matching_id: str) -> None:
    upp = (shared_testdata / "upp" / f"{matching_id}.der").read_bytes()
    spec = pe()
    kinds = []
    for tlv in iter_tlvs(upp):
        kind, value = spec.decode("ProfileElement", tlv.raw)
        assert kind is not None, f"unknown Profile Element {tlv.tag.hex()}"
        assert spec.encode("ProfileElement", (kind, value)) == tlv.raw, kind
        kinds.append(kind)
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert {"mf", "usim", "pinCodes", "pukCodes", "akaParameter", "securityDomain", "rfm"} <= set(kinds)
    header = spec.decode("ProfileElement", next(iter_tlvs(upp)).raw)[1]
    assert iccid_from_bcd(header["iccid"]) == TS48_ICCIDS[matching_id]
    assert header["profileType"] == TS48_PROFILE_TYPE


def test_ts48_ef_iccid_is_the_swapped_header_iccid(shared_testdata: Path) -> None:
    upp = (shared_testdata / "upp" / "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der").read_bytes()
    mf = only(decode_all(upp), "mf")
    assert mf["templateID"] == "2.23.143.1.2.1"
    assert file_content(mf["ef-iccid"]) == bytes.fromhex("989444999999990900f7")
    assert iccid_to_ef("8949449999999990007") == bytes.fromhex("989444999999990900f7")


# -- identifiers ----------------------------------------------------------------


def test_iccid_codings_known_answers() -> None:
    assert iccid_to_ef("89000123456789012341") == bytes.fromhex("98001032547698103214")
    assert iccid_to_bcd("8949449999999990007") == bytes.fromhex("8949449999999990007f")
    assert iccid_from_bcd(bytes.fromhex("8949449999999990122f")) == "8949449999999990122"
    with pytest.raises(ValueError):
        iccid_from_bcd(bytes.fromhex("89494499f9999990122f"))  # F inside the digits


def test_luhn_check_digit() -> None:
    assert luhn_check_digit("8900012345678901234") == "1"
    # The TS.48 ICCIDs end in their Luhn digits.
    assert luhn_check_digit("894944999999999000") == "7"
    assert luhn_check_digit("894944999999999012") == "2"
    assert DEFAULT_ICCID == "8900012345678901234" + luhn_check_digit("8900012345678901234")


def test_ef_imsi_known_answers() -> None:
    assert encode_ef_imsi("001010123456789") == bytes.fromhex("080910101032547698")
    # even number of digits: parity nibble 1 and an 'F' filler
    assert encode_ef_imsi("00101012345678") == bytes.fromhex("0801101010325476f8")
    # shorter IMSIs are 'FF' padded to the 9-byte file
    assert encode_ef_imsi("0010112") == bytes.fromhex("0409101021ffffffff")
    with pytest.raises(ValueError):
        encode_ef_imsi("0010101234567890")  # 16 digits


# -- generated profile ------------------------------------------------------------


def test_generated_profile_round_trips(generated: bytes) -> None:
    spec = pe()
    reencoded = b"".join(spec.encode("ProfileElement", e) for e in decode_all(generated))
    assert reencoded == generated


def test_generated_profile_contents(generated: bytes) -> None:
    elements = decode_all(generated)
    header = only(elements, "header")
    assert header["iccid"] == bytes.fromhex("89000123456789012341")
    assert header["profileType"] == DEFAULT_PROFILE_TYPE
    assert header["eUICC-Mandatory-GFSTEList"] == ["2.23.143.1.2.1", "2.23.143.1.2.4"]

    mf = only(elements, "mf")
    assert file_content(mf["ef-iccid"]) == bytes.fromhex("98001032547698103214")
    ef_dir = file_content(mf["ef-dir"])
    assert ef_dir.startswith(bytes.fromhex("61144f0ca0000000871002ff49ff058950045553494d"))

    usim = only(elements, "usim")
    assert file_content(usim["ef-imsi"]) == bytes.fromhex("080910101032547698")
    assert file_content(usim["ef-acc"]) == bytes.fromhex("0200")  # last IMSI digit 9 -> class 9
    assert file_content(usim["ef-ad"]) == bytes.fromhex("00000002")

    aka = only(elements, "akaParameter")
    kind, algo = aka["algoConfiguration"]
    assert kind == "algoParameter"
    assert algo["algorithmID"] == 1  # milenage
    assert algo["key"] == DEFAULT_KI and algo["opc"] == DEFAULT_OPC
    # The standard MILENAGE constants are the DEFAULTs, so DER leaves them out.
    assert algo["rotationConstants"] == bytes.fromhex("4000204060")
    aka_raw = [t.raw for t in iter_tlvs(generated) if t.tag == b"\xa4"][0]
    assert bytes.fromhex("4000204060") not in aka_raw

    pins = [value for kind, value in elements if kind == "pinCodes"]
    mf_pins = pins[0]["pinCodes"][1]
    assert mf_pins[0]["keyReference"] == 1
    assert mf_pins[0]["pinValue"] == b"0000\xff\xff\xff\xff"
    puks = only(elements, "pukCodes")["pukCodes"]
    assert puks[0]["pukValue"] == b"12345678"


def test_default_opc_is_the_35208_test_set_1_value() -> None:
    # OPc = AES_K(OP) xor OP (3GPP TS 35.206 4.1) with OP of TS 35.208 test set 1.
    op = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
    encryptor = Cipher(algorithms.AES(DEFAULT_KI), modes.ECB()).encryptor()
    cipher = encryptor.update(op) + encryptor.finalize()
    assert bytes(a ^ b for a, b in zip(cipher, op)) == DEFAULT_OPC


def test_generate_uses_its_arguments() -> None:
    upp = generate_test_profile(iccid="8949449999999990007", imsi="262019876543210",
                                ki=bytes(range(16)), opc=bytes(16), pin1="1234")
    elements = decode_all(upp)
    assert iccid_from_bcd(only(elements, "header")["iccid"]) == "8949449999999990007"
    assert file_content(only(elements, "usim")["ef-imsi"]) == encode_ef_imsi("262019876543210")
    assert file_content(only(elements, "usim")["ef-acc"]) == bytes.fromhex("0001")  # class 0
    assert only(elements, "akaParameter")["algoConfiguration"][1]["key"] == bytes(range(16))


@pytest.mark.parametrize("kwargs", [
    {"iccid": "89000123456789012342"},  # wrong Luhn digit
    {"iccid": "8900012345678901234X"},
    {"imsi": "00101"},
    {"ki": bytes(15)},
    {"pin1": "12"},
    {"puk1": "1234"},
])
def test_generate_rejects_bad_input(kwargs: dict) -> None:
    args = {"iccid": DEFAULT_ICCID, "imsi": "001010123456789", "ki": DEFAULT_KI, "opc": DEFAULT_OPC}
    args.update(kwargs)
    with pytest.raises(ValueError):
        generate_test_profile(**args)


# -- inventory -------------------------------------------------------------------


def test_inventory_loads_ts48_profiles(shared_testdata: Path) -> None:
    inventory = ProfileInventory.load(shared_testdata / "upp")
    assert len(inventory) == 3
    assert {p.matching_id: p.iccid for p in inventory} == TS48_ICCIDS
    profile = inventory.get("TS48V4-SAIP2-3-BERTLV-UNIQUE")
    assert profile is not None
    assert profile.iccid == "8949449999999990122"
    assert profile.iccid_ef == bytes.fromhex("989444999999990921f2")
    assert profile.profile_name == TS48_PROFILE_TYPE
    assert profile.profile_class == "test"
    assert profile.upp == (shared_testdata / "upp" / "TS48V4-SAIP2-3-BERTLV-UNIQUE.der").read_bytes()
    assert inventory.get("ts48v4-saip2-3-bertlv-unique") is None  # exact match only
    assert inventory.get("TS48V4-SAIP2-3-BERTLV-UNIQUE.der") is None


def test_iccid_ef_property() -> None:
    profile = Profile(matching_id="x", upp=b"", iccid="89000123456789012341",
                      profile_name="", service_provider_name="", profile_class="test")
    assert profile.iccid_ef == bytes.fromhex("98001032547698103214")


def test_get_does_not_touch_the_disk(tmp_path: Path, generated: bytes) -> None:
    (tmp_path / "P1.der").write_bytes(generated)
    inventory = ProfileInventory.load(tmp_path)
    (tmp_path / "P1.der").unlink()
    profile = inventory.get("P1")
    assert profile is not None and profile.upp == generated


def test_ensure_test_profile_only_fills_an_empty_folder(tmp_path: Path, generated: bytes) -> None:
    upp_dir = tmp_path / "upp"  # missing: created
    path = ensure_test_profile(upp_dir)
    assert path == upp_dir / "SMDPP-TEST-1.der"
    assert path.read_bytes() == generated
    assert [p.name for p in upp_dir.iterdir()] == ["SMDPP-TEST-1.der"]
    # Second call: the folder has a UPP now, nothing is written.
    path.write_bytes(b"changed")
    assert ensure_test_profile(upp_dir) is None
    assert path.read_bytes() == b"changed"

    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.der").write_bytes(b"not even a UPP")
    assert ensure_test_profile(other) is None
    assert [p.name for p in other.iterdir()] == ["mine.der"]



def test_ensured_test_profile_is_in_the_inventory(tmp_path: Path) -> None:
    ensure_test_profile(tmp_path)
    profile = ProfileInventory.load(tmp_path).get("SMDPP-TEST-1")
    assert profile is not None
    assert profile.iccid == DEFAULT_ICCID
    assert profile.profile_name == DEFAULT_PROFILE_TYPE
    assert profile.profile_class == "test"


def test_bad_files_are_skipped_with_a_warning(tmp_path: Path, generated: bytes,
                                              caplog: pytest.LogCaptureFixture) -> None:
    elements = [t.raw for t in iter_tlvs(generated)]
    bad_iccid = generated.replace(bytes.fromhex("830a89000123456789012341"),
                                  bytes.fromhex("830a8a000123456789012341"))
    assert bad_iccid != generated
    files = {
        "a-good.der": generated,
        "bad name!.der": generate_test_profile(iccid="8949449999999990007", imsi="001010000000001",
                                               ki=DEFAULT_KI, opc=DEFAULT_OPC),
        "truncated.der": generated[:-3],
        "garbage.der": b"hello",
        "empty.der": b"",
        "no-header-first.der": b"".join(elements[1:2] + elements[:1] + elements[2:]),
        "no-end.der": b"".join(elements[:-1]),
        "bad-iccid.der": bad_iccid,
        "z-duplicate-iccid.der": generated,
        "notes.txt": b"ignored: not a .der file",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="smdpp.profiles.inventory"):
        inventory = ProfileInventory.load(tmp_path)
    assert [p.matching_id for p in inventory] == ["a-good", "z-duplicate-iccid"]
    warned = {Path(r.args[0]).name for r in caplog.records if r.levelno == logging.WARNING}
    assert warned == set(files) - {"a-good.der", "z-duplicate-iccid.der", "notes.txt"}


def test_profiles_sharing_an_iccid_are_all_served(tmp_path: Path, shared_testdata: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """As osmo-smdpp: every file under its own matchingId; one line names the shared ICCIDs."""
    v2 = (shared_testdata / "upp" / "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der").read_bytes()
    v4 = (shared_testdata / "upp" / "TS48V4-SAIP2-3-BERTLV-UNIQUE.der").read_bytes()
    for name, data in (("A", v2), ("B", v2), ("C", v2), ("D", v4), ("E", v4), ("F", v4)):
        (tmp_path / f"{name}.der").write_bytes(data)
    (tmp_path / "G.der").write_bytes(generate_test_profile(iccid="8949449999999990999",
                                                           imsi="001010000000001",
                                                           ki=DEFAULT_KI, opc=DEFAULT_OPC))
    with caplog.at_level(logging.INFO, logger="smdpp.profiles.inventory"):
        inventory = ProfileInventory.load(tmp_path)
    assert sorted(p.matching_id for p in inventory) == list("ABCDEFG")
    assert {m: inventory.get(m).upp for m in "ABC"} == {m: v2 for m in "ABC"}
    assert shared_iccids(inventory) == {"8949449999999990007": ["A", "B", "C"],
                                        "8949449999999990122": ["D", "E", "F"]}
    lines = [r.getMessage() for r in caplog.records if "sharing an ICCID" in r.getMessage()]
    assert lines == ["profiles sharing an ICCID, each served under its own matchingId to any eUICC: "
                     "8949449999999990007 (3: A, B, C); 8949449999999990122 (3: D, E, F)"]
