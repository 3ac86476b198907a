"""A test LPA that speaks lpac's stdio driver protocol, for ``smdpp-euicc lpac`` (lpac cannot be built here).

Run as ``$LPAC``: like lpac with ``LPAC_APDU=stdio`` and ``LPAC_HTTP=stdio`` it
writes ``{"type":"apdu","payload":{"func":..,"param":..}}`` and
``{"type":"http","payload":{"url":..,"tx":..,"headers":[..]}}`` lines on stdout,
reads each answer line on stdin, and reports like lpac with ``lpa`` and
``progress`` lines.  ES10 goes as STORE DATA in blocks of 120 bytes on the
logical channel of the ISD-R, long answers are fetched with GET RESPONSE,
and the BPP is sent in the pieces of SGP.22 5.7.6, as lpac does.

Commands (lpac's names): ``chip info``; ``profile list|enable ID|disable ID|
delete ID|nickname ID NAME|download -s ADDR -m ID [-c CC]``; ``notification
list|process [-a] [-r] [SEQ...]|remove [-a] [SEQ...]``.  Exit status 0 on
success, 255 on failure (lpac's -1).
"""
from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import Tlv, encode_tlv, parse_single
from smdpp.euicc.bpp_pieces import read_header
from smdpp.euicc.client import (
    authenticate_server_request,
    confirmation_code_hash,
    encode_ctx_params1,
    prepare_download_request,
)
from smdpp.euicc.es10c import iccid_to_ef
from smdpp.euicc.installation import iccid_from_ef

ISD_R = "A0000005591010FFFFFFFF8900000100"
EVENTS = ("install", "enable", "disable", "delete")
PROFILE_CLASSES = {0: "test", 1: "provisioning", 2: "operational"}
HEADERS = ["User-Agent: gsma-rsp-lpad", "X-Admin-Protocol: gsma/rsp/v2.2.0",
           "Content-Type: application/json"]
STDOUT = sys.stdout


class Failed(Exception):
    def __init__(self, function: str, detail: Any = None) -> None:
        super().__init__(function)
        self.function = function
        self.detail = detail


def emit(kind: str, payload: dict[str, Any]) -> None:
    STDOUT.write(json.dumps({"type": kind, "payload": payload}) + "\n")
    STDOUT.flush()


