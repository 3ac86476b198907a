"""The ES2+ HTTP mapping (smdpp.http.es2p): headers, sizes, operator binding by client certificate."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from smdpp.http.es2p import Es2pApi
from smdpp.http.es9p import HttpRequest
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.operators import Operator, OperatorRegistry
from smdpp.orders.pool import load_pool
from smdpp.orders.store import OrderStore
from tests.orders_fixtures import pool_store, PROFILE_TYPE, write_pool

HEADERS = {b"content-type": b"application/json", b"x-admin-protocol": b"gsma/rsp/v2.5.0"}


@pytest.fixture
def api(tmp_path: Path):
    store = pool_store(tmp_path, range(1, 3))
    registry = OperatorRegistry(tmp_path / "operators")
    registry.register(Operator("op1", hashlib.sha256(b"CERT1").digest()))
    yield Es2pApi(Es2pCore(store, "smdp.example"), registry)
    store.close()


def post(api: Es2pApi, function: str, body: object, *, cert: bytes | None = b"CERT1",
         headers: dict | None = None, method: str = "POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = api.handle(HttpRequest(method, f"/gsma/rsp2/es2plus/{function}",
                                   headers if headers is not None else HEADERS, data,
                                   peer_certificate=cert))
    return reply.status, json.loads(reply.body) if reply.body else None


def order(call_id: str = "1", requester: str = "op1") -> dict:
    return {"header": {"functionRequesterIdentifier": requester, "functionCallIdentifier": call_id},
            "profileType": PROFILE_TYPE}


def codes(answer: dict) -> tuple[str, str]:
    data = answer["header"]["functionExecutionStatus"]["statusCodeData"]
    return data["subjectCode"], data["reasonCode"]


def test_es2p_http_success_and_refusals(api: Es2pApi) -> None:
    status, answer = post(api, "downloadOrder", order())
    assert status == 200 and answer["header"]["functionExecutionStatus"]["status"] == "Executed-Success"
    assert len(answer["iccid"]) == 19
    status, answer = post(api, "downloadOrder", order("2"), cert=b"UNKNOWN")
    assert status == 403 and codes(answer) == ("1.1", "1.1")
    status, answer = post(api, "downloadOrder", order("2"), cert=None)
    assert status == 403 and codes(answer) == ("1.1", "1.1")
    status, answer = post(api, "downloadOrder", order("2", requester="op2"))
    assert status == 200 and codes(answer) == ("1.1", "1.2")
    status, answer = post(api, "downloadOrder", order("1"))
    assert codes(answer) == ("1.1", "3.3")
    assert post(api, "downloadOrder", b"{not json")[0] == 400
    assert post(api, "downloadOrder", b"[]")[0] == 400
    assert post(api, "downloadOrder", b"{" * 100000)[0] == 413
    assert post(api, "nothing", order("3"))[0] == 404
    assert post(api, "downloadOrder", order("3"), method="GET")[0] == 405
    assert post(api, "downloadOrder", order("3"), headers={b"content-type": b"application/json"})[0] == 400
    status, answer = post(api, "downloadOrder", {"header": "x"})
    assert status == 200 and codes(answer) == ("1.2", "2.2")


def test_es2p_plain_http_needs_a_registered_requester(api: Es2pApi) -> None:
    api.client_certificates = False
    assert post(api, "downloadOrder", order("7", requester="nobody"), cert=None)[0] == 403
    status, answer = post(api, "downloadOrder", order("8"), cert=None)
    assert status == 200 and "iccid" in answer


def test_es2p_hostile_bodies_get_sgp22_refusals(api: Es2pApi) -> None:
    """Every field of every function replaced by values of the wrong type, size or shape:
    always an SGP.22 answer, never a server failure (1.2/4.2) or an HTTP 5xx."""
    import random
    rng = random.Random(15)
    bad_values = [None, 0, -1, 1.5, True, [], {}, "", "x" * 5000, "\x00\n", "８９",
                  "8999000000000000013FF", "0" * 32, {"nested": [1, {"a": None}]}, "F" * 20]
    fields = ["iccid", "eid", "profileType", "matchingId", "confirmationCode", "releaseFlag",
              "finalProfileStatusIndicator", "smdsAddress"]
    count = 0
    for function in api.core.functions:
        for field in fields + ["header"]:
            for value in bad_values:
                count += 1
                body = {"header": {"functionRequesterIdentifier": "op1",
                                   "functionCallIdentifier": f"h{count}"},
                        "iccid": "8999000000000000013", "releaseFlag": True,
                        "finalProfileStatusIndicator": "Available"}
                body[field] = value
                if rng.random() < 0.3:
                    body["header"] = {"functionRequesterIdentifier": rng.choice(bad_values),
                                      "functionCallIdentifier": rng.choice(bad_values)}
                status, answer = post(api, function, body)
                assert status in (200, 400, 403, 413), (function, field, value, status)
                if answer and answer["header"]["functionExecutionStatus"]["status"] == "Failed":
                    assert codes(answer) != ("1.2", "4.2"), (function, field, value)
    assert count > 300
