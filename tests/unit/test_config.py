"""The TOML configuration file (smdpp.config) over the server's real command line."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from smdpp.cli import parse_args

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smdpp.toml"
    path.write_text(text)
    return path


def test_file_values_become_the_options(tmp_path: Path) -> None:
    path = _write(tmp_path, 'port = 9000\ndata-dir = "/srv/smdpp"\nin_memory = true\n'
                            'session-lifetime = 30\nhttp = "klein"\nlog-format = "json"\n')
    args = parse_args(["--config", str(path)])
    assert args.port == 9000 and args.data_dir == Path("/srv/smdpp") and args.in_memory is True
    assert args.session_lifetime == 30.0 and isinstance(args.session_lifetime, float)
    assert args.http == "klein" and args.log_format == "json"
    assert args.store == "memory:"  # the command line's own checks and derived values apply


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'port = 9000\nhost = "0.0.0.0"\n')
    args = parse_args(["-p", "9100", "--config", str(path)])
    assert args.port == 9100 and args.host == "0.0.0.0"


@pytest.mark.parametrize("text, named", [
    ("prot = 1\n", "unknown option 'prot'"),
    ('port = "eighty"\n', "port: 'eighty' is not valid"),
    ("port = 80.5\n", "port: must be a whole number"),
    ("tls = 1\n", "tls: must be true or false"),
    ('http = "nginx"\n', "http: 'nginx' is not one of smdpp, klein"),
    ("hostname = 5\n", "hostname: must be a string"),
    ("port = [1, 2]\n", "port: takes one value"),
    ("port = \n", "not valid TOML"),
    ("version = true\n", "unknown option 'version'"),
    ("port = 1\nport-x = 2\n[admin]\nport = 3\n", "unknown option 'port-x'"),
    ("data-dir = 1\ndata_dir = 2\n", "data-dir: must be a string"),
])
def test_a_wrong_file_stops_with_a_line_naming_file_and_key(tmp_path: Path, capsys, text: str,
                                                           named: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SystemExit) as stop:
        parse_args(["--config", str(path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err and named in err, err
    assert "Traceback" not in err


def test_same_option_twice_with_dash_and_underscore(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, 'data-dir = "a"\ndata_dir = "b"\n')
    with pytest.raises(SystemExit):
        parse_args(["--config", str(path)])
    assert "given twice" in capsys.readouterr().err


def test_missing_file_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "nope.toml")])
    assert "nope.toml: cannot read the configuration" in capsys.readouterr().err


def test_print_config_is_a_config_file_that_gives_the_same_options(tmp_path: Path) -> None:
    """--print-config output, read back as the file, yields the same settings."""
    argv = ["-p", "8123", "--hostname", "smdp.example.org", "--tls", "--workers", "3",
            "--admin-port", "9100", "--session-lifetime", "90"]
    run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), *argv, "--print-config"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    document = tomllib.loads(run.stdout)  # valid TOML
    assert document["port"] == 8123 and document["tls"] is True and document["workers"] == 3
    assert document["store"] == "shelve:"  # the value derived from --workers
    assert "# admin-token-file = (not set)" in run.stdout
    assert "# TCP port to listen on" in run.stdout  # each option's help as a comment
    assert not (tmp_path / "smdpp-data").exists()  # printing writes nothing
    again = parse_args(["--config", str(_write(tmp_path, run.stdout))])
    first = parse_args(argv)
    for name in ("port", "hostname", "tls", "workers", "admin_port", "session_lifetime", "store",
                 "data_dir", "host", "http"):
        assert getattr(again, name) == getattr(first, name), name


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_args(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.split()[-1][0].isdigit()  # e.g. "osmo-smdpp.py 0.1.0"
