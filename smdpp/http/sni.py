"""Which DPtls a TLS handshake gets: by the client's server name (SNI), then by curve.

With several SM-DP+ identities served side by side (``--smdp-identity DP
--smdp-identity DP2``), each has its own SM-DP+ address and its own DPtls
naming it (:func:`smdpp.pki.dptls.tls_sites`); an LPA sends that address as
server_name (RFC 6066 3) and verifies the certificate for it (RFC 6125).
So the choice is first the address whose DPtls names the server name, then,
within it, the curve the client can verify (:func:`smdpp.http.client_hello.choose_certificate`:
NIST P-256 or brainpoolP256r1, SGP.22 2.6.6).  A client that sends no
server name, or one that no DPtls names, gets the default address's DPtls,
the one at ``--hostname`` (logged, the name cut short).  No OpenSSL here:
:mod:`smdpp.http.tls` holds each DPtls's context and calls :func:`choose`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from smdpp.http.client_hello import ClientHello, choose_certificate
from smdpp.pki.dptls import TlsCredential, name_matches, normal_host

log = logging.getLogger("smdpp.http.tls")

__all__ = ["Served", "Site", "choose", "describe_sites"]

#: At most this much of a client's server name goes into a log line.
NAME_SHOWN = 80
_CURVE_LABEL = {"secp256r1": "NIST P-256", "brainpoolP256r1": "brainpoolP256r1"}


@dataclass(frozen=True)
class Served:
    """One DPtls with its own OpenSSL context."""

    credential: TlsCredential
    curve: str  # the certificate's curve, cryptography's name
    context: Any  # an OpenSSL.SSL.Context, opaque here
    names: tuple[str, ...] = ()  # its dNSNames, matched against the client's server_name


@dataclass(frozen=True)
class Site:
    """The DPtls of one SM-DP+ address, in order of preference (NIST P-256 first)."""

    address: str  # '' for one anonymous site (ES2+): no choice by server name
    served: tuple[Served, ...]


def shown(server_name: bytes) -> str:
    """A client's server name for a log line: ASCII, escaped, at most :data:`NAME_SHOWN` characters."""
    text = server_name[:NAME_SHOWN].decode("latin-1")  # every byte one character, escaped by ascii()
    return ascii(text + ("..." if len(server_name) > NAME_SHOWN else ""))


def _candidates(sites: Sequence[Site], server_name: bytes | None, peer: str) -> tuple[Served, ...]:
    """The DPtls naming ``server_name``, of the first site that has any; else the default site's."""
    if len(sites) == 1 and not sites[0].address:
        return sites[0].served
    name = normal_host(server_name)
    if name is not None:
        for site in sites:
            named = tuple(s for s in site.served if any(name_matches(n, name) for n in s.names))
            if named:
                return named
    # Only where it decides something is it worth a line per handshake.
    level = logging.INFO if len(sites) > 1 else logging.DEBUG
    if log.isEnabledFor(level):
        asked = ("no server name (SNI)" if server_name is None
                 else f"server name {shown(server_name)} named by no DPtls")
        log.log(level, "TLS: %s from %s: presenting the DPtls of %s", asked, peer, sites[0].address)
    return sites[0].served


def choose(sites: Sequence[Site], server_name: bytes | None, hello: ClientHello | None,
           peer: str = "?") -> Served:
    """The DPtls for a handshake: by ``server_name`` (SNI), then by what ``hello`` can verify."""
    candidates = _candidates(sites, server_name, peer)
    return candidates[choose_certificate(tuple(s.curve for s in candidates), hello)]


def describe_sites(sites: Sequence[Site]) -> str:
    """What is served, for the start-up line: the files with curve and end of validity, per address."""
    def listing(site: Site) -> str:
        return ", ".join(f"{s.credential.cert_path} ({_CURVE_LABEL[s.curve]}, valid until "
                         f"{s.credential.certificate.not_valid_after_utc.date()})" for s in site.served)

    if len(sites) > 1:
        return ("; ".join(f"{site.address}: {listing(site)}" for site in sites)
                + "; chosen per handshake by server name (SNI), then by curve")
    return listing(sites[0]) + ("; chosen per handshake" if len(sites[0].served) > 1 else "")
