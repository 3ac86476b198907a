"""The virtual eUICC at APDU level (smdpp.euicc.apdu, es10, es10c, bpp_pieces, state).

The SM-DP+ side is the stand-in of test_euicc (it signs with a test PKI and
binds real BPPs); every ES10 command goes as STORE DATA blocks through
:class:`ApduCard`, as an LPA sends it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import stat
from pathlib import Path
from typing import Any

import pytest

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.euicc.apdu import ATR, ApduCard, Es10Refused, parse_command
from smdpp.euicc.bpp_pieces import BppAssembler, BppPieceError, read_header
from smdpp.euicc.es10 import VirtualEuicc
from smdpp.euicc.es10c import iccid_to_ef
from smdpp.euicc.lpac_bridge import StdioBridge
from smdpp.euicc.state import StateError, load_state, lock_card, save_state
from smdpp.euicc.vpcd import VpcdProtocol
from smdpp.pki.ecdsa import verify_plain
from smdpp.rsp.messages import OtherSignedNotification, parse_pending_notification
from tests.e2e.stdio_lpa import bpp_pieces
from tests.unit.test_euicc import ICCID, ICCID_EF, Smdp, decode_auth_response, pki  # noqa: F401

ISD_R = bytes.fromhex("A0000005591010FFFFFFFF8900000100")


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


# --- the APDU layer with an echoing ES10 handler ---------------------------------------


class Echo:
    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.answer: bytes | None = None

    def __call__(self, request: bytes) -> bytes:
        self.requests.append(request)
        if request == b"refuse":
            raise Es10Refused(0x6A88, "no")
        return self.answer if self.answer is not None else request


def selected_card(echo: Echo) -> ApduCard:
    card = ApduCard(echo)
    assert card.transmit(bytes.fromhex("0070000001")) == bytes.fromhex("019000")
    fci = card.transmit(bytes.fromhex("01A4040010") + ISD_R + b"\x00")
    assert sw(fci) == 0x9000 and fci[:2] == b"\x6f\x18" and ISD_R in fci
    return card


def test_parse_command_cases() -> None:
    assert parse_command(bytes.fromhex("80E29100")).data == b""
    assert parse_command(bytes.fromhex("80C0000010")).le == 16
    case4 = parse_command(bytes.fromhex("80E2910003AABBCC00"))
    assert (case4.data, case4.le) == (bytes.fromhex("AABBCC"), 256)
    extended = parse_command(bytes.fromhex("80E2910000000201020000"))
    assert (extended.data, extended.le) == (b"\x01\x02", 65536)
    for bad in ("80E2", "80E2910005AABB", "80E29100000005AA"):
        with pytest.raises(ValueError):
            parse_command(bytes.fromhex(bad))


def test_channels_select_and_status_words() -> None:
    echo = Echo()
    card = ApduCard(echo)
    assert card.transmit(bytes.fromhex("81E2910001AA")) == bytes.fromhex("6881")  # channel 1 not open
    assert card.transmit(bytes.fromhex("0070000001")) == bytes.fromhex("019000")
    assert card.transmit(bytes.fromhex("0070000001")) == bytes.fromhex("029000")
    assert card.transmit(bytes.fromhex("81E2910001AA")) == bytes.fromhex("6985")  # nothing selected
    assert card.transmit(bytes.fromhex("01A4040005A000000001")) == bytes.fromhex("6A82")
    assert card.transmit(bytes.fromhex("01A4040C10") + ISD_R) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("01E2910001AA")) == bytes.fromhex("6E00")  # not the GP class
    assert card.transmit(bytes.fromhex("81CA000000")) == bytes.fromhex("6D00")
    assert card.transmit(bytes.fromhex("81E2")) == bytes.fromhex("6700")
    assert card.transmit(bytes.fromhex("81E2910004AA")) == bytes.fromhex("6700")  # Lc 4, 1 byte
    assert card.transmit(bytes.fromhex("81C0000000")) == bytes.fromhex("6985")  # nothing to get
    assert card.transmit(bytes.fromhex("81E2910006") + b"refuse") == bytes.fromhex("6A88")
    assert card.transmit(bytes.fromhex("81E2920001AA")) == bytes.fromhex("6A86")  # P1
    assert card.transmit(bytes.fromhex("0070800000")) == bytes.fromhex("6A86")  # basic channel
    assert card.transmit(bytes.fromhex("00708002")) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("82E2910001AA")) == bytes.fromhex("6881")
    assert echo.requests == [b"refuse"]
    card.reset()
    assert card.transmit(bytes.fromhex("81E2910001AA")) == bytes.fromhex("6881")


def test_store_data_blocks_and_get_response() -> None:
    echo = Echo()
    card = selected_card(echo)
    assert card.transmit(bytes.fromhex("81E2110002AAAA")) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("81E2110102BBBB")) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("81E2910202CCCC")) == bytes.fromhex("AAAABBBBCCCC9000")
    # a wrong block number drops the command; the next one starts again at block 0
    assert card.transmit(bytes.fromhex("81E2110001AA")) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("81E2910501BB")) == bytes.fromhex("6A86")
    assert card.transmit(bytes.fromhex("81E2910101BB")) == bytes.fromhex("6A86")
    assert card.transmit(bytes.fromhex("81E2910001DD")) == bytes.fromhex("DD9000")
    assert echo.requests == [bytes.fromhex("AAAABBBBCCCC"), b"\xdd"]
    # 600 bytes: 256 + '6100' (256 more), 256 + '6158', then the last 88
    echo.answer = bytes(range(256)) * 2 + bytes(88)
    first = card.transmit(bytes.fromhex("81E2910001EE00"))
    assert len(first) == 258 and first[-2:] == b"\x61\x00"
    second = card.transmit(bytes.fromhex("81C0000000"))
    assert len(second) == 258 and second[-2:] == b"\x61\x58"
    third = card.transmit(bytes.fromhex("81C0000058"))
    assert third == bytes(88) + b"\x90\x00"
    assert first[:-2] + second[:-2] + third[:-2] == echo.answer
    # another command on the channel drops an unread answer; one on another channel does not
    card.transmit(bytes.fromhex("81E2910001EE00"))
    assert sw(card.transmit(bytes.fromhex("0070000001"))) == 0x9000
    assert sw(card.transmit(bytes.fromhex("81C0000000"))) == 0x6158
    card.transmit(bytes.fromhex("81E2910001EE00"))
    assert card.transmit(bytes.fromhex("01A4040C10") + ISD_R) == bytes.fromhex("9000")
    assert card.transmit(bytes.fromhex("81C0000000")) == bytes.fromhex("6985")


def test_vpcd_protocol() -> None:
    protocol = VpcdProtocol(ApduCard(Echo()))
    assert protocol.handle(b"\x04") == ATR
    assert protocol.handle(b"\x01") is None and protocol.handle(b"\x02") is None
    assert protocol.handle(bytes.fromhex("0070000001")) == bytes.fromhex("019000")
    protocol.handle(b"\x00")  # power off closes the channels
    assert protocol.handle(bytes.fromhex("81E2910001AA")) == bytes.fromhex("6881")


def test_read_header_and_assembler_order() -> None:
    assert read_header(bytes.fromhex("BF3682010000")) == (b"\xbf\x36", 256, 5)
    assert read_header(bytes.fromhex("A1")[:1] + b"\x05") == (b"\xa1", 5, 2)
    for bad in ("", "BF", "A180", "A18401"):
        with pytest.raises(ValueError):
            read_header(bytes.fromhex(bad))
    assembler = BppAssembler()
    with pytest.raises(BppPieceError) as refused:
        assembler.feed(bytes.fromhex("A000"))
    assert refused.value.error == (0, 1)  # initialiseSecureChannel, incorrectInputValues
    with pytest.raises(BppPieceError, match="one whole BF23"):
        assembler.feed(bytes.fromhex("BF360A") + bytes.fromhex("BF2300") + bytes.fromhex("A000"))
    assert assembler.feed(bytes.fromhex("BF3608BF2300")) is None
    with pytest.raises(BppPieceError) as refused:
        assembler.feed(bytes.fromhex("A100"))  # sequenceOf88 where ConfigureISDP is due
    assert refused.value.error == (1, 7)  # configureISDP, scp03tStructureError
    assert assembler.state == "start"


# --- the whole card over APDUs -----------------------------------------------------------


class Lpa:
    """ES10 as STORE DATA blocks of 120 bytes on channel 1, with GET RESPONSE."""

    def __init__(self, vcard: VirtualEuicc) -> None:
        self.vcard = vcard
        self.card = selected_card_for(vcard)

    def es10(self, request: bytes) -> tuple[bytes, int]:
        blocks = [request[i:i + 120] for i in range(0, len(request), 120)] or [b""]
        answer = b""
        status = 0
        for number, block in enumerate(blocks):
            p1 = 0x91 if number == len(blocks) - 1 else 0x11
            response = self.card.transmit(bytes([0x81, 0xE2, p1, number, len(block)]) + block)
            answer, status = answer + response[:-2], sw(response)
            while status >> 8 == 0x61:
                response = self.card.transmit(bytes([0x81, 0xC0, 0, 0, status & 0xFF]))
                answer, status = answer + response[:-2], sw(response)
            if status != 0x9000:
                return answer, status
        return answer, status

    def ok(self, request: bytes) -> bytes:
        answer, status = self.es10(request)
        assert status == 0x9000, hex(status)
        return answer

    def prepare(self, smdp: Smdp) -> tuple[bytes, bytes]:
        """AuthenticateServer and PrepareDownload over APDUs; (transactionId, otPK.EUICC.ECKA)."""
        challenge = parse_single(self.ok(bytes.fromhex("BF2E00"))).child(b"\x80").value
        choice, ok = decode_auth_response(self.ok(smdp.authenticate_request(challenge)))
        assert choice == "authenticateResponseOk"
        tid = ok["euiccSigned1"]["transactionId"]
        prepared = rsp().decode("PrepareDownloadResponse",
                                self.ok(smdp.prepare_request(tid, ok["euiccSignature1"])))
        assert prepared[0] == "downloadResponseOk"
        return tid, prepared[1]["euiccSigned2"]["euiccOtpk"]

    def load(self, pieces: list[bytes]) -> dict[str, Any]:
        for piece in pieces:
            answer = self.ok(piece)
            if answer:
                return rsp().decode("ProfileInstallationResult", answer)["profileInstallationResultData"]
        raise AssertionError("no ProfileInstallationResult")


def selected_card_for(vcard: VirtualEuicc) -> ApduCard:
    card = ApduCard(vcard.handle)
    assert card.transmit(bytes.fromhex("0070000001")) == bytes.fromhex("019000")
    assert sw(card.transmit(bytes.fromhex("01A4040010") + ISD_R + b"\x00")) == 0x9000
    return card


@pytest.fixture
def vcard(pki: dict[str, Path], tmp_path: Path) -> VirtualEuicc:  # noqa: F811
    return VirtualEuicc.open(tmp_path / "card.json", pki["euicc"])


def downloaded(lpa: Lpa, smdp: Smdp) -> dict[str, Any]:
    tid, otpk = lpa.prepare(smdp)
    return lpa.load(bpp_pieces(smdp.bpp(tid, otpk, lpa.vcard.card.eid_bytes)))


def test_download_in_pieces_persists(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    lpa, smdp = Lpa(vcard), Smdp(pki["certs"])
    result = downloaded(lpa, smdp)
    assert result["finalResult"][0] == "successResult"
    state = load_state(vcard.path)
    [record] = state.profiles
    assert (record.iccid, record.state, record.smdp_address) == (ICCID, "disabled", "testsmdpplus1.example.com")
    assert state.notifications.keys() == {1}
    assert stat.S_IMODE(vcard.path.stat().st_mode) == 0o600
    # a new process sees the same card: GetProfilesInfo, GetEID, ListNotification
    again = Lpa(VirtualEuicc.open(vcard.path))
    info = parse_single(again.ok(bytes.fromhex("BF2D00")), b"\xbf\x2d").child(b"\xa0").children()
    assert [i.tag for i in info] == [b"\xe3"] and info[0].child(b"\x5a").value == ICCID_EF
    assert info[0].child(b"\x9f\x70").value == b"\x00"
    eid = parse_single(again.ok(bytes.fromhex("BF3E035C015A"))).child(b"\x5a").value
    assert eid == vcard.card.eid_bytes
    listed = parse_single(again.ok(bytes.fromhex("BF2800"))).child(b"\xa0").children()
    assert [m.child(b"\x80").value for m in listed] == [b"\x01"]


def test_enable_disable_delete_notifications_verify(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    lpa, smdp = Lpa(vcard), Smdp(pki["certs"])
    downloaded(lpa, smdp)
    target = encode_tlv(b"\xa0", encode_tlv(b"\x5a", ICCID_EF))
    assert lpa.ok(encode_tlv(b"\xbf\x31", target + b"\x81\x01\xff")) == bytes.fromhex("BF3103800100")
    assert lpa.ok(encode_tlv(b"\xbf\x31", target + b"\x81\x01\xff")) == bytes.fromhex("BF3103800102")
    assert lpa.ok(encode_tlv(b"\xbf\x33", encode_tlv(b"\x5a", ICCID_EF))) == bytes.fromhex("BF3303800102")
    assert lpa.ok(encode_tlv(b"\xbf\x32", target + b"\x81\x01\xff")) == bytes.fromhex("BF3203800100")
    unknown = encode_tlv(b"\xa0", encode_tlv(b"\x5a", iccid_to_ef("8900000000000000001")))
    assert lpa.ok(encode_tlv(b"\xbf\x31", unknown + b"\x81\x01\xff")) == bytes.fromhex("BF3103800101")
    assert lpa.ok(encode_tlv(b"\xbf\x33", encode_tlv(b"\x5a", ICCID_EF))) == bytes.fromhex("BF3303800100")
    # install, enable, disable, delete; each other notification parses and verifies as smdpp reads it
    pending = parse_single(lpa.ok(bytes.fromhex("BF2B00")), b"\xbf\x2b").child(b"\xa0").children()
    assert len(pending) == 4
    public_key = vcard.card.public_key
    operations = []
    for note in pending[1:]:
        parsed = parse_pending_notification(note.raw)
        assert isinstance(parsed, OtherSignedNotification)
        assert verify_plain(public_key, parsed.signature, parsed.data)
        assert parsed.iccid == ICCID_EF and parsed.notification_address == "testsmdpplus1.example.com"
        operations.append((parsed.seq_number, parsed.operation))
    assert operations == [(2, "notificationEnable"), (3, "notificationDisable"), (4, "notificationDelete")]
    # retrieve one by seqNumber, remove it, a second removal finds nothing
    one = parse_single(lpa.ok(bytes.fromhex("BF2B05A003800103")))
    assert len(one.child(b"\xa0").children()) == 1
    assert lpa.ok(bytes.fromhex("BF3003800103")) == bytes.fromhex("BF3003800100")
    assert lpa.ok(bytes.fromhex("BF3003800103")) == bytes.fromhex("BF3003800101")
    nothing = lpa.ok(bytes.fromhex("BF2B05A003800103"))
    assert nothing == bytes.fromhex("BF2B03810101")
    assert sorted(load_state(vcard.path).notifications) == [1, 2, 4]


def test_hostile_bpp_pieces_keep_the_card_intact(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    lpa, smdp = Lpa(vcard), Smdp(pki["certs"])
    before = vcard.path.read_bytes()
    # out of order: BPP pieces without a prepared download
    assert lpa.es10(bytes.fromhex("BF360A") + bytes.fromhex("BF2300"))[1] == 0x6985
    assert lpa.es10(bytes.fromhex("A000"))[1] == 0x6985
    # out of order: PrepareDownload without AuthenticateServer, AuthenticateServer without a challenge
    answer = rsp().decode("PrepareDownloadResponse", lpa.ok(smdp.prepare_request(os.urandom(16), bytes(64))))
    assert answer[0] == "downloadResponseError" and answer[1]["downloadErrorCode"] == 4  # noSessionContext
    choice, error = decode_auth_response(lpa.ok(smdp.authenticate_request(os.urandom(16))))
    assert choice == "authenticateResponseError" and error["authenticateErrorCode"] == 6  # challenge mismatch
    # truncated TLVs and unknown functions
    assert lpa.es10(bytes.fromhex("BF2D055C01"))[1] == 0x6A80
    assert lpa.es10(bytes.fromhex("BF3105A003"))[1] == 0x6A80
    assert lpa.es10(bytes.fromhex("BF9900"))[1] == 0x6A88
    assert vcard.path.read_bytes() == before

    # a flipped last byte: in smdpSign (end of the BF23 piece) -> initialiseSecureChannel,
    # invalidSignature; in the MAC of the first '88' -> storeMetadata, scp03tSecurityError; in the
    # MAC of the first '86' -> loadProfileElements, scp03tSecurityError.  Each is answered by the
    # piece that carries it, and the session is over.
    cases = {"signature": (b"\xbf", (0, 2)), "88": (b"\x88", (2, 8)), "86": (b"\x86", (5, 8))}
    for name, (first_byte, expected) in cases.items():
        tid, otpk = lpa.prepare(smdp)
        pieces = bpp_pieces(smdp.bpp(tid, otpk, vcard.card.eid_bytes))
        index = next(i for i, piece in enumerate(pieces) if piece[:1] == first_byte)
        pieces[index] = pieces[index][:-1] + bytes([pieces[index][-1] ^ 1])
        answered = next(i for i, piece in enumerate(pieces) if lpa.ok(piece) or i == len(pieces) - 1)
        assert answered == index, name
        assert lpa.es10(pieces[index + 1])[1] == 0x6985, name
        result = rsp().decode("ProfileInstallationResult", parse_single(
            lpa.ok(bytes.fromhex("BF2B00"))).child(b"\xa0").children()[-1].raw)["profileInstallationResultData"]
        kind, error = result["finalResult"]
        assert kind == "errorResult", name
        assert (error["bppCommandId"], error["errorReason"]) == expected, name
    # a piece out of order within the BPP: an '86' where ConfigureISDP was due
    tid, otpk = lpa.prepare(smdp)
    pieces = bpp_pieces(smdp.bpp(tid, otpk, vcard.card.eid_bytes))
    result = lpa.load([pieces[0], pieces[-1]])
    assert result["finalResult"][1]["bppCommandId"] == 1  # configureISDP
    # the session is over: the next piece is out of order
    assert lpa.es10(pieces[1])[1] == 0x6985
    state = load_state(vcard.path)
    assert state.profiles == [] and len(state.notifications) == 4  # four error results
    # and the card still downloads a good package
    assert downloaded(lpa, smdp)["finalResult"][0] == "successResult"


def test_configured_addresses_rat_nickname_reset(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    lpa = Lpa(vcard)
    assert lpa.ok(bytes.fromhex("BF3C00")) == encode_tlv(b"\xbf\x3c", encode_tlv(b"\x81", b"testrootsmds.example.com"))
    assert lpa.ok(encode_tlv(b"\xbf\x3f", encode_tlv(b"\x80", b"smdp.example.org"))) == bytes.fromhex("BF3F03800100")
    addresses = parse_single(lpa.ok(bytes.fromhex("BF3C00")))
    assert addresses.child(b"\x80").value == b"smdp.example.org"
    assert lpa.ok(bytes.fromhex("BF4300")) == bytes.fromhex("BF4302A000")
    assert rsp().decode("EUICCInfo1", lpa.ok(bytes.fromhex("BF2000")))["svn"] == b"\x02\x02\x00"
    assert len(lpa.ok(bytes.fromhex("BF2200"))) > 50
    downloaded(lpa, Smdp(pki["certs"]))
    nick = encode_tlv(b"\xbf\x29", encode_tlv(b"\x5a", ICCID_EF) + encode_tlv(b"\x90", "mine".encode()))
    assert lpa.ok(nick) == bytes.fromhex("BF2903800100")
    assert load_state(vcard.path).profiles[0].nickname == "mine"
    # EuiccMemoryReset: deleteFieldLoadedTestProfiles does not touch an operational profile
    assert lpa.ok(bytes.fromhex("BF340482020640")) == bytes.fromhex("BF3403800101")
    # deleteOperationalProfiles and resetDefaultSmdpAddress
    assert lpa.ok(bytes.fromhex("BF3404820205A0")) == bytes.fromhex("BF3403800100")
    state = load_state(vcard.path)
    assert state.profiles == [] and state.default_dp_address == ""


# --- the state file ------------------------------------------------------------------------


def test_state_write_is_atomic(vcard: VirtualEuicc, monkeypatch: pytest.MonkeyPatch) -> None:
    before = vcard.path.read_bytes()
    vcard.state.default_dp_address = "changed.example.com"

    def crash(*_: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_state(vcard.state, vcard.path)
    assert vcard.path.read_bytes() == before
    assert [p.name for p in vcard.path.parent.iterdir()] == ["card.json"]  # no temporary file left


@pytest.mark.parametrize("text, fault", [
    ("not json", "not JSON"),
    ('{"format": "other"}', "not a smdpp-virtual-euicc/1 file"),
    ('{"format": "smdpp-virtual-euicc/1", "identity": "x", "profiles": [{"iccid": "12", '
     '"isdp_aid": "zz"}]}', "ISD-P AID"),
    ('{"format": "smdpp-virtual-euicc/1", "identity": "x", "notifications": {"1": "00"}, '
     '"seq_number": 0}', "seq_number"),
    ('{"format": "smdpp-virtual-euicc/1", "identity": "x", "profiles": [{"iccid": "1", "isdp_aid": "01", '
     '"state": "enabled"}, {"iccid": "2", "isdp_aid": "02", "state": "enabled"}]}', "more than one enabled"),
])
def test_damaged_state_is_named(tmp_path: Path, text: str, fault: str) -> None:
    path = tmp_path / "card.json"
    path.write_text(text)
    with pytest.raises(StateError, match=fault):
        load_state(path)
    assert path.read_text() == text


# --- lpac's stdio protocol ----------------------------------------------------------------


def _line(kind: str, payload: object) -> bytes:
    return json.dumps({"type": kind, "payload": payload}).encode() + b"\n"


def test_stdio_bridge_answers_and_passes_through() -> None:
    echo = Echo()
    with socket.socket() as closed:  # a port the kernel picked, closed again: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    bridge = StdioBridge(ApduCard(echo), f"http://127.0.0.1:{port}")

    def ask(kind: str, payload: object) -> dict[str, Any]:
        answer = bridge.handle_line(_line(kind, payload))
        assert answer is not None and answer.endswith(b"\n")
        reply = json.loads(answer)
        assert reply["type"] == kind
        return reply["payload"]

    assert ask("apdu", {"func": "connect", "param": None}) == {"ecode": 0}
    assert ask("apdu", {"func": "logic_channel_open", "param": ISD_R.hex()}) == {"ecode": 1}
    assert ask("apdu", {"func": "logic_channel_open", "param": "A000000001"}) == {"ecode": -1}
    assert ask("apdu", {"func": "transmit", "param": "81E2910002BF20"}) == {"ecode": 0, "data": "BF209000"}
    assert ask("apdu", {"func": "transmit", "param": "zz"}) == {"ecode": -1}
    assert ask("apdu", {"func": "transmit", "param": None}) == {"ecode": -1}
    assert ask("apdu", {"func": "reboot", "param": None}) == {"ecode": -1}
    assert ask("apdu", {"func": "logic_channel_close", "param": "0102"}) == {"ecode": -1}
    assert ask("apdu", {"func": "logic_channel_close", "param": "01"}) == {"ecode": 0}
    assert ask("apdu", "not an object") == {"ecode": -1}
    # lpac's own lines and anything unreadable pass through
    for line in (_line("lpa", {"code": 0}), _line("progress", {}), b"plain text\n", b"{broken\n",
                 b"[1, 2]\n", b"{" * 100000 + b"\n"):
        assert bridge.handle_line(line) is None
    # an HTTP request that cannot be carried: no rx, which lpac takes as a transport failure
    assert ask("http", {"url": "https://x/gsma/rsp2/es9plus/f", "tx": "7B7D", "headers": []}) == {"rcode": 0}
    assert ask("http", {"url": 5, "tx": "7B7D"}) == {"rcode": 0}
    assert ask("http", {"url": "https://x/", "tx": "7B7D", "headers": ["no colon"]}) == {"rcode": 0}
    # without --http-bridge lpac does its own HTTP: an http line is not ours
    assert StdioBridge(ApduCard(echo)).handle_line(_line("http", {"url": "https://x/"})) is None
    with pytest.raises(ValueError):
        StdioBridge(ApduCard(echo), "ftp://host")


def test_one_process_per_card(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    fd = lock_card(path)
    try:
        code = subprocess.run([sys.executable, "-c", "import sys; from smdpp.euicc.state import lock_card; "
                               f"lock_card({str(path)!r})"], capture_output=True, text=True)
        assert code.returncode != 0 and "in use by another process" in code.stderr
    finally:
        os.close(fd)


def test_unwritable_state_is_a_memory_failure(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    """The state file cannot be written (its folder is gone): SW '6581', no traceback."""
    lpa = Lpa(vcard)
    vcard.path = vcard.path.parent / "gone" / "card.json"  # a folder that does not exist
    assert lpa.es10(encode_tlv(b"\xbf\x3f", encode_tlv(b"\x80", b"x.example")))[1] == 0x6581


def test_cancel_session_and_profile_search(vcard: VirtualEuicc, pki: dict[str, Path]) -> None:  # noqa: F811
    lpa, smdp = Lpa(vcard), Smdp(pki["certs"])
    tid, _ = lpa.prepare(smdp)
    request = rsp().encode("CancelSessionRequest", {"transactionId": tid, "reason": 0})
    choice, ok = rsp().decode("CancelSessionResponse", lpa.ok(request))
    assert choice == "cancelSessionResponseOk"
    signed = ok["euiccCancelSessionSigned"]
    assert (signed["transactionId"], signed["reason"]) == (tid, 0)
    # the session is gone: a second cancel is refused, a BPP piece is out of order
    assert rsp().decode("CancelSessionResponse", lpa.ok(request)) == ("cancelSessionResponseError", 5)
    assert lpa.es10(bytes.fromhex("BF3605BF2300"))[1] == 0x6985
    downloaded(lpa, smdp)
    by_iccid = encode_tlv(b"\xbf\x2d", encode_tlv(b"\xa0", encode_tlv(b"\x5a", ICCID_EF))
                          + encode_tlv(b"\x5c", b"\x5a\x9f\x70"))
    [info] = parse_single(lpa.ok(by_iccid)).child(b"\xa0").children()
    assert [t.tag for t in info.children()] == [b"\x5a", b"\x9f\x70"]  # only the tags asked for
    by_class = encode_tlv(b"\xbf\x2d", encode_tlv(b"\xa0", encode_tlv(b"\x95", b"\x00")))
    assert parse_single(lpa.ok(by_class)).child(b"\xa0").value == b""  # no test profile
    assert lpa.es10(encode_tlv(b"\xbf\x2d", encode_tlv(b"\x5c", b"\x9f")))[1] == 0x6A80  # cut tag
