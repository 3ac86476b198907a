"""Protection of command TLVs with BSP session keys (SGP.22 2.6.4, GlobalPlatform SCP03t).

Each command TLV of a Bound Profile Package is a *segment* protected in one of
two ways (SGP.22 2.6.4.4):

- MAC and encryption, tags '87' (ConfigureISDP, ReplaceSessionKeys) and '86'
  (profile data): the data is padded with '80 00..' to a multiple of 16 octets
  and AES-CBC encrypted with S-ENC; the ICV is AES(S-ENC, block counter) with
  the counter as a 16-octet big-endian integer;
- MAC only, tag '88' (StoreMetadata).

Then C-MAC = AES-CMAC(S-MAC, MCV | tag | length | data), where length is the
final length of the TLV (data plus the 8-octet MAC); the TLV carries the 8
leftmost octets and the full 16-octet CMAC becomes the next MCV.

The block counter starts at 1 and advances with every segment, MAC-only
segments included; ReplaceSessionKeys installs new keys and MCV and restarts
the counter at 1.  The known-answer trace shows exactly this: ConfigureISDP
uses 1, StoreMetadata takes 2, ReplaceSessionKeys uses 3 and the first '86'
under the PPK uses 1 again.
"""
from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from smdpp.asn1.tlv import TlvError, encode_length, parse_single
from smdpp.bsp.errors import BspError
from smdpp.bsp.keys import SessionKeys

__all__ = [
    "TAG_PROFILE_SEGMENT",
    "TAG_MAC_AND_ENC",
    "TAG_MAC_ONLY",
    "MAC_LENGTH",
    "MAX_SEGMENT_VALUE",
    "BspSession",
]

TAG_PROFILE_SEGMENT = b"\x86"  # MAC + encryption, profile data (sequenceOf86)
TAG_MAC_AND_ENC = b"\x87"  # MAC + encryption (ConfigureISDP, ReplaceSessionKeys)
TAG_MAC_ONLY = b"\x88"  # MAC only (StoreMetadata)
_ENCRYPTED_TAGS = (TAG_PROFILE_SEGMENT, TAG_MAC_AND_ENC)

MAC_LENGTH = 8  # C-MAC octets carried in the TLV
MAX_SEGMENT_VALUE = 1020  # value of one segment TLV, MAC included (SGP.22 2.5.5)
_BLOCK = 16
_ZERO_IV = bytes(_BLOCK)
_CBC_ZERO_IV = modes.CBC(_ZERO_IV)  # immutable; made once instead of per segment


