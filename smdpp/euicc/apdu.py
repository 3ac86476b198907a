"""The APDU front of the virtual eUICC's ISD-R (ETSI TS 102 221, GlobalPlatform, SGP.22 5.7.2).

Sans I/O: :meth:`ApduCard.transmit` takes one command APDU and returns the
response APDU (data and SW1 SW2).  What it understands:

- the class byte of ETSI TS 102 221 10.1.1 / ISO 7816-4 5.4.1: logical
  channels 0-3 (CLA '0X'/'8X', channel in b2-b1) and 4-19 ('4X'/'CX', b4-b1);
  GlobalPlatform commands need the proprietary class (b8 set);
- MANAGE CHANNEL (INS '70': P1 '00' opens, the card picks the number when P2
  is '00'; P1 '80' closes channel P2);
- SELECT by DF name (INS 'A4', P1 '04') of the ISD-R AID
  A0000005591010FFFFFFFF8900000100 (SGP.22 2.2.3);
- STORE DATA (GlobalPlatform 11.11, SGP.22 5.7.2: CLA '80', INS 'E2', P1
  '11' more blocks / '91' last block, P2 the block number from '00'); the
  blocks of one command are joined and handed to the ES10 dispatcher;
- answers longer than 256 bytes: the first 256 with SW '61xx', the rest with
  GET RESPONSE (INS 'C0'), as on a T=0 card (TS 102 221 7.3.1.1.4).

Every malformed command gets the ISO 7816-4 / GlobalPlatform status word
and leaves the channel state as it was (a broken STORE DATA chain is
dropped, so the next command starts afresh).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["ApduCard", "ChannelState", "Es10Refused", "ISD_R_AID", "SW", "ATR", "parse_command",
           "CommandApdu", "cla_for_channel"]

log = logging.getLogger(__name__)

ISD_R_AID = bytes.fromhex("A0000005591010FFFFFFFF8900000100")
#: Answer To Reset: T=0 (TS 102 221 6.3), historical bytes: category '80', then "eUICC".
ATR = bytes.fromhex("3B0680") + b"eUICC"
#: The largest ES10 command accepted in STORE DATA blocks (a BPP segment is far smaller).
MAX_COMMAND = 64 * 1024
MAX_CHANNELS = 20  # TS 102 221 allows 0-19

#: Status words (ISO 7816-4 5.6, ETSI TS 102 221 10.2, GlobalPlatform 11.1.3).
SW = {
    "ok": 0x9000,
    "memory_failure": 0x6581,
    "wrong_length": 0x6700,
    "channel_not_supported": 0x6881,
    "security_not_satisfied": 0x6982,
    "conditions_not_satisfied": 0x6985,
    "wrong_data": 0x6A80,
    "not_found": 0x6A82,
    "not_enough_memory": 0x6A84,
    "wrong_p1p2": 0x6A86,
    "data_not_found": 0x6A88,
    "ins_not_supported": 0x6D00,
    "cla_not_supported": 0x6E00,
    "no_precise_diagnosis": 0x6F00,
}


class Es10Refused(Exception):
    """The ES10 dispatcher refuses the command with a status word and no data."""

    def __init__(self, sw: int, why: str) -> None:
        super().__init__(why)
        self.sw = sw


@dataclass(frozen=True)
class CommandApdu:
    """A parsed command APDU (ISO 7816-4 5.1: cases 1-4, short or extended length)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None: no Le field; 0 in short form means 256


def parse_command(apdu: bytes) -> CommandApdu:
    """Parse a command APDU; ValueError if its length fields do not fit its size."""
    if len(apdu) < 4:
        raise ValueError("shorter than a header")
    cla, ins, p1, p2 = apdu[:4]
    body = apdu[4:]
    if not body:
        return CommandApdu(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, b"", body[0] or 256)
    if body[0] != 0:  # short Lc
        lc = body[0]
        if len(body) == 1 + lc:
            return CommandApdu(cla, ins, p1, p2, body[1:], None)
        if len(body) == 2 + lc:
            return CommandApdu(cla, ins, p1, p2, body[1:1 + lc], body[-1] or 256)
        raise ValueError(f"Lc {lc} does not match {len(body) - 1} data bytes")
    # extended length: '00' then two bytes
    if len(body) == 3:
        return CommandApdu(cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536)
    if len(body) < 3:
        raise ValueError("truncated extended length")
    lc = int.from_bytes(body[1:3], "big")
    if lc and len(body) == 3 + lc:
        return CommandApdu(cla, ins, p1, p2, body[3:], None)
    if lc and len(body) == 5 + lc:
        return CommandApdu(cla, ins, p1, p2, body[3:3 + lc], int.from_bytes(body[-2:], "big") or 65536)
    raise ValueError(f"extended Lc {lc} does not match {len(body) - 3} bytes")


def _channel_of(cla: int) -> int:
    """The logical channel named by a class byte (TS 102 221 10.1.1)."""
    if cla & 0x40:
        return 4 + (cla & 0x0F)
    return cla & 0x03


def cla_for_channel(channel: int, proprietary: bool) -> int:
    """The class byte for ``channel`` (inverse of the coding above)."""
    base = 0x80 if proprietary else 0x00
    return base | channel if channel < 4 else base | 0x40 | (channel - 4)


@dataclass
class ChannelState:
    """What one logical channel holds between commands."""

    selected: bool = False  # the ISD-R is selected on it
    blocks: list[bytes] = field(default_factory=list)  # STORE DATA blocks of the command so far
    pending: bytes = b""  # response data waiting for GET RESPONSE


def _sw(name: str, data: bytes = b"") -> bytes:
    return data + SW[name].to_bytes(2, "big")


