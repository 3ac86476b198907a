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

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

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


class FloorWatch:
    """The floor sampled all through a run, from a separate process.

    The machine's speed drifts within a run (here by a third within a
    minute), so one measurement before or after a run may not see the machine
    the server saw.  A child process measures ``rounds`` downloads'
    cryptography every ``interval`` seconds (about 1% of one core) while the
    run goes on; :meth:`stop` gives the median of its samples.
    """

    def __init__(self, curve: str, profile_bytes: int, interval: float = 1.0,
                 rounds: int = 10) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "--watch", str(interval), "--curve", curve,
             "--profile-bytes", str(profile_bytes), "--rounds", str(rounds)],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1])

    def stop(self) -> list[float]:
        """Stop sampling; the samples (ms per download), in order."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()  # the child stops at its next sample
        out = self._process.stdout.read()
        self._process.wait(timeout=120)
        return [float(line) for line in out.split()]


def _watch(curve: str, profile_bytes: int, interval: float, rounds: int) -> None:
    """Print one sample per ``interval`` until standard input closes."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(interval):
        print(crypto_floor_ms(curve, profile_bytes, rounds=rounds, batches=1), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Print the floor per curve, or (``--watch``) sample it until stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--curve", choices=CURVES, help="one curve (default: both)")
    parser.add_argument("--profile-bytes", type=int, default=12 * 1024)
    parser.add_argument("--rounds", type=int, help="downloads per sample")
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="print a sample every SECONDS until standard input closes")
    args = parser.parse_args(argv)
    if args.watch is not None:
        _watch(args.curve or "nist", args.profile_bytes, args.watch, args.rounds or 10)
        return
    for name in [args.curve] if args.curve else list(CURVES):
        rounds = args.rounds or (100 if name == "brainpool" else 200)
        print(f"{name}: {crypto_floor_ms(name, args.profile_bytes, rounds=rounds)} ms "
              f"per download ({args.profile_bytes} bytes)")


if __name__ == "__main__":
    main()
