"""ES10c of the virtual eUICC: profile management by the LPA (SGP.22 5.7.15-5.7.21).

Functions of one :class:`~smdpp.euicc.state.CardState`, each taking the
request as received and returning the response DER: GetProfilesInfo (BF2D),
EnableProfile (BF31), DisableProfile (BF32), DeleteProfile (BF33),
SetNickname (BF29), GetEID (BF3E), EuiccMemoryReset (BF34), plus the
otherSignedNotification that enable, disable and delete leave for the LPA
(SGP.22 5.7.7, 3.5).  The messages are read and built with the raw TLV
helpers; the result codes are those of the SGP.22 ASN.1.
"""
from __future__ import annotations

from typing import Callable

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import Tlv, TlvError, encode_tlv, iter_tlvs, parse_single
from smdpp.euicc.info import named_bits
from smdpp.euicc.state import CardState, ProfileRecord

__all__ = ["NOTIFICATION_EVENTS", "iccid_to_ef", "encode_integer", "get_profiles_info", "enable_profile",
           "disable_profile", "delete_profile", "set_nickname", "memory_reset", "other_notification",
           "RequestError", "profile_target"]

#: NotificationEvent bits (SGP.22 5.7.7).
NOTIFICATION_EVENTS = ("install", "enable", "disable", "delete")
#: Results of EnableProfile / DisableProfile / DeleteProfile (SGP.22 5.7.16-5.7.18).
OK, NOT_FOUND, WRONG_STATE = 0, 1, 2
#: ProfileInfo tags the eUICC returns when the LPA gives no tagList (SGP.22 5.7.15).
DEFAULT_TAGS = (b"\x5a", b"\x4f", b"\x9f\x70", b"\x90", b"\x91", b"\x92", b"\x93", b"\x94", b"\x95",
                b"\xb6")


class RequestError(ValueError):
    """The request cannot be read (the card answers with a status word)."""


def encode_integer(value: int) -> bytes:
    """Contents octets of an INTEGER (X.690 8.3), shortest two's complement."""
    return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)


def iccid_to_ef(digits: str) -> bytes:
    """The EF.ICCID coding of ICCID digits (nibble-swapped BCD, 'F' padded to 10 bytes)."""
    padded = digits.ljust(20, "f")
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, 20, 2))


def _tlv(data: bytes, tag: bytes) -> Tlv:
    try:
        return parse_single(data, tag)
    except TlvError as exc:
        raise RequestError(f"{tag.hex()} request malformed: {exc}") from None


def _children(tlv: Tlv) -> list[Tlv]:
    try:
        return tlv.children()
    except TlvError as exc:
        raise RequestError(f"{tlv.tag.hex()} request malformed: {exc}") from None


def _result(tag: bytes, code: int) -> bytes:
    return encode_tlv(tag, encode_tlv(b"\x80", encode_integer(code)))


def profile_target(state: CardState, ident: Tlv) -> ProfileRecord | None:
    """The profile an isdpAid '4F' or iccid '5A' names; RequestError for another tag."""
    if ident.tag == b"\x4f":
        return state.profile(aid=ident.value.hex())
    if ident.tag == b"\x5a":
        if len(ident.value) != 10:
            raise RequestError("iccid is not 10 bytes")
        return state.profile(iccid=_digits(ident.value))
    raise RequestError(f"profile identifier with tag {ident.tag.hex()}")


def _digits(iccid_ef: bytes) -> str:
    return bytes(((b & 0x0F) << 4) | (b >> 4) for b in iccid_ef).hex().rstrip("f")


# --- GetProfilesInfo (SGP.22 5.7.15) ---------------------------------------------------


def _tag_list(value: bytes) -> list[bytes]:
    """The tags of a tagList '5C' (each a BER tag, X.690 8.1.2)."""
    tags, i = [], 0
    while i < len(value):
        j = i + 1
        if value[i] & 0x1F == 0x1F:
            while j < len(value) and value[j] & 0x80:
                j += 1
            j += 1
        if j > len(value):
            raise RequestError("tagList ends inside a tag")
        tags.append(value[i:j])
        i = j
    return tags


def _notification_config(record: ProfileRecord) -> bytes:
    items = b"".join(rsp().encode("NotificationConfigurationInformation", {
        "profileManagementOperation": named_bits(*events), "notificationAddress": address})
        for events, address in record.notification_config)
    return items


