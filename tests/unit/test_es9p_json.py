"""The JSON of ES9+ answers (smdpp/http/es9p.py): successes built without re-scanning
base64, and the generic failure when the server itself fails."""
from __future__ import annotations

import base64
import json
import logging
import os

import pytest

from smdpp.errors import SgpError
from smdpp.http.es9p import PATH_PREFIX, Es9pApi, HttpRequest, success_body


def test_success_answer_is_the_json_of_the_result_with_bytes_in_base64() -> None:
    result = {"transactionId": "0123456789ABCDEF", "boundProfilePackage": os.urandom(5000),
              "empty": b"", "count": 3, "nested": {"a": [1, "x"]}, 'odd "key"\n': "é\u2028"}
    answer = json.loads(success_body(result))
    assert answer.pop("header") == {"functionExecutionStatus": {"status": "Executed-Success"}}
    expected = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                for k, v in result.items()}
    assert answer == expected
    assert list(answer) == list(result)  # the order of the engine's fields is kept


def test_empty_result_is_only_the_header() -> None:
    assert json.loads(success_body({})) == {
        "header": {"functionExecutionStatus": {"status": "Executed-Success"}}}


class _FailingEngine:
    """An engine whose initiateAuthentication fails the way ``failure`` says."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def initiate_authentication(self, **_: object) -> dict:
        raise self.failure

    authenticate_client = get_bound_profile_package = handle_notification = \
        cancel_session = initiate_authentication


def _initiate(api: "Es9pApi") -> dict:
    body = json.dumps({"euiccChallenge": base64.b64encode(bytes(16)).decode(),
                       "euiccInfo1": base64.b64encode(b"\xbf\x20\x00").decode(),
                       "smdpAddress": "smdp.example"}).encode()
    response = api.handle(HttpRequest("POST", PATH_PREFIX + "initiateAuthentication",
                                      {b"content-type": b"application/json",
                                       b"x-admin-protocol": b"gsma/rsp/v2.2.0"}, body, False))
    assert response.status == 200
    return json.loads(response.body)["header"]["functionExecutionStatus"]


def test_a_server_io_failure_is_one_log_line_and_a_generic_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    """A full disk under the session store: 1.2/4.2 to the client, one line without a
    traceback in the log (it is the machine's trouble, not a bug to debug)."""
    api = Es9pApi(_FailingEngine(OSError(28, "No space left on device")))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="smdpp.http.es9p"):
        answer = _initiate(api)
    assert answer["status"] == "Failed"
    assert answer["statusCodeData"]["subjectCode"] == "1.2"
    assert answer["statusCodeData"]["reasonCode"] == "4.2"
    [record] = caplog.records
    assert "initiateAuthentication failed on the server: [Errno 28] No space left" in record.message
    assert record.exc_info is None


def test_a_bug_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    api = Es9pApi(_FailingEngine(KeyError("oops")))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="smdpp.http.es9p"):
        answer = _initiate(api)
    assert answer["statusCodeData"]["reasonCode"] == "4.2"
    [record] = caplog.records
    assert "raised unexpectedly" in record.message and record.exc_info is not None


def test_a_full_disk_is_logged_once_per_interval_not_per_request(
        caplog: pytest.LogCaptureFixture) -> None:
    api = Es9pApi(_FailingEngine(OSError(28, "No space left on device")))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="smdpp.http.es9p"):
        answers = [_initiate(api) for _ in range(18)]
    assert all(a["statusCodeData"]["reasonCode"] == "4.2" for a in answers)
    assert len(caplog.records) == 1
    api._server_errors._next = 0.0  # the interval is over
    with caplog.at_level(logging.ERROR, logger="smdpp.http.es9p"):
        _initiate(api)
    assert len(caplog.records) == 2
    assert "(17 more such failure(s) since the last line)" in caplog.records[1].message


def test_a_long_message_is_bounded_in_the_answer_and_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    """An engine message that quotes 60,000 characters of the client's."""
    api = Es9pApi(_FailingEngine(SgpError("8.8.1", "3.8", "x" * 60_000)))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="smdpp.http.es9p"):
        answer = _initiate(api)
    message = answer["statusCodeData"]["message"]
    assert message == "x" * 200 + "... (60000 characters)"
    [record] = caplog.records
    assert len(record.getMessage()) < 400


def test_every_status_message_is_bounded_where_it_is_made() -> None:
    """The engine's own log lines repeat the message: it is cut when the error is built."""
    from smdpp import status
    error = status.matching_id_refused("no profile for matchingId " + "m" * 60_000)
    assert len(error.message) < 250 and error.message.endswith("(60026 characters)")
    assert len(str(error)) < 260
    assert status.malformed("short").message == "short"
