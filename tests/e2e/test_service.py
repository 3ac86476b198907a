"""contrib/smdpp.service and contrib/smdpp.toml: the unit is valid and its command serves.

systemd-analyze (Debian's systemd, on this image) checks the unit with its
ExecStart pointed at this installation's ``smdpp`` script; then that very
command line runs with the sample configuration (data folder and ports
overridden for the test), answers ES9+ and the admin listener, reloads on
SIGHUP (ExecReload) and stops on SIGTERM (KillSignal) with its lines.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, RunningServer
from .test_admin import admin_url, one_download

UNIT = REPO / "contrib" / "smdpp.service"
CONFIG = REPO / "contrib" / "smdpp.toml"


def _unit_values(key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
            if line.startswith(f"{key}=")]


def _smdpp_script() -> str:
    script = shutil.which("smdpp", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the smdpp console script is not installed beside this python (pip install -e .)")
    return script


def test_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "smdpp.service"
    unit.write_text(UNIT.read_text().replace("/opt/smdpp/venv/bin/smdpp", _smdpp_script())
                    .replace("/etc/smdpp/smdpp.toml", str(CONFIG)))
    run = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                         text=True, timeout=60)
    # verify reports unknown keys and bad values only as warnings: none may appear
    assert run.returncode == 0 and run.stderr.strip() == "" and run.stdout.strip() == "", run.stderr
    assert _unit_values("User") == ["smdpp"] and _unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "CapabilityBoundingSet",
                      "SystemCallFilter", "RestrictAddressFamilies"):
        assert _unit_values(hardening), hardening


def test_unit_command_serves_reloads_and_stops(tmp_path: Path) -> None:
    settings = tomllib.loads(CONFIG.read_text())
    assert settings["data-dir"] == "/var/lib/smdpp" and settings["admin-port"] == 8001
    command = shlex.split(_unit_values("ExecStart")[0])
    assert command[1:] == ["--config", "/etc/smdpp/smdpp.toml"]
    # the unit's command with the sample file; this test's own folder and kernel-picked ports
    argv = [_smdpp_script(), "--config", str(CONFIG), "--data-dir", str(tmp_path / "smdpp-data"),
            "-H", "127.0.0.1", "-p", "0", "--admin-port", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=tmp_path)
    lines: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            lines.append(line)
            if "serving ES9+" in line:
                break
        server = RunningServer(process, re.search(r"on (http://[0-9.:]+)/", lines[-1]).group(1),
                               tmp_path / "smdpp-data", lines)
        threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
        one_download(server)
        with urllib.request.urlopen(admin_url(server) + "/ready", timeout=20) as answer:
            assert answer.read() == b"ready\n"
        process.send_signal(signal.SIGHUP)  # ExecReload
        server.wait_for_log("SIGHUP: 0 CRL(s) in use")
        process.send_signal(signal.SIGTERM)  # KillSignal
        assert process.wait(timeout=30) == 0
        server.wait_for_log("stopping: SIGTERM received")
        server.wait_for_log("INFO smdpp: stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