def _pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2 padding: '80' then '00' up to a multiple of 16."""
    return data + b"\x80" + bytes(_BLOCK - 1 - len(data) % _BLOCK)


class BspSession:
    """The state of one BSP session: current keys, MAC chaining value, block counter.

    The SM-DP+ calls :meth:`protect` for each segment in BPP order; the eUICC
    calls :meth:`unprotect` on the same segments in the same order.  One
    instance serves one direction of one Bound Profile Package.
    """

    __slots__ = ("_s_enc", "_s_mac", "_aes_enc", "_aes_mac", "_mcv", "_counter")

    def __init__(self, keys: SessionKeys) -> None:
        self._install(keys)

    def _install(self, keys: SessionKeys) -> None:
        self._s_enc = keys.s_enc
        self._s_mac = keys.s_mac
        # AES key objects, made on first use and then kept for every segment under these
        # keys (each costs a key check); an SM-DP+ never uses the PPKs it switches to
        self._aes_enc: algorithms.AES | None = None
        self._aes_mac: algorithms.AES | None = None
        self._mcv = keys.initial_mcv
        self._counter = 1

    def __repr__(self) -> str:
        return f"BspSession(counter={self._counter})"

    def replace_session_keys(self, keys: SessionKeys) -> None:
        """Switch to new keys and MCV for the following segments (ReplaceSessionKeys, 2.5.5).

        The new keys must have the lengths of the ones they replace.
        """
        if len(keys.s_enc) != len(self._s_enc) or len(keys.s_mac) != len(self._s_mac):
            raise BspError("ReplaceSessionKeys: new key lengths differ from the current ones")
        self._install(keys)

    def _enc_key(self) -> algorithms.AES:
        if self._aes_enc is None:
            self._aes_enc = algorithms.AES(self._s_enc)
        return self._aes_enc

    def _mac_key(self) -> algorithms.AES:
        if self._aes_mac is None:
            self._aes_mac = algorithms.AES(self._s_mac)
        return self._aes_mac

    def _icv_block(self) -> bytes:
        return self._counter.to_bytes(_BLOCK, "big")

    def _c_mac(self, header: bytes, body: bytes) -> bytes:
        """Full AES-CMAC over MCV | tag | length | data (the header already holds tag and length)."""
        c = cmac.CMAC(self._mac_key())
        c.update(self._mcv)
        c.update(header)
        c.update(body)
        return c.finalize()

    def protect(self, tag: bytes, data: bytes) -> bytes:
        """Protect ``data`` as one segment with ``tag`` ('86', '87' or '88'); return the TLV."""
        if tag in _ENCRYPTED_TAGS:
            # CBC with a zero IV over counter || padded data: the first output
            # block is AES(S-ENC, counter) = the ICV, and every following block
            # is then exactly CBC under that ICV.  One cipher call per segment.
            enc = Cipher(self._enc_key(), _CBC_ZERO_IV).encryptor()
            body = (enc.update(self._icv_block() + _pad(data)) + enc.finalize())[_BLOCK:]
        elif tag == TAG_MAC_ONLY:
            body = bytes(data)
        else:
            raise BspError(f"no BSP protection for tag {tag.hex()}")
        value_length = len(body) + MAC_LENGTH
        if value_length > MAX_SEGMENT_VALUE:
            raise BspError(f"segment {tag.hex()} value of {value_length} bytes exceeds "
                           f"{MAX_SEGMENT_VALUE}")
        header = tag + encode_length(value_length)
        mac = self._c_mac(header, body)
        self._mcv = mac
        self._counter += 1
        return header + body + mac[:MAC_LENGTH]

    def unprotect(self, segment: bytes, tag: bytes | None = None, *, name: str | None = None) -> bytes:
        """Verify and (for '86'/'87') decrypt one segment TLV; return its plaintext.

        ``tag``, when given, is the tag the segment must carry; ``name`` labels
        the segment in error messages (default: "segment <tag>").  On any
        failure :class:`BspError` is raised and the session state is unchanged.
        """
        try:
            tlv = parse_single(segment)
        except TlvError as exc:
            raise BspError(f"{name or 'segment'} malformed: {exc}") from None
        name = name or f"segment {tlv.tag.hex()}"
        if tag is not None and tlv.tag != tag:
            raise BspError(f"{name}: expected tag {tag.hex()}, got {tlv.tag.hex()}")
        if tlv.tag not in _ENCRYPTED_TAGS and tlv.tag != TAG_MAC_ONLY:
            raise BspError(f"{name}: tag {tlv.tag.hex()} is not a BSP segment")
        if segment[tlv.start + len(tlv.tag):tlv.value_start] != encode_length(tlv.end - tlv.value_start):
            raise BspError(f"{name}: length not in minimal (DER) form")
        value_length = tlv.end - tlv.value_start
        if value_length > MAX_SEGMENT_VALUE:
            raise BspError(f"{name}: value of {value_length} bytes exceeds {MAX_SEGMENT_VALUE}")
        body_length = value_length - MAC_LENGTH
        encrypted = tlv.tag in _ENCRYPTED_TAGS
        if body_length < 0 or (encrypted and (body_length == 0 or body_length % _BLOCK)):
            raise BspError(f"{name}: invalid length {value_length}")
        header = segment[tlv.start:tlv.value_start]
        body = segment[tlv.value_start:tlv.end - MAC_LENGTH]
        mac = self._c_mac(header, body)
        if not hmac.compare_digest(mac[:MAC_LENGTH], segment[tlv.end - MAC_LENGTH:tlv.end]):
            raise BspError(f"MAC of {name} invalid")
        if encrypted:
            aes = self._enc_key()
            ecb = Cipher(aes, modes.ECB()).encryptor()
            icv = ecb.update(self._icv_block()) + ecb.finalize()
            dec = Cipher(aes, modes.CBC(icv)).decryptor()
            padded = dec.update(body) + dec.finalize()
            plain = padded.rstrip(b"\x00")
            if not plain or plain[-1] != 0x80 or len(padded) - len(plain) >= _BLOCK:
                raise BspError(f"{name}: invalid padding")
            data = plain[:-1]
        else:
            data = body
        self._mcv = mac
        self._counter += 1
        return data
