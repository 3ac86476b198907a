"""Personalization: a template Profile Package with a subscription's own values.

Each value given in a :class:`~smdpp.profiles.subscription.Subscription` is
written everywhere it lives in the package, and only there:

========================  =====================================================
iccid                     ProfileHeader ``iccid`` (SAIP 8.2, plain BCD) and
                          MF EF.ICCID (ETSI TS 102 221 13.2, swapped BCD)
imsi                      USIM EF.IMSI (3GPP TS 31.102 4.2.2), EF.ACC (access
                          class of the last digit), ISIM EF.IMPI / EF.IMPU
                          identities that derive from the IMSI (TS 23.003 13)
mnc_length                USIM EF.AD byte 4, and the IMS home network domain
ki, opc / op, algorithm   every PE-AKAParameter with an algoParameter (SAIP
                          8.4); a new algorithm also updates the
                          ProfileHeader's mandatory services
pin1, pin2, adm1          PE-PINCodes key references 01, 81, 0A (SAIP 8.5)
puk1, puk2                PE-PUKCodes key references 01, 81
spn                       USIM EF.SPN (TS 31.102 4.2.12)
profile_name              ProfileHeader ``profileType``
========================  =====================================================

Every other element stays byte-identical: only changed elements are
re-encoded, and only after checking that the template's element re-encodes
to its original bytes.  A value the template has no place for is a
:class:`PersonalizationError` naming the value and the missing place.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from smdpp.profiles.codings import (
    adm_value,
    decode_ef_ad_mnc_length,
    encode_ef_acc,
    encode_ef_ad,
    encode_ef_spn,
    pin_value,
    puk_value,
)
from smdpp.profiles.elements import (
    Element,
    File,
    InvalidPackage,
    content_pieces,
    encode_element,
    file_image,
    file_room,
    parse_package,
    write_file,
)
from smdpp.profiles.identifiers import decode_ef_imsi, encode_ef_imsi, iccid_to_bcd, iccid_to_ef
from smdpp.profiles.ims import decode_identity, encode_identity, rederive
from smdpp.profiles.milenage import opc_from_op
from smdpp.profiles.subscription import ALGORITHMS, Subscription

__all__ = ["PersonalizationError", "Template", "personalize"]

log = logging.getLogger(__name__)

# Key references (ETSI TS 102 221 9.5.1, SAIP PINKeyReferenceValue).
PIN_REFERENCES = {"pin1": 0x01, "pin2": 0x81, "adm1": 0x0A}
PUK_REFERENCES = {"puk1": 0x01, "puk2": 0x81}
# AlgoParameter.algorithmOptions written when the algorithm changes: the value
# smdpp's generated MILENAGE profile uses, and the TS.48 test-algorithm value.
_ALGORITHM_OPTIONS = {1: b"\x01", 2: b"\x01", 3: b"\x02"}
# ServicesList names of the algorithms (SAIP 8.2).
_ALGORITHM_SERVICES = {1: ("milenage",), 2: ("tuak128", "tuak256"), 3: ("usim-test-algorithm",)}
_TUAK256_KEY_SIZE = 32
_WITH_OPC = {1: "MILENAGE", 2: "TUAK"}  # algorithms whose OPc / TOPc is computed from K
_DEFAULT_MNC_LENGTH = 2


class PersonalizationError(ValueError):
    """The template cannot take a value (no place for it, or it is not a package)."""


class Template:
    """A template package, parsed once, that :meth:`personalize` copies with new values.

    Batches personalize one template many times: the package is decoded here
    once, and each call only re-encodes the elements it changes.
    """

    def __init__(self, der: bytes) -> None:
        try:
            self.elements: list[Element] = parse_package(der)
        except InvalidPackage as exc:
            raise PersonalizationError(str(exc)) from None
        self.der = der
        self._checked: set[int] = set()

    def of_kind(self, kind: str) -> list[Element]:
        """The elements of one CHOICE alternative, in package order."""
        return [e for e in self.elements if e.kind == kind]

    def _one(self, kind: str, what: str, field: str) -> Element:
        found = self.of_kind(kind)
        if not found:
            raise PersonalizationError(f"{field}: the template has no {what} (PE {kind}) "
                                       f"for this value")
        if len(found) > 1:
            raise PersonalizationError(f"{field}: the template has {len(found)} {what}s; "
                                       "only a single one can be personalized")
        return found[0]

    def _editable(self, element: Element) -> None:
        """Refuse to re-encode an element that does not round-trip byte-exactly."""
        if element.index in self._checked:
            return
        if encode_element(element.kind, element.value) != element.raw:
            raise PersonalizationError(f"element {element.index} ({element.kind}) does not "
                                       "re-encode to its original bytes; it cannot be edited")
        self._checked.add(element.index)

    def personalize(self, sub: Subscription) -> bytes:
        """The package with ``sub``'s values; raises :class:`PersonalizationError`."""
        edit = _Edit(self)
        if sub.iccid is not None or sub.profile_name is not None:
            self._identity_header(edit, sub)
        if sub.imsi is not None or sub.mnc_length is not None:
            self._imsi(edit, sub)
        if sub.spn is not None:
            usim = self._one("usim", "USIM", "spn")
            current = file_image(edit.value(usim)["ef-spn"]) or b"\x00"
            edit.file(usim, "ef-spn", 0, encode_ef_spn(sub.spn, current[0]))
        if sub.ki is not None or sub.opc is not None or sub.op is not None or sub.algorithm:
            self._aka(edit, sub)
        for name, reference in PIN_REFERENCES.items():
            if getattr(sub, name) is not None:
                coder = adm_value if name == "adm1" else pin_value
                self._codes(edit, name, reference, coder(getattr(sub, name), name))
        for name, reference in PUK_REFERENCES.items():
            if getattr(sub, name) is not None:
                self._codes(edit, name, reference, puk_value(getattr(sub, name), name), puk=True)
        log.info("personalized ICCID %s: %d of %d elements re-encoded",
                 sub.iccid or "(template's)", len(edit.changed), len(self.elements))
        return edit.result()

    def _identity_header(self, edit: "_Edit", sub: Subscription) -> None:
        header = self.elements[0]
        if sub.iccid is not None:
            mf = self._one("mf", "MF", "iccid")
            edit.set(header, "iccid", iccid_to_bcd(sub.iccid))
            edit.file(mf, "ef-iccid", 0, iccid_to_ef(sub.iccid))
        if sub.profile_name is not None:
            edit.set(header, "profileType", sub.profile_name)

    def _imsi(self, edit: "_Edit", sub: Subscription) -> None:
        field = "imsi" if sub.imsi is not None else "mnc_length"
        usim = self._one("usim", "USIM", field)
        value = edit.value(usim)
        try:
            old_imsi = decode_ef_imsi(file_image(value["ef-imsi"]) or b"")
        except ValueError:
            old_imsi = None
        old_ad = file_image(value["ef-ad"]) if "ef-ad" in value else None
        old_mnc = decode_ef_ad_mnc_length(old_ad) if old_ad is not None else None
        new_mnc = sub.mnc_length or old_mnc or _DEFAULT_MNC_LENGTH
        if sub.imsi is not None:
            edit.file(usim, "ef-imsi", 0, encode_ef_imsi(sub.imsi))
            acc = file_image(value["ef-acc"])
            edit.file(usim, "ef-acc", 0, encode_ef_acc(sub.imsi, acc[:2] if acc and len(acc) >= 2
                                                       else b"\x00\x00"))
        if "ef-ad" in value or sub.mnc_length is not None:
            base = old_ad if old_ad is not None and len(old_ad) >= 3 else bytes(3)
            edit.file(usim, "ef-ad", 0, encode_ef_ad(new_mnc, base))
        if old_imsi is not None:
            # The IMS identities hold the IMSI and a domain from MCC + MNC: both may change.
            new_imsi = sub.imsi or old_imsi
            for isim in self.of_kind("isim"):
                for name in ("ef-impi", "ef-impu"):
                    if name in edit.value(isim):
                        self._identities(edit, isim, name, lambda text: rederive(
                            text, old_imsi, old_mnc or _DEFAULT_MNC_LENGTH, new_imsi, new_mnc))

    def _identities(self, edit: "_Edit", isim: Element, name: str,
                    change: Callable[[str], str]) -> None:
        """Rewrite each identity TLV of EF.IMPI / EF.IMPU that ``change`` alters."""
        for offset, content in content_pieces(edit.value(isim)[name]):
            decoded = decode_identity(content)
            if decoded is None:
                continue
            text, tlv_end = decoded
            new_text = change(text)
            if new_text == text:
                continue
            tlv, rest = encode_identity(new_text), content[tlv_end:]
            # Trailing 'FF' is padding (records and files are 'FF' filled): the new
            # TLV may take it; anything else after the TLV is kept as it is.
            new = tlv.ljust(len(content), b"\xff") if rest.strip(b"\xff") == b"" else tlv + rest
            if len(new) > len(content):
                room = file_room(edit.value(isim)[name], offset)
                if room is None or len(new) > room:
                    raise PersonalizationError(
                        f"imsi: the ISIM {name.upper().replace('-', '.')} identity {new_text!r} "
                        "does not fit in the template's file")
            edit.file(isim, name, offset, new)

    def _aka(self, edit: "_Edit", sub: Subscription) -> None:
        field = next(n for n in ("ki", "opc", "op", "algorithm") if getattr(sub, n) is not None)
        akas = [e for e in self.of_kind("akaParameter")
                if e.value["algoConfiguration"][0] == "algoParameter"]
        if not akas:
            raise PersonalizationError(f"{field}: the template has no AKA parameters "
                                       "(PE-AKAParameter with algoParameter) for this value")
        opc = sub.opc
        if sub.op is not None:
            assert sub.ki is not None  # Subscription checks it
            opc = opc_from_op(sub.ki, sub.op)
        used: set[int] = set()
        for aka in akas:
            params = dict(edit.value(aka)["algoConfiguration"][1])
            old_id = params["algorithmID"]
            new_id = ALGORITHMS[sub.algorithm] if sub.algorithm else old_id
            # OPc / TOPc derive from K: a new K (or algorithm) with the old one is wrong.
            if new_id in _WITH_OPC and opc is None and (sub.ki is not None or new_id != old_id):
                raise PersonalizationError(f"opc: {_WITH_OPC[new_id]} with a new ki or a new "
                                           "algorithm needs the opc (MILENAGE: or the op)")
            if new_id != old_id:
                params["algorithmID"] = new_id
                params["algorithmOptions"] = _ALGORITHM_OPTIONS[new_id]
            if sub.ki is not None:
                params["key"] = sub.ki
            if opc is not None:
                params["opc"] = opc
            used.add(new_id)
            edit.set(aka, "algoConfiguration", ("algoParameter", params))
        if sub.algorithm is not None:
            self._services(edit, used, sub)

    def _services(self, edit: "_Edit", used: set[int], sub: Subscription) -> None:
        """The ProfileHeader's mandatory services name exactly the algorithms now used."""
        header = self.elements[0]
        services = dict(edit.value(header)["eUICC-Mandatory-services"])
        for algorithm_id, names in _ALGORITHM_SERVICES.items():
            for name in names:
                services.pop(name, None)
            if algorithm_id in used:
                wide = algorithm_id == 2 and sub.ki is not None and len(sub.ki) == _TUAK256_KEY_SIZE
                services[names[1] if wide else names[0]] = None
        edit.set(header, "eUICC-Mandatory-services", services)

    def _codes(self, edit: "_Edit", name: str, reference: int, coded: bytes,
               puk: bool = False) -> None:
        kind, items, value_key = ("pukCodes", "pukCodes", "pukValue") if puk else \
            ("pinCodes", "pinCodes", "pinValue")
        found = False
        for element in self.of_kind(kind):
            container = edit.value(element)[items]
            configs = container if puk else (container[1] if container[0] == "pinconfig" else [])
            if not any(c["keyReference"] == reference for c in configs):
                continue
            found = True
            new = [dict(c, **{value_key: coded}) if c["keyReference"] == reference else c
                   for c in configs]
            edit.set(element, items, new if puk else ("pinconfig", new))
        if not found:
            raise PersonalizationError(f"{name}: the template has no key reference "
                                       f"{reference:02X} in a PE-{kind[0].upper()}{kind[1:]}")


