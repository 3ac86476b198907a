"""The persistent state of the virtual eUICC: one JSON file, written atomically, mode 0600.

What a real eUICC keeps in its non-volatile memory across power cycles
(SGP.22 2.4, 5.7): the installed profiles (ISD-P AID, ICCID, state, the
metadata of their StoreMetadataRequest, nickname), the pending
notifications with their sequence numbers (5.7.9-5.7.11), the last sequence
number used, and the configured addresses (default SM-DP+ address and root
SM-DS address, 5.7.20).  The RSP session of a download in progress is not
kept: like a card's RAM it is lost when the process ends.

The identity (certificates and SK.EUICC.ECDSA) stays in its folder; the
state names the folder.  :func:`save_state` writes a temporary file beside
the target and renames it over the target, so a crash leaves either the
old or the new state, never a mix.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CardState", "ProfileRecord", "StateError", "load_state", "save_state", "new_state",
           "lock_card", "STATE_FORMAT"]

STATE_FORMAT = "smdpp-virtual-euicc/1"
#: A state file larger than this is refused unread (a card holds a few profiles).
MAX_STATE_BYTES = 16 * 1024 * 1024
PROFILE_STATES = ("disabled", "enabled")
# SGP.22 5.7.20 / 5.7.15: the root SM-DS address of a test card.
DEFAULT_ROOT_DS = "testrootsmds.example.com"


class StateError(ValueError):
    """The card state file is missing, unreadable or damaged (the message names the file)."""


@dataclass
class ProfileRecord:
    """One installed profile (SGP.22 5.7.15 ProfileInfo)."""

    iccid: str  # digits, as the user types them
    isdp_aid: str  # hex
    state: str = "disabled"  # ProfileState: disabled(0) or enabled(1)
    nickname: str = ""
    service_provider_name: str = ""
    profile_name: str = ""
    profile_class: int = 2  # test(0), provisioning(1), operational(2)
    icon_type: int | None = None
    icon: str = ""  # hex
    # notificationConfigurationInfo: [[event names], address], as the SM-DP+ sent it
    notification_config: list[list[Any]] = field(default_factory=list)
    smdp_address: str = ""  # serverAddress of the session that installed the profile
    smdp_oid: str = ""
    upp_sha256: str = ""  # the installed package is not kept, only its digest


@dataclass
class CardState:
    """Everything the virtual eUICC keeps between runs."""

    identity: str  # folder with ci_cert.der, eum_cert.der, euicc_cert.der, euicc_key.pem
    profiles: list[ProfileRecord] = field(default_factory=list)
    notifications: dict[int, str] = field(default_factory=dict)  # seqNumber -> DER (hex)
    seq_number: int = 0  # the last seqNumber given to a notification
    default_dp_address: str = ""
    root_ds_address: str = DEFAULT_ROOT_DS

    def profile(self, *, iccid: str | None = None, aid: str | None = None) -> ProfileRecord | None:
        """The profile with this ICCID (digits) or ISD-P AID (hex), None if there is none."""
        for record in self.profiles:
            if iccid is not None and record.iccid == iccid:
                return record
            if aid is not None and record.isdp_aid.upper() == aid.upper():
                return record
        return None

    def enabled(self) -> ProfileRecord | None:
        """The enabled profile, if any (SGP.22: at most one at a time)."""
        return next((p for p in self.profiles if p.state == "enabled"), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notifications"] = {str(k): v for k, v in self.notifications.items()}
        return {"format": STATE_FORMAT, **data}


def new_state(identity: Path) -> CardState:
    """A factory-fresh card for the identity folder ``identity``."""
    return CardState(identity=str(Path(identity).resolve()))


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise StateError(f"card state {path} is damaged: {what}")


def _profile(raw: Any, path: Path) -> ProfileRecord:
    _require(isinstance(raw, dict), path, "a profile is not an object")
    known = set(ProfileRecord.__dataclass_fields__)
    _require(set(raw) <= known, path, f"unknown profile fields {sorted(set(raw) - known)}")
    try:
        record = ProfileRecord(**raw)
    except TypeError as exc:
        raise StateError(f"card state {path} is damaged: profile: {exc}") from None
    _require(isinstance(record.iccid, str) and record.iccid.isdigit() and len(record.iccid) <= 20,
             path, f"ICCID {record.iccid!r}")
    _require(isinstance(record.isdp_aid, str) and _is_hex(record.isdp_aid), path,
             f"ISD-P AID {record.isdp_aid!r}")
    _require(record.state in PROFILE_STATES, path, f"profile state {record.state!r}")
    for name in ("nickname", "service_provider_name", "profile_name", "smdp_address", "smdp_oid",
                 "upp_sha256", "icon"):
        _require(isinstance(getattr(record, name), str), path, f"profile {name} is not a string")
    _require(_is_hex(record.icon), path, "profile icon is not hex")
    _require(isinstance(record.profile_class, int), path, "profileClass is not an integer")
    _require(isinstance(record.notification_config, list), path, "notification_config")
    return record


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except (ValueError, TypeError):
        return False
    return True


def load_state(path: Path) -> CardState:
    """Read and check a card state file; :class:`StateError` naming the file and the fault."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            raise StateError(f"card state {path} is larger than {MAX_STATE_BYTES} bytes")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise StateError(f"cannot read card state {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise StateError(f"card state {path} is not JSON: {exc}") from None
    _require(isinstance(data, dict) and data.get("format") == STATE_FORMAT, path,
             f"not a {STATE_FORMAT} file")
    _require(isinstance(data.get("identity"), str), path, "no identity folder")
    profiles = data.get("profiles", [])
    _require(isinstance(profiles, list), path, "profiles is not a list")
    notes = data.get("notifications", {})
    _require(isinstance(notes, dict), path, "notifications is not an object")
    notifications: dict[int, str] = {}
    for key, value in notes.items():
        _require(key.isdigit() and isinstance(value, str) and _is_hex(value), path,
                 f"notification {key!r}")
        notifications[int(key)] = value
    seq = data.get("seq_number", 0)
    _require(isinstance(seq, int) and seq >= max(notifications, default=0), path, "seq_number")
    state = CardState(identity=data["identity"], profiles=[_profile(p, path) for p in profiles],
                      notifications=notifications, seq_number=seq,
                      default_dp_address=data.get("default_dp_address", ""),
                      root_ds_address=data.get("root_ds_address", DEFAULT_ROOT_DS))
    _require(isinstance(state.default_dp_address, str) and isinstance(state.root_ds_address, str),
             path, "configured addresses")
    _require(len({p.iccid for p in state.profiles}) == len(state.profiles), path, "duplicate ICCID")
    _require(sum(p.state == "enabled" for p in state.profiles) <= 1, path,
             "more than one enabled profile")
    return state


def save_state(state: CardState, path: Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename), mode 0600."""
    path = Path(path)
    payload = json.dumps(state.to_json(), indent=1, sort_keys=True).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def lock_card(path: Path) -> int:
    """Hold an exclusive lock on ``<path>.lock`` for the life of the process; its descriptor.

    One card, one process: two (an lpac run and a vpcd card, say) would each
    rewrite the state from their own copy.  StateError if another holds it.
    """
    lock_path = Path(f"{path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError(f"card {path} is in use by another process (lock {lock_path})") from None
    return fd
