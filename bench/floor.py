"""The cryptography floor of one download, measured on this machine now.

The performance issue defines the floor of a download as the cryptography it
really needs: 3 ECDSA signatures (serverSignature1, smdpSignature2, the
InitialiseSecureChannel signature), 5 verifications (EUM and eUICC
certificates, euiccSignature1, euiccSignature2, the notification), one ECDH
key pair and key agreement, and AES over the profile (SGP.22 2.6.4: AES-CBC
plus AES-CMAC).  Its time with ``cryptography`` tells how fast this machine is
at the moment of a run, so that server CPU per download can be compared
across machines and across a shared machine's drift as a multiple of it.
"""
from __future__ import annotations

import os
import statistics
import time

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CURVES = {"nist": ec.SECP256R1, "brainpool": ec.BrainpoolP256R1}
SIGNATURES, VERIFICATIONS = 3, 5


def _one_download(curve: ec.EllipticCurve, keys: list[ec.EllipticCurvePrivateKey],
                  profile: bytes, aes_key: bytes) -> None:
    data = os.urandom(64)
    signatures = [key.sign(data, ec.ECDSA(hashes.SHA256())) for key in keys[:SIGNATURES]]
    for i in range(VERIFICATIONS):
        keys[i % SIGNATURES].public_key().verify(
            signatures[i % SIGNATURES], data, ec.ECDSA(hashes.SHA256()))
    one_time = ec.generate_private_key(curve)
    one_time.exchange(ec.ECDH(), keys[0].public_key())
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(bytes(16))).encryptor()
    ciphertext = encryptor.update(profile) + encryptor.finalize()
    mac = cmac.CMAC(algorithms.AES(aes_key))
    mac.update(ciphertext)
    mac.finalize()


def crypto_floor_ms(curve: str = "nist", profile_bytes: int = 12 * 1024,
                    rounds: int = 200, batches: int = 5) -> float:
    """The median over ``batches`` of the CPU ms one download's cryptography takes."""
    ec_curve = CURVES[curve]()
    keys = [ec.generate_private_key(ec_curve) for _ in range(SIGNATURES)]
    profile = os.urandom(profile_bytes - profile_bytes % 16)
    aes_key = os.urandom(16)
    _one_download(ec_curve, keys, profile, aes_key)  # warm-up
    per_batch = []
    for _ in range(batches):
        start = time.process_time()
        for _ in range(rounds):
            _one_download(ec_curve, keys, profile, aes_key)
        per_batch.append((time.process_time() - start) * 1000 / rounds)
    return round(statistics.median(per_batch), 3)


if __name__ == "__main__":
    for name in CURVES:
        print(f"{name}: {crypto_floor_ms(name, rounds=100 if name == 'brainpool' else 200)} ms "
              f"per download (12 KB)")