class _Edit:
    """The changed element values of one personalization (copies, never the template's)."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.changed: dict[int, dict[str, Any]] = {}

    def value(self, element: Element) -> dict[str, Any]:
        return self.changed.get(element.index, element.value)

    def set(self, element: Element, key: str, item: Any) -> None:
        if element.index not in self.changed:
            self.template._editable(element)
            self.changed[element.index] = dict(element.value)
        self.changed[element.index][key] = item

    def file(self, element: Element, name: str, offset: int, data: bytes) -> None:
        current: File = self.value(element).get(name, [])
        try:
            new = write_file(current, offset, data)
        except ValueError as exc:
            raise PersonalizationError(f"{element.kind} {name}: {exc}") from None
        self.set(element, name, new)

    def result(self) -> bytes:
        parts = []
        for element in self.template.elements:
            if element.index in self.changed:
                parts.append(encode_element(element.kind, self.changed[element.index]))
            else:
                parts.append(element.raw)
        return b"".join(parts)


def personalize(template_der: bytes, sub: Subscription) -> bytes:
    """``template_der`` with the values of ``sub`` (see the module docstring).

    With no value given the result is the template, byte for byte.  Raises
    :class:`PersonalizationError` for a template that is not a Profile
    Package or has no place for a given value.
    """
    return Template(template_der).personalize(sub)
