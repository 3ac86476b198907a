"""``smdpp-euicc lpac`` end to end: a test LPA speaking lpac's stdio protocol drives the virtual
eUICC over APDUs against the real smdpp over HTTP: download, notifications (each verified by
smdpp), list, enable, disable, delete."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from smdpp.euicc.state import load_state
from tests.e2e.conftest import RunningServer

LPA = Path(__file__).resolve().parent / "stdio_lpa.py"
REPO = Path(__file__).resolve().parents[2]
ADDRESS = "testsmdpplus1.example.com"


def lpac(card: Path, server: RunningServer, *args: str, identity: Path | None = None,
         bridge: bool = True) -> tuple[int, list[dict[str, Any]], str]:
    """Run ``smdpp-euicc lpac`` with the test LPA as $LPAC; (exit code, lpac's JSON lines, stderr)."""
    cmd = [sys.executable, "-m", "smdpp.euicc.card_cli", "lpac", "--card", str(card)]
    if identity is not None:
        cmd += ["--identity", str(identity)]
    if bridge:
        cmd += ["--http-bridge", server.url]
    env = dict(os.environ, LPAC=f"{sys.executable} {LPA}", PYTHONPATH=str(REPO))
    done = subprocess.run(cmd + ["--", *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=REPO)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, lines, done.stderr


def result(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """lpac's final ``lpa`` line payload."""
    assert lines and lines[-1]["type"] == "lpa", lines
    return lines[-1]["payload"]


def wait_for_log(server: RunningServer, text: str, count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count} not in the server log:\n{server.log()}"
        time.sleep(0.05)


def test_lpac_download_manage_and_notifications(server_factory, tmp_path: Path) -> None:
    server = server_factory()
    identity = server.data_dir / "euicc"
    card = tmp_path / "card.json"

    code, lines, err = lpac(card, server, "profile", "download", "-s", ADDRESS, "-m", "SMDPP-TEST-1",
                            identity=identity)
    assert code == 0, (lines, err)
    assert result(lines)["code"] == 0, lines
    iccid = result(lines)["data"]["iccid"]
    steps = [line["payload"]["message"] for line in lines if line["type"] == "progress"]
    assert steps[0] == "es10b_get_euicc_challenge_and_info"
    assert steps[-1] == "es10b_load_bound_profile_package"
    assert stat.S_IMODE(card.stat().st_mode) == 0o600

    # the profile is installed and disabled; its install notification is pending
    code, lines, _ = lpac(card, server, "profile", "list")
    assert code == 0
    [profile] = result(lines)["data"]
    assert (profile["iccid"], profile["profileState"]) == (iccid, "disabled")
    assert profile["profileName"] and profile["isdpAid"]
    code, lines, _ = lpac(card, server, "notification", "list")
    [note] = result(lines)["data"]
    assert (note["profileManagementOperation"], note["iccid"]) == ("install", iccid)
    assert note["notificationAddress"] == ADDRESS

    code, lines, _ = lpac(card, server, "notification", "process", "-a", "-r")
    assert code == 0 and result(lines)["code"] == 0, lines
    wait_for_log(server, "ProfileInstallationResult success")
    assert result(lpac(card, server, "notification", "list")[1])["data"] == []

    expected_notes = 0
    for operation, state, event in (("enable", "enabled", "notificationEnable"),
                                    ("disable", "disabled", "notificationDisable")):
        code, lines, _ = lpac(card, server, "profile", operation, iccid)
        assert code == 0 and result(lines)["code"] == 0, lines
        [profile] = result(lpac(card, server, "profile", "list")[1])["data"]
        assert profile["profileState"] == state
        [note] = result(lpac(card, server, "notification", "list")[1])["data"]
        assert note["profileManagementOperation"] == operation
        code, lines, _ = lpac(card, server, "notification", "process", "-a", "-r")
        assert code == 0 and result(lines)["code"] == 0, lines
        expected_notes += 1
        wait_for_log(server, f"notification {event} from EID")

    # enabling an enabled profile / disabling a disabled one: the SGP.22 result, lpac fails
    code, lines, _ = lpac(card, server, "profile", "disable", iccid)
    assert code != 0 and result(lines)["message"] == "es10c_disable_profile"

    code, lines, _ = lpac(card, server, "profile", "delete", iccid)
    assert code == 0 and result(lines)["code"] == 0, lines
    assert result(lpac(card, server, "profile", "list")[1])["data"] == []
    code, lines, _ = lpac(card, server, "notification", "process", "-a", "-r")
    assert code == 0, lines
    wait_for_log(server, "notification notificationDelete from EID")
    state = load_state(card)
    assert state.profiles == [] and state.notifications == {} and state.seq_number == 4

    # the same card downloads the profile again (a new ISD-P), and the server is told
    code, lines, err = lpac(card, server, "profile", "download", "-s", ADDRESS, "-m", "SMDPP-TEST-1")
    assert code == 0 and result(lines)["data"]["iccid"] == iccid, (lines, err)


def test_lpac_chip_info_nickname_and_failures(server_factory, tmp_path: Path) -> None:
    server = server_factory()
    identity = server.data_dir / "euicc"
    card = tmp_path / "card.json"
    code, lines, err = lpac(card, server, "chip", "info", identity=identity)
    assert code == 0, (lines, err)
    info = result(lines)["data"]
    assert len(info["eidValue"]) == 32 and info["EUICCInfo2"]["svn"] == "2.2.0"

    # an unknown matchingId: the SM-DP+ refuses, lpac reports the failed ES9+ step, no profile
    code, lines, _ = lpac(card, server, "profile", "download", "-s", ADDRESS, "-m", "NO-SUCH-ID")
    assert code != 0 and result(lines)["message"] == "es9p_authenticateClient", lines
    assert load_state(card).profiles == []

    code, lines, _ = lpac(card, server, "profile", "download", "-s", ADDRESS, "-m", "SMDPP-TEST-1")
    iccid = result(lines)["data"]["iccid"]
    code, lines, _ = lpac(card, server, "profile", "nickname", iccid, "work phone")
    assert code == 0, lines
    [profile] = result(lpac(card, server, "profile", "list")[1])["data"]
    assert profile["profileNickname"] == "work phone"
    shown = subprocess.run([sys.executable, "-m", "smdpp.euicc.card_cli", "info", "--card", str(card)],
                           capture_output=True, text=True, cwd=REPO)
    assert shown.returncode == 0
    assert f"EID {info['eidValue']}" in shown.stdout
    assert f"profile {iccid} disabled" in shown.stdout and "nickname 'work phone'" in shown.stdout
    assert "notification 1 pending" in shown.stdout  # the installation result, not sent yet
    # the card file survives the runs; a second download of the same ICCID is refused by the card
    code, lines, _ = lpac(card, server, "profile", "download", "-s", ADDRESS, "-m", "SMDPP-TEST-1")
    assert code != 0 and result(lines)["message"] == "es10b_load_bound_profile_package"
    assert result(lines)["data"] == "2,9"  # storeMetadata, installFailedDueToIccidAlreadyExistsOnEuicc
    assert len(load_state(card).profiles) == 1


def test_missing_card_and_lpac(tmp_path: Path) -> None:
    """No card file and no --identity, or no lpac: one line, exit 2 / 127."""
    cmd = [sys.executable, "-m", "smdpp.euicc.card_cli", "lpac", "--card", str(tmp_path / "x.json"),
           "--", "chip", "info"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2 and "give --identity" in done.stderr
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "smdpp-virtual-euicc/1", "identity": 5}')
    done = subprocess.run(cmd[:5] + [str(damaged), "--", "chip", "info"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2 and "damaged" in done.stderr and "Traceback" not in done.stderr
    damaged.write_text('{"format": "smdpp-virtual-euicc/1", "identity": "/", "profiles": [{"iccid": 1}]}')
    done = subprocess.run(cmd[:5] + [str(damaged), "--", "chip", "info"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2 and "damaged" in done.stderr and "Traceback" not in done.stderr


def test_lpac_not_found(server_factory, tmp_path: Path) -> None:
    server = server_factory()
    env = {k: v for k, v in os.environ.items() if k != "LPAC"}
    env["PATH"] = str(tmp_path)  # no lpac there
    cmd = [sys.executable, "-m", "smdpp.euicc.card_cli", "lpac", "--card", str(tmp_path / "c.json"),
           "--identity", str(server.data_dir / "euicc"), "--", "chip", "info"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    assert done.returncode == 127 and "lpac not found" in done.stderr
