"""What a person wants to see of a Profile Package (``smdpp-profile show``).

:func:`summarize` reads, from a decoded package (SAIP 8.1): the elements in
order, ICCID, IMSI, SPN, profile type, the applications (the NAA templates
with their AIDs, and Java Card instances), the AKA algorithm of each
PE-AKAParameter, and the keys and PIN/PUK values, masked unless asked for.
:func:`installed_identifiers` is the ICCID / IMSI pair ``smdpp-lpa`` prints.
"""
from __future__ import annotations

from typing import Any

from smdpp.profiles.codings import decode_ef_spn
from smdpp.profiles.elements import Element, fcp_of, file_image, parse_package
from smdpp.profiles.identifiers import decode_ef_imsi, iccid_from_bcd
from smdpp.profiles.subscription import ALGORITHMS

__all__ = ["summarize", "format_summary", "installed_identifiers"]

_ALGORITHM_NAMES = {number: name for name, number in ALGORITHMS.items()}
# The file-system templates that are applications (NAAs), with their ADF.
_APPLICATIONS = {"usim": "adf-usim", "isim": "adf-isim", "csim": "adf-csim"}
MASK = "****"


def _imsi(elements: list[Element]) -> str | None:
    for element in elements:
        if element.kind == "usim":
            try:
                return decode_ef_imsi(file_image(element.value["ef-imsi"]) or b"")
            except ValueError:
                return None
    return None


def _iccid(header: dict[str, Any]) -> str:
    """The ProfileHeader ICCID digits, or its hex with a note when it is not BCD."""
    try:
        return iccid_from_bcd(header["iccid"])
    except ValueError:
        return f"{header['iccid'].hex().upper()} (not BCD digits)"


def installed_identifiers(upp: bytes) -> tuple[str, str | None]:
    """ICCID and IMSI (None without a readable USIM EF.IMSI) of a package.

    Raises :class:`~smdpp.profiles.elements.InvalidPackage` for bytes that
    are not a Profile Package.
    """
    elements = parse_package(upp)
    return _iccid(elements[0].value), _imsi(elements)


def _secret(value: bytes, show: bool, text: bool = False) -> str:
    if not show:
        return MASK
    if text:
        stripped = value.rstrip(b"\xff")
        if stripped.isascii() and stripped.isdigit():
            return stripped.decode("ascii")
    return value.hex()


def summarize(upp: bytes, *, show_secrets: bool = False) -> dict[str, Any]:
    """A JSON-ready summary of a package; raises InvalidPackage if it is not one."""
    elements = parse_package(upp)
    header = elements[0].value
    summary: dict[str, Any] = {
        "size": len(upp),
        "saipVersion": f"{header['major-version']}.{header['minor-version']}",
        "profileType": header.get("profileType"),
        "iccid": _iccid(header),
        "imsi": _imsi(elements),
        "spn": None,
        "mandatoryServices": sorted(header["eUICC-Mandatory-services"]),
        "elements": [],
        "applications": [],
        "aka": [],
        "pins": [],
        "puks": [],
    }
    for element in elements:
        summary["elements"].append({"index": element.index, "kind": element.kind,
                                    "id": element.identification, "bytes": len(element.raw)})
        value = element.value
        if element.kind in _APPLICATIONS:
            aid = fcp_of(value.get(_APPLICATIONS[element.kind], [])).get("dfName")
            summary["applications"].append({"type": element.kind.upper(),
                                            "aid": aid.hex().upper() if aid else None})
        if element.kind == "usim" and summary["spn"] is None:
            spn = file_image(value["ef-spn"])
            summary["spn"] = decode_ef_spn(spn) if spn else None
        elif element.kind == "application":
            for instance in value.get("instanceList") or []:
                summary["applications"].append({"type": "Java Card instance",
                                                "aid": instance["instanceAID"].hex().upper()})
        elif element.kind == "akaParameter":
            choice, params = value["algoConfiguration"]
            if choice == "algoParameter":
                summary["aka"].append({
                    "id": element.identification,
                    "algorithm": _ALGORITHM_NAMES.get(params["algorithmID"],
                                                      str(params["algorithmID"])),
                    "ki": _secret(params["key"], show_secrets),
                    "opc": _secret(params["opc"], show_secrets)})
            else:
                summary["aka"].append({"id": element.identification,
                                       "algorithm": "mapped from another NAA"})
        elif element.kind == "pinCodes" and value["pinCodes"][0] == "pinconfig":
            for config in value["pinCodes"][1]:
                summary["pins"].append({"id": element.identification,
                                        "keyReference": f"{config['keyReference']:02X}",
                                        "value": _secret(config["pinValue"], show_secrets, True)})
        elif element.kind == "pukCodes":
            for config in value["pukCodes"]:
                summary["puks"].append({"id": element.identification,
                                        "keyReference": f"{config['keyReference']:02X}",
                                        "value": _secret(config["pukValue"], show_secrets, True)})
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as lines of text for a terminal."""
    lines = [
        f"ICCID          {summary['iccid']}",
        f"IMSI           {summary['imsi'] or '-'}",
        f"SPN            {summary['spn'] or '-'}",
        f"profile type   {summary['profileType'] or '-'}",
        f"SAIP version   {summary['saipVersion']}, {summary['size']} bytes",
        f"mandatory      {', '.join(summary['mandatoryServices'])}",
        "applications   " + (", ".join(f"{a['type']} {a['aid'] or ''}".rstrip()
                                       for a in summary["applications"]) or "-"),
    ]
    for aka in summary["aka"]:
        keys = f" Ki {aka['ki']} OPc {aka['opc']}" if "ki" in aka else ""
        lines.append(f"AKA (PE {aka['id']})   {aka['algorithm']}{keys}")
    for kind in ("pins", "puks"):
        for code in summary[kind]:
            lines.append(f"{kind[:-1].upper()} {code['keyReference']} (PE {code['id']})  {code['value']}")
    lines.append("elements:")
    for element in summary["elements"]:
        ident = "" if element["id"] is None else f" id {element['id']}"
        lines.append(f"  {element['index']:3d} {element['kind']}{ident} ({element['bytes']} bytes)")
    return "\n".join(lines)