def _profile_info(record: ProfileRecord, tags: list[bytes]) -> bytes:
    fields: dict[bytes, bytes | None] = {
        b"\x5a": iccid_to_ef(record.iccid),
        b"\x4f": bytes.fromhex(record.isdp_aid),
        b"\x9f\x70": encode_integer(1 if record.state == "enabled" else 0),
        b"\x90": record.nickname.encode("utf-8") if record.nickname else None,
        b"\x91": record.service_provider_name.encode("utf-8"),
        b"\x92": record.profile_name.encode("utf-8"),
        b"\x93": encode_integer(record.icon_type) if record.icon_type is not None else None,
        b"\x94": bytes.fromhex(record.icon) if record.icon else None,
        b"\x95": encode_integer(record.profile_class),
        b"\xb6": _notification_config(record) if record.notification_config else None,
    }
    return encode_tlv(b"\xe3", b"".join(encode_tlv(tag, fields[tag]) for tag in tags
                                        if fields.get(tag) is not None))


def get_profiles_info(state: CardState, request: bytes) -> bytes:
    """ProfileInfoListResponse (BF2D): profileInfoListOk 'A0' of ProfileInfo 'E3'."""
    parts = _children(_tlv(request, b"\xbf\x2d"))
    criteria: Tlv | None = None
    tags = list(DEFAULT_TAGS)
    for part in parts:
        if part.tag == b"\xa0":
            inner = _children(part)
            if len(inner) != 1:
                raise RequestError("searchCriteria must hold one choice")
            criteria = inner[0]
        elif part.tag == b"\x5c":
            tags = _tag_list(part.value)
        else:
            raise RequestError(f"ProfileInfoListRequest part {part.tag.hex()}")
    records = state.profiles
    if criteria is not None:
        if criteria.tag == b"\x95":
            wanted = int.from_bytes(criteria.value, "big", signed=True) if criteria.value else -1
            records = [r for r in records if r.profile_class == wanted]
        else:
            found = profile_target(state, criteria)
            records = [found] if found else []
    body = b"".join(_profile_info(r, tags) for r in records)
    return encode_tlv(b"\xbf\x2d", encode_tlv(b"\xa0", body))


# --- Enable / Disable / Delete (SGP.22 5.7.16-5.7.18) --------------------------------

Notify = Callable[[ProfileRecord, str], None]


def _identified(state: CardState, request: bytes, tag: bytes) -> tuple[ProfileRecord | None, list[Tlv]]:
    parts = _children(_tlv(request, tag))
    if not parts or parts[0].tag != b"\xa0":
        raise RequestError(f"{tag.hex()} request lacks profileIdentifier 'A0'")
    ident = _children(parts[0])
    if len(ident) != 1:
        raise RequestError("profileIdentifier must hold one choice")
    if len(parts) > 1 and parts[1].tag != b"\x81":
        raise RequestError(f"{tag.hex()} request part {parts[1].tag.hex()}")
    return profile_target(state, ident[0]), parts


def _in_state(state: CardState, request: bytes, tag: bytes,
              required: str) -> tuple[ProfileRecord | None, bytes | None]:
    """(the profile, None) if it exists in the ``required`` state, else (None, the refusal)."""
    record, _ = _identified(state, request, tag)
    if record is None:
        return None, _result(tag, NOT_FOUND)
    if record.state != required:
        return None, _result(tag, WRONG_STATE)
    return record, None


def enable_profile(state: CardState, request: bytes, notify: Notify) -> bytes:
    """EnableProfileResponse (BF31): the enabled profile, if another, is disabled first."""
    record, refusal = _in_state(state, request, b"\xbf\x31", "disabled")
    if record is None:
        return refusal  # type: ignore[return-value]
    previous = state.enabled()
    if previous is not None:
        previous.state = "disabled"
        notify(previous, "disable")
    record.state = "enabled"
    notify(record, "enable")
    return _result(b"\xbf\x31", OK)


def disable_profile(state: CardState, request: bytes, notify: Notify) -> bytes:
    """DisableProfileResponse (BF32)."""
    record, refusal = _in_state(state, request, b"\xbf\x32", "enabled")
    if record is None:
        return refusal  # type: ignore[return-value]
    record.state = "disabled"
    notify(record, "disable")
    return _result(b"\xbf\x32", OK)


