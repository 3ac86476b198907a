"""``smdpp-euicc vpcd`` through a real pcscd with vsmartcard's vpcd driver, driven with pyscard.

The test starts its own pcscd (Debian's, with a reader.conf.d of its own naming
vpcd on a free port), connects the virtual eUICC to it, and runs the test LPA
(tests/e2e/stdio_lpa.py) over PC/SC against the real smdpp: download, its
notification, enable, disable, delete, each notification verified by smdpp.
Skipped only when pcscd or the vpcd driver is not installed (``.ci/run``
installs both).
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from smdpp.euicc.state import load_state
from tests.e2e.conftest import RunningServer
from tests.e2e.stdio_lpa import HEADERS, ISD_R, Card, Failed, run
from tests.e2e.test_virtual_euicc_lpac import ADDRESS, wait_for_log

REPO = Path(__file__).resolve().parents[2]
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")  # pcsc-lite 1.9 serves only there


def _free_port_pair() -> int:
    """A port P with P and P+1 free (vpcd opens one slot on each)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def pcscd(tmp_path: Path) -> Iterator[int]:
    """Our own pcscd with one vpcd reader; yields the vpcd port."""
    pcscd_bin = shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin")
    if pcscd_bin is None or not VPCD_DRIVER.exists():
        pytest.skip("pcscd or vsmartcard-vpcd is not installed")
    if PCSCD_SOCKET.exists():
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(PCSCD_SOCKET))
            except OSError:
                pass  # a stale socket of a pcscd that is gone; pcscd replaces it
            else:
                pytest.fail(f"another pcscd serves {PCSCD_SOCKET}; this test starts its own")
    port = _free_port_pair()
    conf = tmp_path / "reader.conf.d"
    conf.mkdir()
    (conf / "vpcd").write_text(f'FRIENDLYNAME "smdpp virtual eUICC"\nDEVICENAME /dev/null:{port}\n'
                               f"LIBPATH {VPCD_DRIVER}\nCHANNELID {port}\n")
    log = (tmp_path / "pcscd.log").open("w")
    process = subprocess.Popen([pcscd_bin, "--foreground", "--info", "--config", str(conf)],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "daemon ready" not in (tmp_path / "pcscd.log").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail("pcscd did not start:\n" + (tmp_path / "pcscd.log").read_text())
        time.sleep(0.1)
    try:
        yield port
    finally:
        _stop(process)
        log.close()


class PcscCard(Card):
    """The test LPA's card over PC/SC (pyscard), its HTTP straight to the SM-DP+ base URL."""

    def __init__(self, reader: object, base_url: str) -> None:
        self.reader = reader
        self.base = urlsplit(base_url)
        super().__init__()

    def open(self) -> int:
        self.connection = self.reader.createConnection()  # type: ignore[attr-defined]
        try:
            self.connection.connect()
        except Exception:  # no card yet: free the PC/SC context now, not in pyscard's __del__
            self.connection.release()
            raise
        data, sw1, sw2 = self.connection.transmit(list(bytes.fromhex("0070000001")))
        if (sw1, sw2) != (0x90, 0x00):
            raise Failed("euicc_init", "MANAGE CHANNEL")
        channel = data[0]
        aid = bytes.fromhex(ISD_R)
        _, sw1, _ = self.connection.transmit(list(bytes([channel, 0xA4, 0x04, 0x00, len(aid)]) + aid))
        if sw1 != 0x90:
            raise Failed("euicc_init", "SELECT ISD-R")
        return channel

    def close(self) -> None:
        self.connection.transmit([0x00, 0x70, 0x80, self.channel])
        self.connection.disconnect()
        self.connection.release()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw1, sw2 = self.connection.transmit(list(apdu))
        return bytes(data), (sw1 << 8) | sw2

    def http(self, url: str, tx: bytes) -> tuple[int, bytes | None]:
        conn = http.client.HTTPConnection(self.base.hostname, self.base.port, timeout=60)
        try:
            conn.request("POST", urlsplit(url).path, body=tx,
                         headers=dict(h.split(": ", 1) for h in HEADERS))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def test_pcsc_download_manage_and_notifications(pcscd: int, server_factory, tmp_path: Path) -> None:
    from smartcard.System import readers  # pyscard, from the test extra

    server: RunningServer = server_factory()
    card_file = tmp_path / "card.json"
    vpcd = subprocess.Popen([sys.executable, "-m", "smdpp.euicc.card_cli", "vpcd", "--card", str(card_file),
                             "--identity", str(server.data_dir / "euicc"), "--port", str(pcscd)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline = time.monotonic() + 30
        while True:
            ours = [r for r in readers() if str(r).startswith("smdpp virtual eUICC")]
            try:
                probe = PcscCard(ours[0], server.url)
                probe.close()
                break
            except Exception:  # no reader yet, or no card in it yet (pyscard's own exceptions)
                assert vpcd.poll() is None, vpcd.stdout.read() if vpcd.stdout else ""
                assert time.monotonic() < deadline, "the virtual eUICC did not appear in pcscd"
                time.sleep(0.2)
        reader = ours[0]

        def lpa(*args: str) -> object:
            return run(list(args), PcscCard(reader, server.url))

        iccid = lpa("profile", "download", "-s", ADDRESS, "-m", "SMDPP-TEST-1")["iccid"]  # type: ignore[index]
        [profile] = lpa("profile", "list")  # type: ignore[misc]
        assert (profile["iccid"], profile["profileState"]) == (iccid, "disabled")
        [note] = lpa("notification", "list")  # type: ignore[misc]
        assert note["profileManagementOperation"] == "install"
        lpa("notification", "process", "-a", "-r")
        wait_for_log(server, "ProfileInstallationResult success")
        for operation, event in (("enable", "notificationEnable"), ("disable", "notificationDisable"),
                                 ("delete", "notificationDelete")):
            lpa("profile", operation, iccid)
            [note] = lpa("notification", "list")  # type: ignore[misc]
            assert note["profileManagementOperation"] == operation
            lpa("notification", "process", "-a", "-r")
            wait_for_log(server, f"notification {event} from EID")
        assert lpa("profile", "list") == [] and lpa("notification", "list") == []
        with pytest.raises(Failed):
            lpa("profile", "enable", iccid)  # gone: iccidOrAidNotFound
    finally:
        _stop(vpcd)
    state = load_state(card_file)
    assert state.profiles == [] and state.notifications == {} and state.seq_number == 4
