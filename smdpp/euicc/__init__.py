"""A software test eUICC and an LPA (ES9+ client), for end-to-end downloads without hardware.

- :mod:`smdpp.euicc.card`: :class:`SoftEuicc`, the ES10b / ES8+ side of the eUICC (SGP.22 5.7, 5.5);
- :mod:`smdpp.euicc.es9`: :class:`Es9Client`, HTTP(S) + JSON transport of ES9+ (SGP.22 6.5);
- :mod:`smdpp.euicc.client`: :func:`download`, the LPA side of the SGP.22 3.1.3 download;
- :mod:`smdpp.euicc.cli`: the ``smdpp-lpa`` command;
- the same eUICC as a card over APDUs (``smdpp-euicc``): :mod:`smdpp.euicc.state` (the
  card file), :mod:`smdpp.euicc.apdu` (ISD-R APDU layer), :mod:`smdpp.euicc.es10` and
  :mod:`smdpp.euicc.es10c` (the ES10 dispatcher), :mod:`smdpp.euicc.bpp_pieces` (the BPP
  as an LPA sends it), :mod:`smdpp.euicc.lpac_bridge` (lpac's stdio drivers),
  :mod:`smdpp.euicc.vpcd` (vsmartcard's virtual reader), :mod:`smdpp.euicc.card_cli`.

It is written from SGP.22 independently of the server (:mod:`smdpp.rsp`),
so that an end-to-end test checks one reading of the specification against
another.
"""
from smdpp.euicc.card import CardError, SoftEuicc
from smdpp.euicc.client import DownloadError, DownloadResult, download
from smdpp.euicc.es9 import Es9Client, Es9Reply, Es9TransportError

__all__ = [
    "CardError",
    "SoftEuicc",
    "DownloadError",
    "DownloadResult",
    "download",
    "Es9Client",
    "Es9Reply",
    "Es9TransportError",
]
