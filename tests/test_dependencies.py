"""Every third-party module the package, its tests and its benchmarks import is declared.

A module that arrives only through another package's dependencies (``cryptography`` through
paramiko) works until that package drops it; CI installs from ``pyproject.toml`` alone, so
what is imported must be named there: the package's imports in ``dependencies``, the tests'
and benchmarks' in ``dependencies`` or the ``test`` extra.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirement_names(specs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def _local_names(folder: Path) -> set[str]:
    """Modules a folder provides itself (its own files and packages, found on sys.path by pytest)."""
    return {p.stem for p in folder.rglob("*.py")} | {p.name for p in folder.rglob("*") if p.is_dir()}


def _imports(folder: Path) -> dict[str, str]:
    """Top-level module -> one file that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _undeclared(folder: str, declared: set[str]) -> list[str]:
    dists = packages_distributions()
    local = _local_names(ROOT / folder) | {"blox_lat"}
    if folder == "benchmarks":  # benchmarks reuse the tests' peers (sshd, ADB emulator)
        local |= _local_names(ROOT / "tests")
    missing = []
    for module, where in _imports(ROOT / folder).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & declared:
            missing.append(f"{module} (imported by {where}; installed from {sorted(names)})")
    return sorted(missing)


def test_every_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    test = runtime | _requirement_names(project["optional-dependencies"]["test"])
    assert _undeclared("blox_lat", runtime) == []
    assert _undeclared("tests", test) == []
    assert _undeclared("benchmarks", test) == []


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The check can fail: a module imported but not declared is named."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import cryptography\nimport numpy\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [m.split(" ")[0] for m in _undeclared("pkg", {"numpy"})] == ["cryptography"]
