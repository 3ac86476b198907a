"""The configuration file: every command-line option in TOML, the command line overriding it.

``--config FILE`` reads a TOML file (with the standard library's
:mod:`tomllib`) whose top-level keys are the long option names without the
dashes (``port = 8000``, ``data-dir = "/var/lib/smdpp"``, ``tls = true``;
``data_dir`` is taken as well).  Its values become the parser's defaults, so
that an option given on the command line wins, and every check of the
command line applies to them too.  Each value is checked like the option
itself (its type, its choices; a flag takes ``true``/``false``); an unknown
key or a wrong value stops the start with a line naming the file and key.

``--print-config`` prints the resulting configuration as TOML, every option
with its help as a comment, and exits: a template for a configuration file,
and a way to see what a command line and file amount to.

It works from the :class:`argparse.ArgumentParser` alone, so an option added
to the parser is known to the file at once.
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_options", "parse", "load", "dump", "ConfigError"]

# options that make no sense in a file
_NOT_IN_FILE = {"help", "version", "config", "print_config"}


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and ``--print-config`` to ``parser``."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="read options from this TOML file (keys: the long option names, "
                             "e.g. port = 8000); the command line overrides it")
    parser.add_argument("--print-config", action="store_true",
                        help="print the configuration (file and command line together) as "
                             "TOML and exit")


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Option actions by the names a file may use: 'data-dir' and 'data_dir'."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
        if not action.option_strings or action.dest in _NOT_IN_FILE:
            continue
        names[action.dest] = action
        names[action.dest.replace("_", "-")] = action
    return names


def _flag(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,  # noqa: SLF001
                               argparse.BooleanOptionalAction))


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` from the file as the option would have it; ConfigError naming ``where``."""
    if _flag(action):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, not {value!r}")
        return value
    if isinstance(value, list):
        if action.nargs in (None, "?") and not isinstance(action, argparse._AppendAction):  # noqa: SLF001
            raise ConfigError(f"{where}: takes one value, not a list")
        return [_convert_one(action, item, where) for item in value]
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):  # noqa: SLF001
        return [_convert_one(action, value, where)]
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value: Any, where: str) -> Any:
    kind = action.type
    if isinstance(value, bool) or isinstance(value, (dict, list)) or value is None:
        raise ConfigError(f"{where}: {value!r} is not a value this option takes")
    if kind in (int, float) and isinstance(value, (int, float)):
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number, not {value!r}")
        converted: Any = kind(value)
    elif isinstance(value, (int, float)) and kind not in (int, float):
        raise ConfigError(f"{where}: must be a string, not {value!r}")
    else:
        text = value if isinstance(value, str) else str(value)
        try:
            converted = kind(text) if callable(kind) else text
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"{where}: {value!r} is not valid: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


def load(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The values of the file as parser defaults (by dest); ConfigError naming the fault."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    options = _options(parser)
    values: dict[str, Any] = {}
    for key, value in document.items():
        action = options.get(key)
        if action is None:
            known = sorted({a.dest.replace("_", "-") for a in options.values()})
            raise ConfigError(f"{path}: unknown option {key[:60]!r} (known: {', '.join(known)})")
        if action.dest in values:
            raise ConfigError(f"{path}: {key!r} is given twice (with - and _)")
        values[action.dest] = _convert(action, value, f"{path}: {key}")
    return values


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` over the configuration file's values; print the result for --print-config.

    A faulty file exits like a faulty command line (status 2, one line naming it).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    if known.config is not None:
        try:
            parser.set_defaults(**load(known.config, parser))
        except ConfigError as exc:
            parser.error(str(exc))
    return parser.parse_args(argv)


def print_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Print :func:`dump` on standard output."""
    sys.stdout.write(dump(parser, args))
    sys.stdout.flush()


def dump(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``args`` as a TOML configuration file, each option with its help as a comment."""
    lines = ["# smdpp configuration (--config FILE); the command line overrides each value", ""]
    seen: set[str] = set()
    for action in parser._actions:  # noqa: SLF001
        if not action.option_strings or action.dest in _NOT_IN_FILE or action.dest in seen:
            continue
        seen.add(action.dest)
        name = action.dest.replace("_", "-")
        if action.help and action.help != argparse.SUPPRESS:
            text = action.help.replace("%(default)s", str(action.default))
            lines.append(f"# {' '.join(text.split())}")
        value = getattr(args, action.dest, None)
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {_toml(value)}")
    lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    """A TOML value: booleans, numbers, strings (JSON's escapes are TOML's), lists of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
