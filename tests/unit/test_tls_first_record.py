"""A ClientHello trickled in is handed to OpenSSL once its record is whole (smdpp/http/tls.py)."""
from __future__ import annotations

from smdpp.http.tls import first_record_complete

HEADER = b"\x16\x03\x01\x02\x00"  # a handshake record of 512 bytes


def test_a_record_is_complete_with_its_announced_length() -> None:
    assert not first_record_complete(b"")
    assert not first_record_complete(b"\x16\x03")
    assert not first_record_complete(HEADER)
    assert not first_record_complete(HEADER + b"a" * 511)
    assert first_record_complete(HEADER + b"a" * 512)
    assert first_record_complete(HEADER + b"a" * 600)  # the next record begun: pass it all


def test_what_is_no_handshake_record_goes_to_openssl_at_once() -> None:
    assert first_record_complete(b"G")  # plain HTTP to the TLS port: refused by OpenSSL
    assert first_record_complete(b"\x17\x03\x03")


def test_a_record_longer_than_the_limit_is_passed_on_at_the_limit() -> None:
    huge = b"\x16\x03\x01\xff\xff"
    assert not first_record_complete(huge + b"a" * 1000)
    assert first_record_complete(huge + b"a" * 65531)  # 65536 in all