def delete_profile(state: CardState, request: bytes, notify: Notify) -> bytes:
    """DeleteProfileResponse (BF33); DeleteProfileRequest is the bare choice '4F' or '5A'."""
    parts = _children(_tlv(request, b"\xbf\x33"))
    if len(parts) != 1:
        raise RequestError("DeleteProfileRequest must hold one identifier")
    record = profile_target(state, parts[0])
    if record is None:
        return _result(b"\xbf\x33", NOT_FOUND)
    if record.state != "disabled":
        return _result(b"\xbf\x33", WRONG_STATE)
    state.profiles.remove(record)
    notify(record, "delete")
    return _result(b"\xbf\x33", OK)


def set_nickname(state: CardState, request: bytes) -> bytes:
    """SetNicknameResponse (BF29): ok(0), iccidNotFound(1)."""
    parts = _children(_tlv(request, b"\xbf\x29"))
    if [p.tag for p in parts] != [b"\x5a", b"\x90"]:
        raise RequestError("SetNicknameRequest must be iccid '5A' and profileNickname '90'")
    try:
        nickname = parts[1].value.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("profileNickname is not UTF-8") from None
    if len(nickname) > 64:
        raise RequestError("profileNickname is longer than 64 characters")
    record = profile_target(state, parts[0])
    if record is None:
        return _result(b"\xbf\x29", NOT_FOUND)
    record.nickname = nickname
    return _result(b"\xbf\x29", OK)


def memory_reset(state: CardState, request: bytes) -> bytes:
    """EuiccMemoryResetResponse (BF34): resetOptions '82' deleteOperationalProfiles(0),
    deleteFieldLoadedTestProfiles(1), resetDefaultSmdpAddress(2); ok(0) or nothingToDelete(1).

    Profiles go without notifications, as SGP.22 5.7.19 has it.
    """
    parts = _children(_tlv(request, b"\xbf\x34"))
    if len(parts) != 1 or parts[0].tag != b"\x82" or not parts[0].value or parts[0].value[0] > 7:
        raise RequestError("EuiccMemoryResetRequest must hold resetOptions '82'")
    bits = parts[0].value[1:]
    options = {i for i in range(3) if i < 8 * len(bits) and bits[i // 8] & (0x80 >> (i % 8))}
    doomed = [r for r in state.profiles
              if (0 in options and r.profile_class == 2) or (1 in options and r.profile_class == 0)]
    changed = bool(doomed) or (2 in options and bool(state.default_dp_address))
    for record in doomed:
        state.profiles.remove(record)
    if 2 in options:
        state.default_dp_address = ""
    return _result(b"\xbf\x34", OK if changed else 1)


# --- otherSignedNotification (SGP.22 5.7.7) ---------------------------------------------


def notification_addresses(record: ProfileRecord, event: str) -> list[str]:
    """Where an ``event`` of this profile is reported.

    The addresses of the profile's notificationConfigurationInfo that list the
    event; a profile whose metadata has none reports to the SM-DP+ that
    installed it (a test card choice: smdpp sends no notificationConfigurationInfo).
    """
    index = NOTIFICATION_EVENTS.index(event)
    if record.notification_config:
        return [address for events, address in record.notification_config if index in events]
    return [record.smdp_address] if record.smdp_address else []


def other_notification(*, seq_number: int, event: str, address: str, iccid: str,
                       sign: Callable[[bytes], bytes], euicc_cert: bytes, eum_cert: bytes) -> bytes:
    """otherSignedNotification: tbsOtherNotification, its signature, CERT.EUICC and CERT.EUM."""
    tbs = rsp().encode("NotificationMetadata", {
        "seqNumber": seq_number,
        "profileManagementOperation": named_bits(NOTIFICATION_EVENTS.index(event)),
        "notificationAddress": address,
        "iccid": iccid_to_ef(iccid),
    })
    return encode_tlv(b"\x30", tbs + encode_tlv(b"\x5f\x37", sign(tbs)) + euicc_cert + eum_cert)


def notification_metadata(notification: bytes) -> Tlv:
    """The NotificationMetadata 'BF2F' inside a stored PendingNotification, as stored."""
    top = parse_single(notification)
    first = top.children()[0]
    if top.tag == b"\xbf\x37":  # ProfileInstallationResult: BF27 { 80, BF2F, ... }
        return next(t for t in iter_tlvs(first.data, first.value_start, first.end) if t.tag == b"\xbf\x2f")
    return first
