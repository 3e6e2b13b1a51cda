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
    extras = project["optional-dependencies"]
    package = _requirement_names(project["dependencies"]) | {
        name for extra, specs in extras.items() if extra not in ("test", "dev") for name in _requirement_names(specs)}
    test = package | _requirement_names(extras["test"])
    assert _undeclared("blox_lat", package) == []
    assert _undeclared("tests", test) == []
    assert _undeclared("benchmarks", test) == []


def test_the_core_install_is_light():
    """Reading a release needs no deep-learning stack: torch, onnx, onnxruntime, kornia,
    matplotlib, scipy, paramiko and adb-shell come with the extras that need them."""
    core = _requirement_names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert not core & {"torch", "onnx", "onnxruntime", "kornia", "matplotlib", "scipy", "paramiko", "adb-shell",
                       "pandas"}


def test_a_missing_extra_is_one_line_naming_it():
    """With torch absent, a command that needs it says which extra to install, exit 2."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['blox-lat', 'export', '0', '-f', 'onnx', "
            "'--out', sys.argv[1]]; from blox_lat.cli.main import main; main()")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "needs torch" in lines[0] and "pip install 'blox-lat[export]'" in lines[0]


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The check can fail: a module imported but not declared is named."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import cryptography\nimport numpy\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [m.split(" ")[0] for m in _undeclared("pkg", {"numpy"})] == ["cryptography"]
