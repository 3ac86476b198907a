"""BSP session keys: ECKA shared secret and X9.63 key derivation (SGP.22 2.6.4).

The SM-DP+ and the eUICC each hold a one-time ECKA key pair (otSK/otPK.DP.ECKA,
otSK/otPK.EUICC.ECKA).  ECDH over them gives the shared secret ShS (the
x-coordinate, BSI TR-03111 4.3.1).  The X9.63 KDF with SHA-256 (TR-03111
4.3.3) turns ShS and the SharedInfo

    keyType | keyLength | len(hostId) | hostId | len(EID) | EID

(one octet each for the type, the length and the two length prefixes) into
3 x keyLength octets, used in this order: initial MAC chaining value, S-ENC,
S-MAC.  Layout and order are confirmed by the known-answer data in
``bsp_third_party_trace.json``.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from smdpp.bsp.errors import BspError, PeerKeyError
from smdpp.pki.ecdsa import public_key_from_point

__all__ = [
    "KEY_TYPE_AES",
    "KEY_LENGTH_AES128",
    "SessionKeys",
    "ecka_shared_secret",
    "bsp_shared_info",
    "derive_session_keys",
]

KEY_TYPE_AES = 0x88  # GlobalPlatform Card Specification key type AES (controlRefTemplate keyType)
KEY_LENGTH_AES128 = 16  # SGP.22: keyLen SHALL be '10'


@dataclass(frozen=True, slots=True, repr=False)
class SessionKeys:
    """One BSP key set: S-ENC, S-MAC and the initial MAC chaining value.

    The same shape carries the Profile Protection Keys (PPK-ENC, PPK-CMAC and
    their initial MCV) delivered by ReplaceSessionKeys (SGP.22 2.5.5).
    """

    s_enc: bytes
    s_mac: bytes
    initial_mcv: bytes

    def __post_init__(self) -> None:
        for name in ("s_enc", "s_mac", "initial_mcv"):
            if len(getattr(self, name)) != KEY_LENGTH_AES128:
                raise BspError(f"{name} must be {KEY_LENGTH_AES128} bytes (AES-128)")

    def __repr__(self) -> str:  # keys never end up in logs or tracebacks
        return "SessionKeys(<hidden>)"


def ecka_shared_secret(private_key: ec.EllipticCurvePrivateKey, peer_point: bytes) -> bytes:
    """ECKA-DH shared secret ShS (TR-03111 4.3.1) with a peer key ``04||X||Y`` on our curve.

    Works on any curve ``cryptography`` supports (NIST P-256, brainpoolP256r1).
    Raises :class:`~smdpp.bsp.errors.PeerKeyError` (a :class:`BspError`) if the
    point is not an uncompressed point on the curve.
    """
    try:
        peer = public_key_from_point(peer_point, private_key.curve)
    except ValueError as exc:
        raise PeerKeyError(f"peer one-time public key rejected: {exc}") from None
    return private_key.exchange(ec.ECDH(), peer)


def bsp_shared_info(host_id: bytes, eid: bytes, key_type: int = KEY_TYPE_AES,
                    key_length: int = KEY_LENGTH_AES128) -> bytes:
    """The X9.63 SharedInfo of SGP.22 2.6.4: keyType | keyLength | L | hostId | L | EID."""
    if not 1 <= len(host_id) <= 16:
        raise BspError("hostId must be 1..16 bytes")
    if len(eid) != 16:
        raise BspError("EID must be 16 bytes")
    return bytes((key_type, key_length, len(host_id))) + host_id + bytes((len(eid),)) + eid


def derive_session_keys(shared_secret: bytes, *, host_id: bytes, eid: bytes,
                        key_type: int = KEY_TYPE_AES,
                        key_length: int = KEY_LENGTH_AES128) -> SessionKeys:
    """Derive initial MCV, S-ENC and S-MAC from ShS (X9.63 KDF, SHA-256; SGP.22 2.6.4).

    Only AES-128 (keyType '88', keyLength 16) is defined for BSP in SGP.22.
    """
    if key_type != KEY_TYPE_AES or key_length != KEY_LENGTH_AES128:
        raise BspError("only keyType '88' (AES) with keyLength 16 is supported")
    material = X963KDF(
        algorithm=hashes.SHA256(),
        length=3 * key_length,
        sharedinfo=bsp_shared_info(host_id, eid, key_type, key_length),
    ).derive(shared_secret)
    return SessionKeys(
        initial_mcv=material[:key_length],
        s_enc=material[key_length:2 * key_length],
        s_mac=material[2 * key_length:],
    )
