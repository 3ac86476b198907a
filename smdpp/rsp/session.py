"""The RSP session record (SGP.22 3.1.2 / 3.1.3).

One session covers one Common Mutual Authentication followed by one profile
download, identified by the SM-DP+-generated TransactionId.  Its states and
the functions that move it on are the table in :mod:`smdpp.rsp.states`
(``SessionState`` is re-exported here for the stores).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from smdpp.rsp.states import SessionState

__all__ = ["Session", "SessionState"]


@dataclass
class Session:
    """Everything the SM-DP+ remembers about one RSP session.

    Byte fields hold the exact bytes exchanged.  ``smdp_ot_key`` is the only
    secret (otSK.DP.ECKA, PKCS#8 DER): stores must never write it in clear
    (see :data:`SECRET_FIELDS`) and it is dropped when the session finishes.
    """

    transaction_id: str  # upper-case hex of the TransactionId bytes
    state: SessionState
    created: float
    expires: float
    smdp_address: str
    euicc_challenge: bytes
    server_challenge: bytes
    ci_pkid: bytes
    # set by authenticateClient
    eid: str | None = None
    euicc_public_key: bytes | None = None  # SubjectPublicKeyInfo DER of PK.EUICC.ECDSA
    matching_id: str | None = None
    iccid: str | None = None
    smdp_signature2: bytes | None = None  # the '5F37' TLV sent to the eUICC
    cc_required: bool = False
    ordered: bool = False  # the profile is an operator's order (smdpp.rsp.orders)
    # set by getBoundProfilePackage
    euicc_otpk: bytes | None = None
    smdp_ot_key: bytes | None = None  # secret: otSK.DP.ECKA, PKCS#8 DER
    bpp_count: int = 0
    # set when the session finishes
    result: dict[str, Any] = field(default_factory=dict)

    SECRET_FIELDS = ("smdp_ot_key",)

    @property
    def transaction_id_bytes(self) -> bytes:
        """The TransactionId as bytes."""
        return bytes.fromhex(self.transaction_id)

    def finish(self, state: SessionState, result: dict[str, Any]) -> None:
        """Close the session: keep the outcome, forget keys and signed material."""
        self.state = state
        self.result = result
        self.smdp_ot_key = None
        self.euicc_otpk = None
        self.smdp_signature2 = None
        self.euicc_challenge = b""
        self.server_challenge = b""

    def to_record(self) -> dict[str, Any]:
        """A plain dict of builtins (for pickling stores)."""
        # Every ES9+ call reads and writes its session: copy the instance dict (the
        # fields, nothing else is ever set) instead of asking for each field by name;
        # shallow, as every field is immutable but ``result`` (asdict's deepcopy is slow).
        record = self.__dict__.copy()
        record["state"] = self.state.value
        record["result"] = dict(self.result)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Session":
        """Inverse of :meth:`to_record`; ValueError for an unknown state."""
        data = dict(record)
        data["result"] = dict(data.get("result") or {})  # the caller's own, as in to_record
        try:  # a dict lookup by the stored str is cheaper than the Enum call
            data["state"] = _STATES[data["state"]]
        except (KeyError, TypeError):
            data["state"] = SessionState(data["state"])  # a member itself, or ValueError
        return cls(**data)


_STATES = {state.value: state for state in SessionState}
