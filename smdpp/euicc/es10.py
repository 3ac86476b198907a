"""The ES10 dispatcher of the virtual eUICC: one ES10 command in, its response out (SGP.22 5.7).

:class:`VirtualEuicc` puts the software eUICC (:class:`~smdpp.euicc.card.SoftEuicc`,
which verifies the SM-DP+ and opens the Bound Profile Package) together with
the persistent :class:`~smdpp.euicc.state.CardState`.  :meth:`VirtualEuicc.handle`
takes the joined data of one STORE DATA command, picks the function by the
request's tag (the table ``_FUNCTIONS``) and returns the response DER; after
every command that changed something the state file is rewritten.

ES10a/b: GetEuiccChallenge BF2E, GetEuiccInfo1 BF20, GetEuiccInfo2 BF22,
AuthenticateServer BF38, PrepareDownload BF21, LoadBoundProfilePackage
(BF36 and its pieces, :mod:`smdpp.euicc.bpp_pieces`), CancelSession BF41,
ListNotification BF28, RetrieveNotificationsList BF2B,
RemoveNotificationFromList BF30, EuiccConfiguredAddresses BF3C,
SetDefaultDpAddress BF3F, GetRAT BF43; ES10c (:mod:`smdpp.euicc.es10c`):
GetProfilesInfo BF2D, EnableProfile BF31, DisableProfile BF32,
DeleteProfile BF33, SetNickname BF29, GetEID BF3E, EuiccMemoryReset BF34.

A request that cannot be read is refused with SW '6A80', an unknown
function with '6A88', a command out of order (a BPP piece without a
prepared download) with '6985'; none of them changes the state.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

import asn1tools

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import Tlv, TlvError, encode_tlv, parse_single
from smdpp.euicc import es10c
from smdpp.euicc.apdu import SW, Es10Refused
from smdpp.bsp import BspError
from smdpp.es8p import OpenedProfilePackage
from smdpp.euicc.bpp_pieces import BppAssembler, BppPieceError, read_header
from smdpp.euicc.bpp_stream import CONTAINERS, StreamingOpener
from smdpp.euicc.card import CardError, SoftEuicc
from smdpp.euicc.es10c import RequestError, encode_integer, notification_metadata
from smdpp.euicc.identity import load_identity
from smdpp.euicc.installation import classify_bpp_error, iccid_from_ef
from smdpp.euicc.state import CardState, ProfileRecord, load_state, new_state, save_state

__all__ = ["VirtualEuicc"]

log = logging.getLogger(__name__)

_BPP_PIECE_TAGS = (b"\xa0", b"\xa1", b"\x88", b"\xa2", b"\xa3", b"\x86")
_ICON_TYPES = {"jpg": 0, "png": 1}
# asn1tools gives a DEFAULT named INTEGER by its name
_PROFILE_CLASSES = {"test": 0, "provisioning": 1, "operational": 2}


def _tag(request: bytes) -> bytes:
    if not request:
        return b""
    return request[:2] if request[0] & 0x1F == 0x1F and len(request) > 1 else request[:1]


def _events_of(bits: tuple[bytes, int]) -> list[int]:
    value, length = bits
    return [i for i in range(min(length, 4)) if value[i // 8] & (0x80 >> (i % 8))]


def _bits_value(tlv: Tlv) -> tuple[bytes, int]:
    value = tlv.value
    if not value or value[0] > 7:
        raise RequestError("malformed NotificationEvent BIT STRING")
    return value[1:], 8 * len(value[1:]) - value[0]


class VirtualEuicc:
    """A persistent software eUICC answering ES10 commands."""

    def __init__(self, state: CardState, path: Path | None = None) -> None:
        self.state = state
        self.path = Path(path) if path is not None else None
        self.card = SoftEuicc(load_identity(Path(state.identity)))
        self.card.seq_number = state.seq_number
        self.card.pending_notifications = {k: bytes.fromhex(v) for k, v in state.notifications.items()}
        for record in state.profiles:
            self.card.installed[record.iccid] = b""  # the package itself is not kept
            self.card.isdp_aids[record.iccid] = bytes.fromhex(record.isdp_aid)
        self.bpp = BppAssembler()
        self.opener: StreamingOpener | None = None

    @classmethod
    def open(cls, path: Path, identity: Path | None = None) -> "VirtualEuicc":
        """The card in ``path``; a new card from ``identity`` if the file does not exist yet.

        ValueError (StateError) naming the file when it is damaged, or when a new
        card is asked for without an identity folder.
        """
        path = Path(path)
        if path.exists():
            return cls(load_state(path), path)
        if identity is None:
            raise ValueError(f"card state {path} does not exist; give --identity to create it")
        card = cls(new_state(identity), path)
        card.save()
        return card

    def save(self) -> None:
        """Write the state (atomically) if the card has a file."""
        self.state.seq_number = self.card.seq_number
        self.state.notifications = {k: v.hex() for k, v in sorted(self.card.pending_notifications.items())}
        if self.path is not None:
            save_state(self.state, self.path)

    # --- the dispatcher ---------------------------------------------------------------

    def handle(self, request: bytes) -> bytes:
        """Answer one ES10 command (the joined STORE DATA blocks); Es10Refused for a status word."""
        tag = _tag(request)
        entry = _FUNCTIONS.get(b"\xbf\x36" if tag in _BPP_PIECE_TAGS else tag)
        if entry is None:
            raise Es10Refused(SW["data_not_found"], f"no ES10 function with tag {tag.hex() or 'none'}")
        name, function, changes = entry
        try:
            answer = function(self, request)
            if changes:
                self.save()
        except (RequestError, CardError, TlvError, asn1tools.Error) as exc:
            raise Es10Refused(SW["wrong_data"], f"{name}: {exc}") from None
        except OSError as exc:  # the state file could not be written: the card's NVM failed
            log.error("ES10 %s: cannot write the card state: %s", name, exc)
            raise Es10Refused(SW["memory_failure"], f"{name}: card state not written") from None
        tid = self.card.transaction_id
        log.info("ES10 %s answered (%d bytes)%s", name, len(answer),
                 f", transactionId={tid.hex().upper()}" if tid else "")
        return answer

    # --- ES10b: download ----------------------------------------------------------------

    def _challenge(self, request: bytes) -> bytes:
        _empty(request, b"\xbf\x2e")
        return encode_tlv(b"\xbf\x2e", encode_tlv(b"\x80", self.card.get_euicc_challenge()))

    def _info1(self, request: bytes) -> bytes:
        _empty(request, b"\xbf\x20")
        return self.card.get_euicc_info1()

    def _info2(self, request: bytes) -> bytes:
        _empty(request, b"\xbf\x22")
        return self.card.get_euicc_info2()

    def _authenticate_server(self, request: bytes) -> bytes:
        self.bpp = BppAssembler()  # a new session drops the pieces of the last one
        return self.card.authenticate_server(request)

    def _prepare_download(self, request: bytes) -> bytes:
        return self.card.prepare_download(request)

    def _cancel_session(self, request: bytes) -> bytes:
        fields = rsp().decode("CancelSessionRequest", parse_single(request, b"\xbf\x41").raw)
        self.bpp = BppAssembler()
        return self.card.cancel_session(fields["transactionId"], fields["reason"])

    def _bpp_piece(self, request: bytes) -> bytes:
        """One piece of LoadBoundProfilePackage: empty answer, or the ProfileInstallationResult.

        Each piece is checked for its place (:class:`BppAssembler`) and opened
        as it arrives (:class:`StreamingOpener`): a bad smdpSign, MAC or
        segment is answered by the piece that carries it (SGP.22 5.7.6).
        """
        tag = _tag(request)
        starting = tag == b"\xbf\x36"
        if not self.card.download_prepared or not (starting or self.bpp.started):
            raise Es10Refused(SW["conditions_not_satisfied"],
                              "BPP piece without a prepared download (PrepareDownload first)")
        if starting and self.bpp.started:
            self.bpp = BppAssembler()
        try:
            complete = self.bpp.feed(request) is not None
            opened = self._open_piece(tag, request, complete)
        except (BppPieceError, BspError) as exc:
            error = exc.error if isinstance(exc, BppPieceError) else classify_bpp_error(str(exc))
            log.info("LoadBoundProfilePackage refused: %s", exc)
            self.bpp, self.opener = BppAssembler(), None
            pir = self.card.abort_load(error, str(exc))
            self.save()
            return pir
        if opened is None:
            return b""
        self.opener = None
        pir = self.card.load_opened(opened)
        self._record_install(pir)
        self.save()
        return pir

    def _open_piece(self, tag: bytes, piece: bytes, complete: bool) -> OpenedProfilePackage | None:
        """Verify what this piece brings; the opened package once the last segment is in."""
        _, length, header = read_header(piece)
        if tag == b"\xbf\x36":
            started = self.card.begin_load(piece[header:])
            if isinstance(started, tuple):
                raise BppPieceError(started, self.card.last_error or "InitialiseSecureChannel refused")
            self.opener = started
            return None
        opener = self.opener
        assert opener is not None  # the assembler only takes these pieces after BF36
        opened = None
        if tag in (b"\xa1", b"\xa3") and header == len(piece) and length:
            pass  # the tag and length of a sequence whose segments follow one by one
        elif tag in CONTAINERS:
            opened = opener.whole(tag, piece)
        elif tag == b"\x88":
            opener.segment(b"\xa1", piece)
            if self.bpp.state == "after88":
                opener.close(b"\xa1")
        else:  # '86'
            opener.segment(b"\xa3", piece)
            if complete:
                opened = opener.close(b"\xa3")
        if complete and opened is None:
            raise BspError("sequenceOf86: the package ended without its profile")
        return opened

    def _record_install(self, pir: bytes) -> None:
        """A ProfileRecord for the profile the PIR reports as installed (disabled, SGP.22 3.1.3)."""
        data = rsp().decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
        if data["finalResult"][0] != "successResult":
            log.info("installation failed: %s", self.card.last_error)
            return
        iccid = iccid_from_ef(data["notificationMetadata"]["iccid"])
        meta = self.card.installed_metadata[iccid]
        upp = self.card.installed[iccid]
        self.card.installed[iccid] = b""  # not kept in memory either, only its digest
        config = [[_events_of(item["profileManagementOperation"]), item["notificationAddress"]]
                  for item in meta.get("notificationConfigurationInfo", [])]
        self.state.profiles.append(ProfileRecord(
            iccid=iccid, isdp_aid=self.card.isdp_aids[iccid].hex().upper(),
            service_provider_name=meta["serviceProviderName"], profile_name=meta["profileName"],
            profile_class=_PROFILE_CLASSES.get(meta.get("profileClass", 2), meta.get("profileClass", 2)),
            icon_type=_ICON_TYPES.get(meta.get("iconType"), meta.get("iconType")),
            icon=meta.get("icon", b"").hex(), notification_config=config,
            smdp_address=data["notificationMetadata"]["notificationAddress"],
            smdp_oid=data.get("smdpOid", ""), upp_sha256=hashlib.sha256(upp).hexdigest()))
        log.info("profile ICCID %s installed (%s)", iccid, meta["profileName"][:64])

    # --- ES10b: notifications (SGP.22 5.7.9-5.7.11) -------------------------------------

    def _notify(self, record: ProfileRecord, event: str) -> None:
        """Sign and keep one otherSignedNotification per address the event goes to."""
        for address in es10c.notification_addresses(record, event):
            self.card.seq_number += 1
            self.card.pending_notifications[self.card.seq_number] = es10c.other_notification(
                seq_number=self.card.seq_number, event=event, address=address, iccid=record.iccid,
                sign=self.card.sign, euicc_cert=self.card.euicc_certificate,
                eum_cert=self.card.eum_certificate)
            log.info("notification %d: %s of ICCID %s for %s", self.card.seq_number, event,
                     record.iccid, address[:128])

    def _selected(self, criteria: Tlv | None) -> list[tuple[int, bytes]]:
        """Pending notifications (seqNumber order) matching a seqNumber '80' or event '81' criterion."""
        pending = sorted(self.card.pending_notifications.items())
        if criteria is None:
            return pending
        if criteria.tag == b"\x80":
            wanted = int.from_bytes(criteria.value, "big", signed=True) if criteria.value else None
            return [(seq, note) for seq, note in pending if seq == wanted]
        if criteria.tag == b"\x81":
            events = set(_events_of(_bits_value(criteria)))
            return [(seq, note) for seq, note in pending
                    if set(_events_of(_bits_value(notification_metadata(note).child(b"\x81"))))
                    & events]
        raise RequestError(f"searchCriteria with tag {criteria.tag.hex()}")

    def _list_notification(self, request: bytes) -> bytes:
        parts = parse_single(request, b"\xbf\x28").children()
        if len(parts) > 1 or (parts and parts[0].tag != b"\x81"):
            raise RequestError("ListNotificationRequest holds only profileManagementOperation '81'")
        chosen = self._selected(parts[0] if parts else None)
        return encode_tlv(b"\xbf\x28", encode_tlv(b"\xa0", b"".join(
            notification_metadata(note).raw for _, note in chosen)))

    def _retrieve_notifications(self, request: bytes) -> bytes:
        parts = parse_single(request, b"\xbf\x2b").children()
        criteria = None
        if parts:
            if len(parts) > 1 or parts[0].tag != b"\xa0" or len(parts[0].children()) != 1:
                raise RequestError("RetrieveNotificationsListRequest holds one searchCriteria 'A0'")
            criteria = parts[0].children()[0]
        chosen = self._selected(criteria)
        if not chosen:  # notificationsListResultError noResultAvailable(1)
            return encode_tlv(b"\xbf\x2b", encode_tlv(b"\x81", b"\x01"))
        return encode_tlv(b"\xbf\x2b", encode_tlv(b"\xa0", b"".join(note for _, note in chosen)))

    def _remove_notification(self, request: bytes) -> bytes:
        parts = parse_single(request, b"\xbf\x30").children()
        if len(parts) != 1 or parts[0].tag != b"\x80" or not parts[0].value:
            raise RequestError("NotificationSentRequest must be seqNumber '80'")
        removed = self.card.remove_notification(int.from_bytes(parts[0].value, "big", signed=True))
        return encode_tlv(b"\xbf\x30", encode_tlv(b"\x80", encode_integer(0 if removed else 1)))

    # --- ES10a: addresses, ES10b: RAT ---------------------------------------------------

    def _configured_addresses(self, request: bytes) -> bytes:
        _empty(request, b"\xbf\x3c")
        body = b""
        if self.state.default_dp_address:
            body += encode_tlv(b"\x80", self.state.default_dp_address.encode("utf-8"))
        return encode_tlv(b"\xbf\x3c", body + encode_tlv(b"\x81", self.state.root_ds_address.encode("utf-8")))

    def _set_default_dp(self, request: bytes) -> bytes:
        parts = parse_single(request, b"\xbf\x3f").children()
        if len(parts) != 1 or parts[0].tag != b"\x80":
            raise RequestError("SetDefaultDpAddressRequest must be defaultDpAddress '80'")
        try:
            address = parts[0].value.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("defaultDpAddress is not UTF-8") from None
        if len(address) > 255:
            raise RequestError("defaultDpAddress longer than 255 characters")
        self.state.default_dp_address = address
        return encode_tlv(b"\xbf\x3f", encode_tlv(b"\x80", b"\x00"))

    def _rat(self, request: bytes) -> bytes:
        _empty(request, b"\xbf\x43")
        return encode_tlv(b"\xbf\x43", encode_tlv(b"\xa0", b""))  # no Profile Policy Rules allowed

    def _eid(self, request: bytes) -> bytes:
        parts = parse_single(request, b"\xbf\x3e").children()
        if parts and (len(parts) != 1 or parts[0].tag != b"\x5c" or parts[0].value != b"\x5a"):
            raise RequestError("GetEuiccDataRequest tagList must be '5A'")
        return encode_tlv(b"\xbf\x3e", encode_tlv(b"\x5a", self.card.eid_bytes))

    # --- ES10c --------------------------------------------------------------------------

    def _profiles_info(self, request: bytes) -> bytes:
        return es10c.get_profiles_info(self.state, request)

    def _enable(self, request: bytes) -> bytes:
        return es10c.enable_profile(self.state, request, self._notify)

    def _disable(self, request: bytes) -> bytes:
        return es10c.disable_profile(self.state, request, self._notify)

    def _delete(self, request: bytes) -> bytes:
        answer = es10c.delete_profile(self.state, request, self._notify)
        self._forget_deleted()
        return answer

    def _nickname(self, request: bytes) -> bytes:
        return es10c.set_nickname(self.state, request)

    def _memory_reset(self, request: bytes) -> bytes:
        answer = es10c.memory_reset(self.state, request)
        self._forget_deleted()
        return answer

    def _forget_deleted(self) -> None:
        kept = {r.iccid for r in self.state.profiles}
        for iccid in [i for i in self.card.installed if i not in kept]:
            for table in (self.card.installed, self.card.isdp_aids, self.card.installed_metadata):
                table.pop(iccid, None)


def _empty(request: bytes, tag: bytes) -> None:
    """A request that is an empty SEQUENCE (its tag and length '00')."""
    if parse_single(request, tag).value:
        raise RequestError(f"{tag.hex()} request must be empty")


# tag -> (name, method, changes the persistent state)
_FUNCTIONS: dict[bytes, tuple[str, Callable[[VirtualEuicc, bytes], bytes], bool]] = {
    b"\xbf\x2e": ("GetEuiccChallenge", VirtualEuicc._challenge, False),
    b"\xbf\x20": ("GetEuiccInfo1", VirtualEuicc._info1, False),
    b"\xbf\x22": ("GetEuiccInfo2", VirtualEuicc._info2, False),
    b"\xbf\x38": ("AuthenticateServer", VirtualEuicc._authenticate_server, False),
    b"\xbf\x21": ("PrepareDownload", VirtualEuicc._prepare_download, False),
    b"\xbf\x36": ("LoadBoundProfilePackage", VirtualEuicc._bpp_piece, False),  # saves itself
    b"\xbf\x41": ("CancelSession", VirtualEuicc._cancel_session, False),
    b"\xbf\x28": ("ListNotification", VirtualEuicc._list_notification, False),
    b"\xbf\x2b": ("RetrieveNotificationsList", VirtualEuicc._retrieve_notifications, False),
    b"\xbf\x30": ("RemoveNotificationFromList", VirtualEuicc._remove_notification, True),
    b"\xbf\x3c": ("EuiccConfiguredAddresses", VirtualEuicc._configured_addresses, False),
    b"\xbf\x3f": ("SetDefaultDpAddress", VirtualEuicc._set_default_dp, True),
    b"\xbf\x43": ("GetRAT", VirtualEuicc._rat, False),
    b"\xbf\x3e": ("GetEID", VirtualEuicc._eid, False),
    b"\xbf\x2d": ("GetProfilesInfo", VirtualEuicc._profiles_info, False),
    b"\xbf\x31": ("EnableProfile", VirtualEuicc._enable, True),
    b"\xbf\x32": ("DisableProfile", VirtualEuicc._disable, True),
    b"\xbf\x33": ("DeleteProfile", VirtualEuicc._delete, True),
    b"\xbf\x29": ("SetNickname", VirtualEuicc._nickname, True),
    b"\xbf\x34": ("EuiccMemoryReset", VirtualEuicc._memory_reset, True),
}