class ApduCard:
    """The ISD-R of a card behind its APDU interface; ``es10`` answers one joined ES10 command.

    ``es10(request)`` returns the response data (possibly empty) or raises
    :class:`Es10Refused`.
    """

    def __init__(self, es10: Callable[[bytes], bytes]) -> None:
        self._es10 = es10
        self.channels: dict[int, ChannelState] = {}
        self.reset()

    def reset(self) -> None:
        """Power on / warm reset: only the basic channel is open, nothing selected."""
        self.channels = {0: ChannelState()}

    def transmit(self, apdu: bytes) -> bytes:
        """Process one command APDU; the response APDU (data + SW1 SW2)."""
        try:
            cmd = parse_command(apdu)
        except ValueError as exc:
            log.info("APDU refused (%s): %s", exc, apdu[:8].hex())
            return _sw("wrong_length")
        if cmd.cla == 0xFF:
            return _sw("cla_not_supported")
        channel = _channel_of(cmd.cla)
        state = self.channels.get(channel)
        if state is None:
            return _sw("channel_not_supported")
        handler = _HANDLERS.get(cmd.ins)
        if handler is None:
            return _sw("ins_not_supported")
        if cmd.ins != 0xC0:
            state.pending = b""  # any other command drops an unread answer
        if cmd.ins != 0xE2 and state.blocks:
            state.blocks = []  # a STORE DATA chain interrupted by another command is dropped
        return handler(self, cmd, channel, state)

    # --- the commands ---------------------------------------------------------

    def _manage_channel(self, cmd: CommandApdu, channel: int, state: ChannelState) -> bytes:
        if cmd.p1 == 0x00:  # open
            if cmd.data:
                return _sw("wrong_length")
            if cmd.p2 == 0:
                free = [n for n in range(1, MAX_CHANNELS) if n not in self.channels]
                if not free:
                    return _sw("channel_not_supported")
                number = free[0]
                self.channels[number] = ChannelState()
                return _sw("ok", bytes([number]))
            if cmd.p2 >= MAX_CHANNELS or cmd.p2 in self.channels:
                return _sw("wrong_p1p2")
            self.channels[cmd.p2] = ChannelState()
            return _sw("ok")
        if cmd.p1 == 0x80:  # close
            target = cmd.p2 if cmd.p2 else channel
            if target == 0 or target not in self.channels:
                return _sw("wrong_p1p2")
            del self.channels[target]
            return _sw("ok")
        return _sw("wrong_p1p2")

    def _select(self, cmd: CommandApdu, channel: int, state: ChannelState) -> bytes:
        if cmd.p1 != 0x04 or cmd.p2 not in (0x00, 0x04, 0x0C):
            return _sw("wrong_p1p2")
        if not cmd.data or len(cmd.data) > 16:
            return _sw("wrong_length")
        if not ISD_R_AID.startswith(cmd.data):  # a right-truncated AID selects too (ISO 7816-4)
            state.selected = False
            return _sw("not_found")
        state.selected = True
        state.blocks = []
        if cmd.p2 == 0x0C:  # no response data asked for
            return _sw("ok")
        # FCI template: AID ('84') and the proprietary data of GlobalPlatform ('A5'):
        # the largest command data field the card takes ('9F65').
        fci_body = b"\x84\x10" + ISD_R_AID + bytes.fromhex("A5049F6501FF")
        return _sw("ok", b"\x6f" + bytes([len(fci_body)]) + fci_body)

    def _store_data(self, cmd: CommandApdu, channel: int, state: ChannelState) -> bytes:
        if not cmd.cla & 0x80:
            return _sw("cla_not_supported")
        if not state.selected:
            return _sw("conditions_not_satisfied")
        if cmd.p1 not in (0x11, 0x91):
            state.blocks = []
            return _sw("wrong_p1p2")
        if cmd.p2 != len(state.blocks):  # block numbers run from 0 within one command
            log.info("STORE DATA block %d where %d was due; command dropped", cmd.p2, len(state.blocks))
            state.blocks = []
            return _sw("wrong_p1p2")
        if not cmd.data:
            state.blocks = []
            return _sw("wrong_length")
        if sum(map(len, state.blocks)) + len(cmd.data) > MAX_COMMAND:
            state.blocks = []
            return _sw("not_enough_memory")
        state.blocks.append(cmd.data)
        if cmd.p1 == 0x11:
            return _sw("ok")
        request = b"".join(state.blocks)
        state.blocks = []
        try:
            answer = self._es10(request)
        except Es10Refused as exc:
            log.info("ES10 command %s refused with %04X: %s", request[:2].hex(), exc.sw, exc)
            return exc.sw.to_bytes(2, "big")
        return self._answer(answer, cmd.le, state)

    def _answer(self, data: bytes, le: int | None, state: ChannelState) -> bytes:
        """At most ``le`` (or 256) bytes now; '61xx' says how many more GET RESPONSE can fetch."""
        size = min(le or 256, 256)
        now, rest = data[:size], data[size:]
        state.pending = rest
        if not rest:
            return _sw("ok", now)
        return now + bytes([0x61, min(len(rest), 256) & 0xFF])

    def _get_response(self, cmd: CommandApdu, channel: int, state: ChannelState) -> bytes:
        if cmd.p1 or cmd.p2:
            return _sw("wrong_p1p2")
        if not state.pending:
            return _sw("conditions_not_satisfied")
        return self._answer(state.pending, cmd.le, state)


_HANDLERS: dict[int, Callable[[ApduCard, CommandApdu, int, ChannelState], bytes]] = {
    0x70: ApduCard._manage_channel,
    0xA4: ApduCard._select,
    0xE2: ApduCard._store_data,
    0xC0: ApduCard._get_response,
}
