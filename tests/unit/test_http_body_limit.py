"""ES9+ requests keep at most max_body bytes of their body, however it arrives."""
from __future__ import annotations

import io

import pytest
from twisted.web.test.requesthelper import DummyChannel

from smdpp.http.klein_routes import Es9pRequest, Es9pSite


def _request(max_body: int = 1000) -> Es9pRequest:
    channel = DummyChannel()
    channel.site = Es9pSite(resource=None, max_body=max_body)
    return Es9pRequest(channel)


def test_announced_oversized_body_is_not_stored() -> None:
    request = _request()
    request.gotLength(10_000_000)
    for _ in range(100):
        request.handleContentChunk(b"x" * 65536)
    assert request.body_too_large
    assert isinstance(request.content, io.BytesIO) and request.content.tell() == 0


@pytest.mark.parametrize("chunk", [1, 999, 4096])
def test_chunked_body_is_cut_at_the_limit(chunk: int) -> None:
    request = _request()
    request.gotLength(None)  # Transfer-Encoding: chunked
    for _ in range(3000 // chunk + 1):
        request.handleContentChunk(b"y" * chunk)
    assert request.body_too_large
    assert request.content.tell() <= 1000


def test_body_within_the_limit_is_kept() -> None:
    request = _request()
    request.gotLength(1000)
    request.handleContentChunk(b"z" * 600)
    request.handleContentChunk(b"z" * 400)
    assert not request.body_too_large
    assert request.content.getvalue() == b"z" * 1000
