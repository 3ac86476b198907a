"""MILENAGE OPc, the value a USIM stores instead of the operator's OP (3GPP TS 35.206 4.1).

``OPc = OP xor E_K(OP)`` with E the 128-bit AES (Rijndael) block cipher.  A
profile for a real network (Open5GS, osmo-hlr, ...) carries K and OPc; an
operator may hand over OP instead, and the OPc is then computed per card.
Known answers: 3GPP TS 35.208 4.3 (test sets 1-6, in the unit tests).
"""
from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 16  # K: 128 bits (TS 35.206 2.3)
OP_SIZE = 16  # OP and OPc: 128 bits


def opc_from_op(k: bytes, op: bytes) -> bytes:
    """OPc computed from K and OP (TS 35.206 4.1); ValueError on wrong lengths."""
    if len(k) != KEY_SIZE:
        raise ValueError(f"K must be {KEY_SIZE} bytes, got {len(k)}")
    if len(op) != OP_SIZE:
        raise ValueError(f"OP must be {OP_SIZE} bytes, got {len(op)}")
    # One block: ECB is AES itself here, no chaining is involved.
    encryptor = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    encrypted = encryptor.update(op) + encryptor.finalize()
    return bytes(a ^ b for a, b in zip(encrypted, op))
