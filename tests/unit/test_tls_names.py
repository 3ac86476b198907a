"""DPtls names (RFC 6125) and the choice of DPtls by server name (SNI), without OpenSSL."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smdpp.http.client_hello import ClientHello
from smdpp.http.sni import Served, Site, choose, describe_sites
from smdpp.pki.dptls import TlsCredential, name_matches, normal_host, tls_sites
from smdpp.pki.issue import issue_ci, issue_dp_certificate


def test_name_matches_rfc6125() -> None:
    assert name_matches("smdp.example.com", "smdp.example.com")
    assert name_matches("*.example.com", "smdp.example.com")
    assert not name_matches("*.example.com", "example.com")  # the wildcard is one whole label
    assert not name_matches("*.example.com", "a.b.example.com")  # never across a dot
    assert not name_matches("*.com", "example.com")  # not a whole registered domain
    assert not name_matches("s*.example.com", "smdp.example.com")  # only as the whole leftmost label
    assert not name_matches("*.*.example.com", "a.b.example.com")
    assert not name_matches("smdp.example.com", "smdp.example.org")


def test_normal_host() -> None:
    assert normal_host(b"SMDP.Example.COM.") == "smdp.example.com"
    assert normal_host("smdp.example.com") == "smdp.example.com"
    for bad in (None, b"", b".", b"\xff.example.com", "a b.example.com", "x" * 254, "\u00e9.example"):
        assert normal_host(bad) is None, bad


def _credential(hostname: str, curve: str = "nist", oid: str = "2.999.10") -> TlsCredential:
    ci, ci_key = issue_ci(curve=curve)
    cert, _ = issue_dp_certificate(ci, ci_key, "tls", smdp_oid=oid, hostname=hostname)
    return TlsCredential(Path(f"/certs/DPtls/CERT_{hostname}_{curve}.pem"), Path("/certs/DPtls/SK.pem"), cert)


def _served(credential: TlsCredential) -> Served:
    return Served(credential, str(credential.curve), context=None, names=credential.dns_names)


def test_tls_sites_group_by_address_and_refuse_a_missing_one() -> None:
    dp, dp2 = _credential("one.example.com"), _credential("two.example.com", oid="2.999.12")
    dp2_brp = _credential("two.example.com", "brainpool", oid="2.999.12")
    sites = tls_sites([("One.Example.com", "DP (2.999.10)", ["2.999.10"]),
                       ("two.example.com", "DP2 (2.999.12)", ["2.999.12"])], [dp, dp2, dp2_brp])
    assert [(s.address, s.credentials) for s in sites] == [("one.example.com", (dp,)),
                                                           ("two.example.com", (dp2, dp2_brp))]
    assert dp2_brp.curve == "brainpoolP256r1" and dp.dns_names == ("one.example.com",)
    # DP's DPtls does not name two.example.com, and DP2's belongs to another SM-DP+ OID.
    with pytest.raises(ValueError, match=r"SM-DP\+ DP \(2\.999\.10\) is served at two\.example\.com, but no "
                                         r"DPtls in DPtls/ names two\.example\.com in its subjectAltName "
                                         r"\(CERT_one\.example\.com_nist\.pem names one\.example\.com\)"):
        tls_sites([("two.example.com", "DP (2.999.10)", ["2.999.10"])], [dp, dp2])


def test_choose_by_server_name_then_curve(caplog: pytest.LogCaptureFixture) -> None:
    dp, dp_brp = _served(_credential("one.example.com")), _served(_credential("one.example.com", "brainpool"))
    dp2, dp2_brp = _served(_credential("two.example.com")), _served(_credential("two.example.com", "brainpool"))
    wild = _served(_credential("*.lab.example.com"))
    sites = [Site("one.example.com", (dp, dp_brp)), Site("two.example.com", (dp2, dp2_brp)),
             Site("x.lab.example.com", (wild,))]
    tls12_brainpool = ClientHello(0x0303, (), (26,), (0x0403,))
    tls13 = ClientHello(0x0303, (0x0304,), (29, 23), (0x0403,))
    assert choose(sites, b"two.example.com", tls13) is dp2
    assert choose(sites, b"TWO.example.com.", tls12_brainpool) is dp2_brp
    assert choose(sites, b"one.example.com", tls12_brainpool) is dp_brp
    assert choose(sites, b"y.lab.example.com", tls13) is wild
    assert "TLS:" not in caplog.text
    with caplog.at_level(logging.INFO, logger="smdpp.http.tls"):
        assert choose(sites, None, tls13, "192.0.2.1") is dp
        assert choose(sites, b"other.example.com\n\xff" + b"z" * 200, tls12_brainpool) is dp_brp
    first, second = caplog.messages
    assert first == "TLS: no server name (SNI) from 192.0.2.1: presenting the DPtls of one.example.com"
    assert second.startswith("TLS: server name 'other.example.com\\n\\xff") and "...' named by no DPtls" in second
    assert len(second) < 200  # the client's string is cut short
    # One site without an address (ES2+): no choice by name, nothing logged.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="smdpp.http.tls"):
        assert choose([Site("", (dp, dp_brp))], b"two.example.com", tls12_brainpool) is dp_brp
    assert caplog.messages == []
    assert "chosen per handshake by server name (SNI)" in describe_sites(sites)
    assert describe_sites([Site("", (dp,))]).endswith("(NIST P-256, valid until "
                                                      f"{dp.credential.certificate.not_valid_after_utc.date()})")
