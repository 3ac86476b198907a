"""The session record (smdpp.rsp.session): its plain-dict form for the stores."""
from __future__ import annotations

import dataclasses
import pickle

import pytest

from smdpp.rsp.session import Session, SessionState


def _session() -> Session:
    return Session(transaction_id="0A" * 16, state=SessionState.BPP_DELIVERED, created=1.5,
                   expires=601.5, smdp_address="smdp.example.com", euicc_challenge=b"\x01" * 16,
                   server_challenge=b"\x02" * 16, ci_pkid=b"\x03" * 20, eid="89" + "0" * 30,
                   euicc_public_key=b"\x30\x59", matching_id="M-1", iccid="8900",
                   smdp_signature2=b"\x5f\x37\x00", euicc_otpk=b"\x04" * 65,
                   smdp_ot_key=b"secret", bpp_count=2, result={"k": [1]})


def test_record_holds_every_field_as_builtins() -> None:
    session = _session()
    record = session.to_record()
    assert set(record) == {f.name for f in dataclasses.fields(Session)}
    assert record["state"] == "bpp_delivered" and type(record["state"]) is str
    assert record["euicc_otpk"] == b"\x04" * 65 and record["bpp_count"] == 2
    pickle.loads(pickle.dumps(record))  # plain data only
    assert "SessionState" not in repr(record)


def test_record_round_trip_and_independence() -> None:
    session = _session()
    record = session.to_record()
    back = Session.from_record(record)
    assert back == session and back.state is SessionState.BPP_DELIVERED
    record["result"]["k"] = "changed"  # the copy of result is the record's own
    assert session.result == {"k": [1]}
    back.state = SessionState.DONE  # and the record is not the session's dict
    assert session.to_record()["state"] == "bpp_delivered"


@pytest.mark.parametrize("state", list(SessionState))
def test_every_state_reads_back(state: SessionState) -> None:
    record = _session().to_record()
    record["state"] = state.value
    assert Session.from_record(record).state is state
    record["state"] = state  # a member instead of its value is accepted too
    assert Session.from_record(record).state is state


def test_unknown_state_is_refused() -> None:
    record = _session().to_record()
    record["state"] = "installed"
    with pytest.raises(ValueError):
        Session.from_record(record)
    record["state"] = ["initiated"]
    with pytest.raises((ValueError, TypeError)):
        Session.from_record(record)
