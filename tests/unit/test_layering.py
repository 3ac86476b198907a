"""The imports run one way (ARCHITECTURE.md, "Layers"): read from the source, not run.

Each rule names a package (or module) and the smdpp modules it must not
import, at module level or inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "smdpp"

# importer prefix -> forbidden import prefixes
RULES: dict[str, tuple[str, ...]] = {
    # the sans-I/O core knows no HTTP, no store backend, no start-up
    "smdpp.rsp": ("smdpp.http", "smdpp.store", "smdpp.app", "smdpp.cli", "smdpp.workers",
                  "twisted", "klein"),
    # the PKI raises status codes without the RSP core
    "smdpp.pki": ("smdpp.rsp", "smdpp.http", "smdpp.store", "smdpp.app", "smdpp.cli"),
    "smdpp.status": ("smdpp.rsp", "smdpp.pki", "smdpp.http"),
    "smdpp.errors": ("smdpp.",),
    "smdpp.es8p": ("smdpp.rsp", "smdpp.http", "smdpp.store"),
    "smdpp.bsp": ("smdpp.rsp", "smdpp.http", "smdpp.store", "smdpp.es8p"),
    "smdpp.store": ("smdpp.rsp.engine", "smdpp.http", "smdpp.app", "smdpp.cli"),
    "smdpp.http": ("smdpp.app", "smdpp.cli", "smdpp.workers", "smdpp.store"),
    # the order core (states, ES2+, the engine's order lookup) is sans I/O but for its store
    **{f"smdpp.orders.{m}": ("smdpp.http", "smdpp.app", "smdpp.cli", "smdpp.rsp.engine",
                             "twisted", "klein")
       for m in ("states", "identifiers", "es2p", "downloads", "notify", "store", "pool")},
    # the wiring is used by the command line and the workers, never the reverse
    "smdpp.app": ("smdpp.cli", "smdpp.workers"),
    # the admin listener reads the engine and serves on the HTTP server; no start-up, no backend
    "smdpp.admin": ("smdpp.app", "smdpp.cli", "smdpp.workers", "smdpp.store"),
    # leaves anyone may use: they import no other smdpp module
    "smdpp.observe": ("smdpp.",),
    "smdpp.config": ("smdpp.",),
    "smdpp.ports": ("smdpp.",),
    "smdpp.workers": ("smdpp.cli",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    name = _module_name(path)
    imported = _imports(path)
    broken = [f"{name} imports {module}"
              for importer, forbidden in RULES.items() if _under(name, importer)
              for module in imported for prefix in forbidden if _under(module, prefix)]
    assert not broken, broken


def test_only_the_entry_points_import_the_command_line() -> None:
    """smdpp.run (smdpp/__init__.py) is the one entry point: osmo-smdpp.py, python -m smdpp
    and the smdpp console script all call it."""
    importers = [_module_name(p) for p in MODULES
                 if any(_under(m, "smdpp.cli") for m in _imports(p))
                 and _module_name(p) != "smdpp.cli"]
    assert importers == ["smdpp"]
