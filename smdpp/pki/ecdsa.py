"""ECDSA in the form SGP.22 uses on RSP data, and EC public points.

SGP.22 2.6.5 (and 4.3 / 5.x "signature" fields such as ``serverSignature1``,
``euiccSignature1``, ``smdpSignature2``) carries ECDSA signatures in the plain
format of BSI TR-03111 5.2.2: the integers r and s, each as a big-endian octet
string of the curve's coordinate length, concatenated (64 bytes for the
256-bit curves NIST P-256 and brainpoolP256r1).  The hash is SHA-256.  X.509
certificates keep their usual DER ``Ecdsa-Sig-Value``; only RSP data uses the
plain form.

Public keys travel as uncompressed points ``04 || X || Y`` (SGP.22 2.6.6,
e.g. ``otPK.EUICC.ECKA`` / ``otPK.DP.ECKA`` and the key in ``euiccInfo``).
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["ECDSA_SHA256", "sign_plain", "verify_plain", "public_point", "public_key_from_point"]

#: The one signature algorithm of SGP.22 (2.6.5, 4.5.2.1): immutable, so made once.
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _coordinate_length(curve: ec.EllipticCurve) -> int:
    """Octets of one coordinate / one of r, s on ``curve`` (TR-03111 3.1.3)."""
    return (curve.key_size + 7) // 8


def sign_plain(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Sign ``data`` with ECDSA/SHA-256 and return the plain ``r || s`` (TR-03111 5.2.2)."""
    der = private_key.sign(data, ECDSA_SHA256)
    r, s = decode_dss_signature(der)
    n = _coordinate_length(private_key.curve)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def verify_plain(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is a valid plain ``r || s`` ECDSA/SHA-256 signature of ``data``.

    Any malformed input (wrong length, r or s out of range, a DER signature,
    a non-bytes value) gives False: callers map False to their SGP.22 status.
    """
    try:
        n = _coordinate_length(public_key.curve)
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != 2 * n:
            return False
        r = int.from_bytes(signature[:n], "big")
        s = int.from_bytes(signature[n:], "big")
        # r = 0 or s = 0 can never be valid (SEC 1 4.1.4 step 1); say so without asking OpenSSL.
        if r == 0 or s == 0:
            return False
        public_key.verify(encode_dss_signature(r, s), bytes(data), ECDSA_SHA256)
        return True
    except (InvalidSignature, ValueError, TypeError, AttributeError):
        return False


def public_point(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> bytes:
    """The uncompressed point ``04 || X || Y`` of an EC key (SEC 1 2.3.3)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def public_key_from_point(point: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    """Load an uncompressed point ``04 || X || Y`` on ``curve``.

    Raises ValueError if the encoding is not uncompressed, has the wrong length,
    or the point is not on the curve.  ``curve`` is an instance such as
    ``ec.SECP256R1()`` (a curve class is accepted too).
    """
    if isinstance(curve, type):
        curve = curve()
    n = _coordinate_length(curve)
    if not isinstance(point, (bytes, bytearray)):
        raise ValueError("EC point must be bytes")
    if len(point) != 1 + 2 * n or point[0] != 0x04:
        raise ValueError(f"EC point must be uncompressed 04||X||Y of {1 + 2 * n} bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes(point))
    except ValueError as exc:
        raise ValueError(f"invalid EC point: {exc}") from None