def exchange(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    emit(kind, payload)
    line = sys.stdin.readline()
    answer = json.loads(line)
    if answer.get("type") != kind:
        raise Failed("driver", f"answer of type {answer.get('type')!r}")
    return answer["payload"]


def progress(step: str, data: Any = None) -> None:
    emit("progress", {"code": 0, "message": step, "data": data})


class Card:
    """ES10 on the logical channel of the ISD-R; the APDUs go over lpac's stdio APDU driver.

    Subclasses replace :meth:`open`, :meth:`close` and :meth:`transmit` (PC/SC).
    """

    def __init__(self) -> None:
        self.channel = self.open()

    def open(self) -> int:
        if exchange("apdu", {"func": "connect", "param": None})["ecode"] < 0:
            raise Failed("euicc_init", "connect")
        channel = exchange("apdu", {"func": "logic_channel_open", "param": ISD_R})["ecode"]
        if channel < 0:
            raise Failed("euicc_init", "logic_channel_open")
        return channel

    def close(self) -> None:
        exchange("apdu", {"func": "logic_channel_close", "param": f"{self.channel:02X}"})
        exchange("apdu", {"func": "disconnect", "param": None})

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        answer = exchange("apdu", {"func": "transmit", "param": apdu.hex().upper()})
        data = bytes.fromhex(answer.get("data") or "")
        if answer["ecode"] < 0 or len(data) < 2:
            raise Failed("transmit", answer)
        return data[:-2], int.from_bytes(data[-2:], "big")

    def http(self, url: str, tx: bytes) -> tuple[int, bytes | None]:
        """POST over lpac's stdio HTTP driver; (rcode, body), body None on a transport failure."""
        answer = exchange("http", {"url": url, "tx": tx.hex(), "headers": HEADERS})
        return answer.get("rcode", 0), bytes.fromhex(answer["rx"]) if "rx" in answer else None

    def es10(self, request: bytes) -> bytes:
        cla = 0x80 | self.channel
        blocks = [request[i:i + 120] for i in range(0, len(request), 120)]
        answer = b""
        for number, block in enumerate(blocks):
            p1 = 0x91 if number == len(blocks) - 1 else 0x11
            data, sw = self.transmit(bytes([cla, 0xE2, p1, number, len(block)]) + block + b"\x00")
            answer += data
            while sw >> 8 == 0x61:
                data, sw = self.transmit(bytes([cla, 0xC0, 0x00, 0x00, sw & 0xFF]))
                answer += data
            if sw != 0x9000:
                raise Failed("es10x_command", f"SW {sw:04X}")
        return answer


def es9(card: Card, function: str, address: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    rcode, rx = card.http(f"https://{address}/gsma/rsp2/es9plus/{function}", json.dumps(body).encode())
    if rx is None:
        raise Failed(f"es9p_{function}", "HTTP transport failure")
    return rcode, json.loads(rx) if rx else None


def es9_ok(card: Card, function: str, address: str, body: dict[str, Any]) -> dict[str, Any]:
    rcode, reply = es9(card, function, address, body)
    status = (reply or {}).get("header", {}).get("functionExecutionStatus", {})
    if rcode != 200 or status.get("status") != "Executed-Success":
        raise Failed(f"es9p_{function}", status.get("statusCodeData") or rcode)
    return reply  # type: ignore[return-value]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def bpp_pieces(bpp: bytes) -> list[bytes]:
    """The BF36 in the pieces of SGP.22 5.7.6."""
    top = parse_single(bpp, b"\xbf\x36")
    parts = top.children()
    pieces = [bpp[:top.value_start - top.start] + parts[0].raw, parts[1].raw]
    for part in parts[2:]:
        if part.tag in (b"\xa1", b"\xa3"):
            _, _, header = read_header(part.raw)
            pieces.append(part.raw[:header])
            pieces.extend(child.raw for child in part.children())
        else:
            pieces.append(part.raw)
    return pieces


def download(card: Card, args: list[str]) -> Any:
    opts = dict(zip(args[::2], args[1::2]))
    address, matching_id, cc = opts.get("-s"), opts.get("-m"), opts.get("-c")
    if not address:
        raise Failed("smdp", "empty")
    progress("es10b_get_euicc_challenge_and_info", address)
    challenge = parse_single(card.es10(bytes.fromhex("BF2E00")), b"\xbf\x2e").child(b"\x80").value
    info1 = card.es10(bytes.fromhex("BF2000"))
    progress("es9p_initiate_authentication", address)
    init = es9_ok(card, "initiateAuthentication", address, {
        "euiccChallenge": b64(challenge), "euiccInfo1": b64(info1), "smdpAddress": address})
    progress("es10b_authenticate_server", address)
    request = authenticate_server_request(
        unb64(init["serverSigned1"]), unb64(init["serverSignature1"]), unb64(init["euiccCiPKIdToBeUsed"]),
        unb64(init["serverCertificate"]), encode_ctx_params1(matching_id))
    auth = card.es10(request)
    progress("es9p_authenticate_client", address)
    tid = init["transactionId"]
    client = es9_ok(card, "authenticateClient", address, {"transactionId": tid,
                                                    "authenticateServerResponse": b64(auth)})
    hash_cc = confirmation_code_hash(cc, bytes.fromhex(tid)) if cc else None
    progress("es10b_prepare_download", address)
    prepare = card.es10(prepare_download_request(
        unb64(client["smdpSigned2"]), unb64(client["smdpSignature2"]), unb64(client["smdpCertificate"]),
        hash_cc))
    progress("es9p_get_bound_profile_package", address)
    bound = es9_ok(card, "getBoundProfilePackage", address, {"transactionId": tid,
                                                       "prepareDownloadResponse": b64(prepare)})
    progress("es10b_load_bound_profile_package", address)
    pir = b""
    for piece in bpp_pieces(unb64(bound["boundProfilePackage"])):
        pir = card.es10(piece)
        if pir:
            break
    data = rsp().decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    kind, result = data["finalResult"]
    seq = data["notificationMetadata"]["seqNumber"]
    if kind != "successResult":
        raise Failed("es10b_load_bound_profile_package",
                     f"{result['bppCommandId']},{result['errorReason']}")
    return {"seqNumber": seq, "iccid": iccid_from_ef(data["notificationMetadata"]["iccid"])}


def _event(tlv: Tlv | None) -> str:
    if tlv is None or len(tlv.value) < 2:
        return "unknown"
    bits = tlv.value[1]
    return next((name for i, name in enumerate(EVENTS) if bits & (0x80 >> i)), "unknown")


def _metadata(meta: Tlv) -> dict[str, Any]:
    iccid = meta.child(b"\x5a")
    return {"seqNumber": int.from_bytes(meta.child(b"\x80").value, "big"),
            "profileManagementOperation": _event(meta.child(b"\x81")),
            "notificationAddress": meta.child(b"\x0c").value.decode(),
            "iccid": iccid_from_ef(iccid.value) if iccid else None}


def notification_list(card: Card) -> list[dict[str, Any]]:
    listed = parse_single(card.es10(bytes.fromhex("BF2800")), b"\xbf\x28").child(b"\xa0")
    return [_metadata(m) for m in listed.children()] if listed else []


def notification_process(card: Card, args: list[str]) -> Any:
    remove = "-r" in args
    seqs = [int(a) for a in args if a.isdigit()]
    if "-a" in args:
        seqs = [n["seqNumber"] for n in notification_list(card)]
    for seq in seqs:
        progress("es10b_retrieve_notifications_list", seq)
        got = parse_single(card.es10(encode_tlv(b"\xbf\x2b", encode_tlv(b"\xa0", encode_tlv(
            b"\x80", seq.to_bytes(2, "big").lstrip(b"\x00") or b"\x00")))), b"\xbf\x2b")
        listed = got.child(b"\xa0")
        if listed is None:
            raise Failed("es10b_retrieve_notifications_list", seq)
        note = listed.children()[0]
        meta = note.children()[0] if note.tag == b"\x30" else note.children()[0].child(b"\xbf\x2f")
        address = meta.child(b"\x0c").value.decode()
        progress("es9p_handle_notification", seq)
        rcode, _ = es9(card, "handleNotification", address, {"pendingNotification": b64(note.raw)})
        if rcode != 204:
            raise Failed("es9p_handle_notification", rcode)
        if remove:
            notification_remove(card, [str(seq)])
    return None


def notification_remove(card: Card, args: list[str]) -> Any:
    seqs = [int(a) for a in args if a.isdigit()]
    if "-a" in args:
        seqs = [n["seqNumber"] for n in notification_list(card)]
    for seq in seqs:
        answer = parse_single(card.es10(encode_tlv(b"\xbf\x30", encode_tlv(
            b"\x80", seq.to_bytes(2, "big").lstrip(b"\x00") or b"\x00"))), b"\xbf\x30")
        if answer.child(b"\x80").value != b"\x00":
            raise Failed("es10b_remove_notification_from_list", seq)
    return None


def profile_list(card: Card) -> list[dict[str, Any]]:
    tags = bytes.fromhex("5A4F9F70909192939495")
    answer = parse_single(card.es10(encode_tlv(b"\xbf\x2d", encode_tlv(b"\x5c", tags))), b"\xbf\x2d")
    ok = answer.child(b"\xa0")
    if ok is None:
        raise Failed("es10c_get_profiles_info", None)
    profiles = []
    for info in ok.children():
        fields = {t.tag: t.value for t in info.children()}
        profiles.append({
            "iccid": iccid_from_ef(fields[b"\x5a"]), "isdpAid": fields[b"\x4f"].hex().upper(),
            "profileState": "enabled" if fields.get(b"\x9f\x70") == b"\x01" else "disabled",
            "profileNickname": fields[b"\x90"].decode() if b"\x90" in fields else None,
            "serviceProviderName": fields.get(b"\x91", b"").decode(),
            "profileName": fields.get(b"\x92", b"").decode(),
            "profileClass": PROFILE_CLASSES.get(fields.get(b"\x95", b"\x02")[0], "operational")})
    return profiles


def _identifier(text: str) -> bytes:
    return encode_tlv(b"\x4f", bytes.fromhex(text)) if len(text) == 32 else encode_tlv(b"\x5a", iccid_to_ef(text))


RESULTS = {0: "ok", 1: "iccidOrAidNotFound", 2: "profileNotInTheRightState", 3: "disallowedByPolicy",
           127: "undefinedError"}


def profile_operation(card: Card, name: str, tag: bytes, request: bytes) -> Any:
    answer = parse_single(card.es10(encode_tlv(tag, request)), tag).child(b"\x80").value
    if answer != b"\x00":
        raise Failed(f"es10c_{name}_profile", RESULTS.get(answer[0], answer.hex()))
    return None


def chip_info(card: Card) -> Any:
    eid = parse_single(card.es10(bytes.fromhex("BF3E035C015A")), b"\xbf\x3e").child(b"\x5a").value
    addresses = parse_single(card.es10(bytes.fromhex("BF3C00")), b"\xbf\x3c")
    info2 = card.es10(bytes.fromhex("BF2200"))
    default = addresses.child(b"\x80")
    return {"eidValue": eid.hex().upper(),
            "EuiccConfiguredAddresses": {"defaultDpAddress": default.value.decode() if default else None,
                                         "rootDsAddress": addresses.child(b"\x81").value.decode()},
            "EUICCInfo2": {"svn": ".".join(str(b) for b in parse_single(info2).child(b"\x82").value)}}


def run(argv: list[str], card: Card | None = None) -> Any:
    """Run one lpac command line on ``card`` (default: over the stdio drivers)."""
    card = card or Card()
    try:
        match argv:
            case ["chip", "info"]:
                return chip_info(card)
            case ["profile", "list"]:
                return profile_list(card)
            case ["profile", "download", *rest]:
                return download(card, rest)
            case ["profile", "enable", ident, *_]:
                return profile_operation(card, "enable", b"\xbf\x31",
                                         encode_tlv(b"\xa0", _identifier(ident)) + b"\x81\x01\xff")
            case ["profile", "disable", ident, *_]:
                return profile_operation(card, "disable", b"\xbf\x32",
                                         encode_tlv(b"\xa0", _identifier(ident)) + b"\x81\x01\xff")
            case ["profile", "delete", ident]:
                return profile_operation(card, "delete", b"\xbf\x33", _identifier(ident))
            case ["profile", "nickname", ident, name]:
                return profile_operation(card, "set_nickname", b"\xbf\x29",
                                         encode_tlv(b"\x5a", iccid_to_ef(ident))
                                         + encode_tlv(b"\x90", name.encode()))
            case ["notification", "list"]:
                return notification_list(card)
            case ["notification", "process", *rest]:
                return notification_process(card, rest)
            case ["notification", "remove", *rest]:
                return notification_remove(card, rest)
        raise Failed("usage", " ".join(argv))
    finally:
        card.close()


def main() -> int:
    try:
        data = run(sys.argv[1:])
    except Failed as exc:
        emit("lpa", {"code": -1, "message": exc.function, "data": exc.detail})
        return 255
    emit("lpa", {"code": 0, "message": "success", "data": data})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
