"""Built-in TLS for ES9+ (``--tls``): the SM-DP+ TLS certificate (CERT.DP.TLS) served by Twisted.

SGP.22 2.6.6 asks the SM-DP+ for TLS 1.2 with the cipher suites
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
on a NIST P-256 or brainpoolP256r1 DPtls certificate; TLS 1.3 is offered as
well for clients that ask for it.  Twisted does TLS through pyOpenSSL, which
runs the OpenSSL bundled in the ``cryptography`` wheel, not the system's.

Three things are not left to OpenSSL's defaults:

* The key exchange groups are set explicitly.  OpenSSL's default server list
  has no brainpoolP256r1, so a TLS 1.2 client that offers only that curve gets
  "no shared cipher" (RFC 8422 5.1: ECDHE needs a curve both sides list).
* OpenSSL keeps one ECDSA certificate per context, so NIST and Brainpool
  DPtls cannot share one, nor can the DPtls of SM-DP+ identities served side
  by side at their own addresses.  Each gets its own context, and the server
  picks per handshake (:mod:`smdpp.http.sni`) first by the client's
  server_name (SNI, RFC 6066 3) the DPtls naming it, then, from the raw
  ClientHello, the one the client can verify
  (TLS 1.2: the certificate's curve among the client's supported_groups,
  RFC 8422 5.1; TLS 1.3: the curve's ECDSA scheme among its
  signature_algorithms, RFC 8446 4.2.3 / RFC 8734), NIST first.  The switch
  happens in the servername callback, which OpenSSL runs on every
  ClientHello, with or without SNI; the ClientHello itself is read by
  :mod:`smdpp.http.client_hello` (no OpenSSL there).
* What this OpenSSL cannot do (a suite, the Brainpool group) is found at
  start-up and reported in one line with the way out, never as a failed
  handshake later.  An expired or not yet valid DPtls refuses to start.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from zope.interface import implementer

from smdpp.http.client_hello import ClientHello, describe, parse_client_hello
from smdpp.http.sni import Served, Site, choose, describe_sites
from smdpp.pki.dptls import TlsCredential, TlsSite

try:
    # pyOpenSSL has no public call for a group list; its cffi binding of OpenSSL has one.
    from OpenSSL._util import lib as _lib
except ImportError:  # a pyOpenSSL without it: reported at start-up as "cannot set groups"
    _lib = None

log = logging.getLogger(__name__)

__all__ = [
    "SGP22_TLS12_CIPHERS",
    "DptlsServer",
    "TlsSetupError",
    "probe_openssl",
]

#: SGP.22 2.6.6 TLS 1.2 cipher suites, in OpenSSL's names, in order of preference.
SGP22_TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA256")
#: Key exchange groups (OpenSSL names).  P-256 and brainpoolP256r1 are the
#: SGP.22 curves for TLS 1.2; brainpoolP256r1 is TLS 1.2 only since RFC 8446,
#: its TLS 1.3 twin (RFC 8734) is offered where OpenSSL knows it.
NIST_GROUP = "P-256"
BRAINPOOL_TLS12_GROUP = "brainpoolP256r1"
BRAINPOOL_TLS13_GROUP = "brainpoolP256r1tls13"
X25519_GROUP = "X25519"
#: The TLS 1.3 signature scheme a Brainpool certificate needs (RFC 8734).
BRAINPOOL_TLS13_SIGALG = "ecdsa_brainpoolP256r1tls13_sha256"

#: TLS alerts a failed handshake of this server ends with (RFC 8446 6.2).
_ALERTS = {40: "handshake_failure", 47: "illegal_parameter", 50: "decode_error", 70: "protocol_version",
           71: "insufficient_security", 80: "internal_error", 109: "missing_extension"}
#: Enough for any real ClientHello (post-quantum key shares included); a longer one is not inspected.
_HELLO_LIMIT = 65536
_WAY_OUT = ("way out: run without --tls behind nginx (contrib/nginx-smdpp.conf), "
            "or install a cryptography/pyOpenSSL whose OpenSSL has it")


class TlsSetupError(ValueError):
    """``--tls`` cannot be served as asked; the message is the one start-up line to show."""


# --- OpenSSL -----------------------------------------------------------------


def _set_list(function: str, context: SSL.Context, names: Sequence[str]) -> bool:
    """Call the OpenSSL list setter ``function`` (groups, sigalgs) on ``context``; False if refused.

    A binding without the function counts as a refusal.
    """
    setter = getattr(_lib, function, None)
    if setter is None:
        return False
    ok = setter(context._context, ":".join(names).encode("ascii")) == 1
    if not ok:
        _lib.ERR_clear_error()  # a stale error would surface in the next pyOpenSSL call
    return ok


@dataclass(frozen=True)
class OpenSslSupport:
    """What the OpenSSL under pyOpenSSL can do of what SGP.22 2.6.6 asks."""

    version: str
    tls12_ciphers: tuple[str, ...]  # those of SGP22_TLS12_CIPHERS it has
    tls13: bool
    groups: tuple[str, ...]  # the groups it accepted, in our order
    brainpool_tls13_sigalg: bool

    @property
    def brainpool_tls12(self) -> bool:
        return BRAINPOOL_TLS12_GROUP in self.groups


def probe_openssl() -> OpenSslSupport:
    """Ask the OpenSSL under pyOpenSSL, on a scratch context, which of our settings it accepts."""
    version = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")
    ciphers: list[str] = []
    for name in SGP22_TLS12_CIPHERS:
        scratch = SSL.Context(SSL.TLS_SERVER_METHOD)
        try:
            scratch.set_cipher_list(name.encode("ascii"))
        except SSL.Error:
            continue
        if name in SSL.Connection(scratch, None).get_cipher_list():
            ciphers.append(name)
    scratch = SSL.Context(SSL.TLS_SERVER_METHOD)
    tls13 = hasattr(SSL, "TLS1_3_VERSION")
    groups = tuple(g for g in (NIST_GROUP, X25519_GROUP, BRAINPOOL_TLS12_GROUP, BRAINPOOL_TLS13_GROUP)
                   if _set_list("SSL_CTX_set1_curves_list", scratch, [g]))
    sigalg = _set_list("SSL_CTX_set1_sigalgs_list", scratch, [BRAINPOOL_TLS13_SIGALG])
    return OpenSslSupport(version, tuple(ciphers), tls13, groups, sigalg)


def _usable_by_curve(credentials: Sequence[TlsCredential], support: OpenSslSupport,
                     notes: list[str]) -> dict[str, TlsCredential]:
    """The first DPtls per curve of one address that this OpenSSL can serve; TlsSetupError if none."""
    by_curve: dict[str, TlsCredential] = {}
    for credential in credentials:
        curve = credential.curve
        assert curve is not None  # TlsCredential.check() refused the others
        by_curve.setdefault(curve, credential)
    if "brainpoolP256r1" in by_curve and not support.brainpool_tls12:
        brainpool = by_curve["brainpoolP256r1"]
        if "secp256r1" not in by_curve:
            raise TlsSetupError(f"{brainpool.cert_path}: a brainpoolP256r1 DPtls needs the TLS group "
                                f"{BRAINPOOL_TLS12_GROUP}, which {support.version} cannot offer "
                                f"(TLS 1.2 would fail with 'no shared cipher'); {_WAY_OUT}, "
                                "or use a NIST P-256 DPtls")
        notes.append(f"TLS: {support.version} cannot offer the TLS group {BRAINPOOL_TLS12_GROUP}: "
                     f"serving the NIST DPtls only, not {brainpool.cert_path}; {_WAY_OUT}")
        del by_curve["brainpoolP256r1"]
    if "brainpoolP256r1" in by_curve and support.tls13 and not support.brainpool_tls13_sigalg:
        notes.append(f"TLS: {support.version} lacks {BRAINPOOL_TLS13_SIGALG}: TLS 1.3 clients "
                     "without NIST P-256 cannot connect; they must use TLS 1.2")
    return by_curve


def _context(credential: TlsCredential, support: OpenSslSupport, groups: Sequence[str]) -> SSL.Context:
    """A server context for one DPtls with the SGP.22 2.6.6 parameters."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_max_proto_version(SSL.TLS1_3_VERSION if support.tls13 else SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_cipher_list(":".join(support.tls12_ciphers).encode("ascii"))
    if not _set_list("SSL_CTX_set1_curves_list", context, groups):
        raise TlsSetupError(f"{support.version} refused the groups {':'.join(groups)}; {_WAY_OUT}")

    try:
        key = serialization.load_pem_private_key(credential.key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsSetupError(f"{credential.key_path}: cannot read the DPtls key: {exc}") from None
    chain = _chain_file_certificates(credential)
    try:
        context.use_certificate(credential.certificate)
        for extra in chain:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(key)  # type: ignore[arg-type]  # an EC key (checked by the store)
        context.check_privatekey()
    except SSL.Error as exc:
        raise TlsSetupError(f"{credential.cert_path}: {support.version} will not use this "
                            f"DPtls with {credential.key_path.name}: {exc}") from None
    return context


def _chain_file_certificates(credential: TlsCredential) -> list[x509.Certificate]:
    """Certificates after the DPtls in its PEM file (intermediate CAs), to send along with it."""
    data = credential.cert_path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    return [c for c in x509.load_pem_x509_certificates(data) if c != credential.certificate]


# --- Twisted -----------------------------------------------------------------


def first_record_complete(data: bytes | bytearray) -> bool:
    """True once ``data`` holds the client's whole first TLS record (RFC 8446 5.1), or is
    no TLS handshake record at all (OpenSSL refuses that at once), or reached the limit."""
    if data[:1] and data[0] != 0x16:  # not a handshake record
        return True
    if len(data) < 5:
        return False
    return len(data) >= min(_HELLO_LIMIT, 5 + int.from_bytes(data[3:5], "big"))


class _HelloRecordingTLS(BufferingTLSTransport):
    """A TLS server transport that keeps the client's first bytes (its ClientHello) for the callback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_hello_bytes = bytearray()
        self.recording = True
        self.client_hello: ClientHello | None = None
        self.withholding = True  # until the first TLS record is whole
        self.withheld = bytearray()
        self.dptls_choice: Served | None = None  # chosen at the first ClientHello

    def dataReceived(self, data: bytes) -> None:
        if self.recording:
            room = _HELLO_LIMIT - len(self.client_hello_bytes)
            self.client_hello_bytes += data[:room]
            self.recording = len(data) < room
        if self.withholding:
            # OpenSSL does nothing with a part of the first record but costs a handshake
            # attempt per read: a ClientHello trickled in a byte at a time (issue 17)
            # waits here until its record is whole
            self.withheld += data
            if not first_record_complete(self.withheld):
                return
            data, self.withholding, self.withheld = bytes(self.withheld), False, bytearray()
        super().dataReceived(data)

    def makeConnection(self, transport: Any) -> None:
        # the handshake deadline (issue 17): bytes trickling in do not move it
        self.handshake_deadline = self.factory.callLater(self.factory.handshake_timeout,
                                                         self._handshake_too_slow)
        super().makeConnection(transport)

    def _handshake_too_slow(self) -> None:
        if not self._handshakeDone and self.transport is not None:
            log.debug("TLS: handshake with %s not done within %g s, connection closed",
                      getattr(self.transport.getPeer(), "host", "?"), self.factory.handshake_timeout)
            self.transport.abortConnection()

    def connectionLost(self, reason: Any) -> None:
        if self.handshake_deadline.active():
            self.handshake_deadline.cancel()
        super().connectionLost(reason)


class _DptlsFactory(TLSMemoryBIOFactory):
    protocol = _HelloRecordingTLS
    handshake_timeout = 10.0
    callLater: Any = None  # the reactor's, or a test clock's


@implementer(IOpenSSLServerConnectionCreator)
class DptlsServer:
    """The TLS side of ``--tls``: builds one OpenSSL connection per accepted TCP connection.

    Create with :meth:`from_credentials`, log :attr:`summary` and
    :attr:`warnings` at start-up, and listen with
    ``reactor.listenTCP(port, server.wrap(site))``.
    """

    def __init__(self, sites: Sequence[Site], summary: str, warnings: Sequence[str],
                 support: OpenSslSupport) -> None:
        self._sites = tuple(sites)
        # one context per DPtls file, also when it serves several addresses
        self._served = tuple({id(s.context): s for site in sites for s in site.served}.values())
        #: Start-up line: what is served, how, with which OpenSSL.
        self.summary = summary
        #: Start-up lines: what this OpenSSL lacks, each with the way out.
        self.warnings = tuple(warnings)
        self.support = support
        for s in self._served:
            s.context.set_tlsext_servername_callback(self._on_client_hello)
            s.context.set_info_callback(self._on_info)

    @property
    def credentials(self) -> tuple[TlsCredential, ...]:
        """The DPtls certificates served at the default address, the default (NIST where present) first."""
        return tuple(s.credential for s in self._sites[0].served)

    @classmethod
    def from_credentials(cls, credentials: Sequence[TlsCredential], now: datetime | None = None,
                         support: OpenSslSupport | None = None) -> "DptlsServer":
        """One set of DPtls for every handshake, whatever name the client asks for (ES2+).

        See :meth:`from_sites` for the checks.
        """
        return cls._build([("", credentials)], now, support)

    @classmethod
    def from_sites(cls, sites: Sequence[TlsSite], now: datetime | None = None,
                   support: OpenSslSupport | None = None) -> "DptlsServer":
        """The DPtls of each SM-DP+ address (:meth:`smdpp.pki.store.CertificateStore.tls_sites`),
        chosen per handshake by the client's server_name (SNI, RFC 6066 3), then by curve.

        A client that sends no server name, or one no DPtls names, gets the
        first site's (the default identity's at ``--hostname``).
        TlsSetupError (one line, naming the file or the missing feature and
        the way out) when ``--tls`` cannot be served: no DPtls, an expired or
        not yet valid one, a key that does not fit, an OpenSSL without the
        SGP.22 suites, or only a Brainpool DPtls and an OpenSSL that cannot
        offer brainpoolP256r1.
        """
        return cls._build([(site.address, site.credentials) for site in sites], now, support)

    @classmethod
    def _build(cls, sites: Sequence[tuple[str, Sequence[TlsCredential]]], now: datetime | None,
               support: OpenSslSupport | None) -> "DptlsServer":
        """Check every DPtls and this OpenSSL; a context per DPtls file, the sites (address, DPtls) in order."""
        if not sites or not all(credentials for _, credentials in sites):
            raise TlsSetupError("--tls: no DPtls certificate (CERT_*.pem or .der with its SK_*.pem) "
                                "in certs/DPtls")
        for _, credentials in sites:
            for credential in credentials:
                try:
                    credential.check(now)
                except ValueError as exc:
                    raise TlsSetupError(str(exc)) from None
        support = support or probe_openssl()
        notes: list[str] = []

        if not support.tls12_ciphers:
            raise TlsSetupError(f"{support.version} has none of the SGP.22 2.6.6 TLS 1.2 "
                                f"cipher suites {', '.join(SGP22_TLS12_CIPHERS)}; {_WAY_OUT}")
        missing = [c for c in SGP22_TLS12_CIPHERS if c not in support.tls12_ciphers]
        if missing:
            notes.append(f"TLS: {support.version} lacks {', '.join(missing)}: TLS 1.2 clients "
                         f"that offer only that suite cannot connect; {_WAY_OUT}")
        if NIST_GROUP not in support.groups:
            raise TlsSetupError(f"{support.version} cannot set the TLS group {NIST_GROUP}; {_WAY_OUT}")
        if not support.tls13:
            notes.append(f"TLS: {support.version} has no TLS 1.3: serving TLS 1.2 only")

        groups = [g for g in (NIST_GROUP, X25519_GROUP, BRAINPOOL_TLS12_GROUP, BRAINPOOL_TLS13_GROUP)
                  if g in support.groups]
        contexts: dict[Path, SSL.Context] = {}
        built: list[Site] = []
        for address, credentials in sites:
            by_curve = _usable_by_curve(credentials, support, notes)
            served = []
            for curve in (c for c in ("secp256r1", "brainpoolP256r1") if c in by_curve):
                credential = by_curve[curve]
                if credential.cert_path not in contexts:
                    contexts[credential.cert_path] = _context(credential, support, groups)
                served.append(Served(credential, curve, contexts[credential.cert_path],
                                      credential.dns_names))
            built.append(Site(address, tuple(served)))
        protocols = "TLS 1.2 and 1.3" if support.tls13 else "TLS 1.2"
        summary = (f"TLS: {protocols} with {support.version}: {describe_sites(built)}; "
                   f"TLS 1.2 suites {':'.join(support.tls12_ciphers)}, groups {':'.join(groups)}")
        return cls(built, summary, list(dict.fromkeys(notes)), support)

    # -- twisted.internet.interfaces.IOpenSSLServerConnectionCreator --

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        """A new OpenSSL connection for ``protocol``, on the default DPtls until the ClientHello says."""
        connection = SSL.Connection(self._served[0].context, None)
        connection.set_app_data(protocol)
        return connection

    def _on_client_hello(self, connection: SSL.Connection) -> None:
        """OpenSSL's servername callback: switch to the DPtls of the name asked for that the client can use."""
        try:
            protocol = connection.get_app_data()
            if not isinstance(protocol, _HelloRecordingTLS):
                return
            protocol.recording = False
            chosen = protocol.dptls_choice
            if chosen is None:  # the first ClientHello (a second one after HelloRetryRequest keeps it)
                protocol.client_hello = parse_client_hello(bytes(protocol.client_hello_bytes))
                protocol.client_hello_bytes.clear()
                chosen = protocol.dptls_choice = choose(
                    self._sites, connection.get_servername(), protocol.client_hello,
                    getattr(protocol.getPeer(), "host", "?"))
            if chosen.context is not self._served[0].context:
                connection.set_context(chosen.context)
            log.debug("TLS: presenting %s", chosen.credential.cert_path.name)
        except Exception:  # an exception must not escape into OpenSSL; keep the default DPtls
            log.exception("TLS: could not choose the DPtls for this handshake")

    def _on_info(self, connection: SSL.Connection, where: int, value: int) -> None:
        """OpenSSL's info callback: say why a handshake failed (a fatal alert we send), with what the client offered.

        Alerts after the handshake (OpenSSL "sends" decode_error when a
        client drops the connection without close_notify) are not reported.
        """
        try:
            protocol = connection.get_app_data()
            if where & SSL.SSL_CB_HANDSHAKE_DONE:
                setattr(protocol, "tls_established", True)
                return
            if (where & SSL.SSL_CB_WRITE_ALERT) != SSL.SSL_CB_WRITE_ALERT or value >> 8 != 2:
                return  # not a fatal alert of ours
            if getattr(protocol, "tls_established", False):
                return
            hello = getattr(protocol, "client_hello", None)
            peer = protocol.getPeer() if protocol is not None else None
            alert = value & 0xFF
            log.info("TLS: handshake with %s failed, alert %d (%s)%s", getattr(peer, "host", "?"), alert,
                     _ALERTS.get(alert, "see RFC 8446 6"),
                     f"; the client offered {describe(hello)}" if hello is not None else "")
        except Exception:  # logging must not break OpenSSL's callback
            log.exception("TLS: could not describe a failed handshake")

    def require_client_certificates(self) -> None:
        """Ask every client for a certificate and refuse the handshake without one (ES2+).

        Any certificate the client proves its key for is accepted here: the
        ES2+ layer binds its SHA-256 to a registered operator
        (:mod:`smdpp.orders.operators`), so that an operator may bring a
        certificate of its own CA, and an unknown one gets an SGP.22 answer
        rather than a bare TLS alert.
        """
        for served in self._served:
            served.context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                                      lambda connection, cert, errno, depth, ok: True)
            served.context.set_session_id(b"smdpp-es2plus")

    def wrap(self, factory: Any, handshake_timeout: float = 10.0) -> TLSMemoryBIOFactory:
        """A Twisted factory serving ``factory`` (the ES9+ Site) over this TLS; a handshake
        not done within ``handshake_timeout`` seconds of the connection is cut off."""
        from twisted.internet import reactor

        wrapped = _DptlsFactory(self, False, factory)
        wrapped.handshake_timeout = handshake_timeout
        wrapped.callLater = reactor.callLater
        return wrapped
