"""The JSON of successful ES9+ answers (smdpp/http/es9p.py), built without re-scanning base64."""
from __future__ import annotations

import base64
import json
import os

from smdpp.http.es9p import _success


def test_success_answer_is_the_json_of_the_result_with_bytes_in_base64() -> None:
    result = {"transactionId": "0123456789ABCDEF", "boundProfilePackage": os.urandom(5000),
              "empty": b"", "count": 3, "nested": {"a": [1, "x"]}, 'odd "key"\n': "é\u2028"}
    answer = json.loads(_success(result))
    assert answer.pop("header") == {"functionExecutionStatus": {"status": "Executed-Success"}}
    expected = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                for k, v in result.items()}
    assert answer == expected
    assert list(answer) == list(result)  # the order of the engine's fields is kept


def test_empty_result_is_only_the_header() -> None:
    assert json.loads(_success({})) == {
        "header": {"functionExecutionStatus": {"status": "Executed-Success"}}}
