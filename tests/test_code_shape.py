"""The shape of the code: no function in blox_lat longer than the style allows.

An orchestrator is a class with one small method per step (CONTRIBUTING.md); a function past the limit
is a sign that steps share state they should not. ``LIMIT`` is the hard limit of issue 14; every
module of blox_lat is held to it, except the functions in ``PENDING`` (each with the reason),
which must still be over the limit: split one, and its entry goes.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "blox_lat"
LIMIT = 80
#: functions still over the limit, and why they are not split yet
PENDING: dict[str, str] = {}


def _functions(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def _too_long() -> dict[str, str]:
    return {f"{path.relative_to(ROOT.parent)}::{name}": f"{path.relative_to(ROOT.parent)}:{line} {name} ({length} lines)"
            for path in sorted(ROOT.rglob("*.py"))
            for name, line, length in _functions(path) if length > LIMIT}


def test_no_function_is_longer_than_the_limit():
    too_long = [where for key, where in _too_long().items() if key not in PENDING]
    assert not too_long, f"functions over {LIMIT} lines: split them into steps: {too_long}"


def test_pending_functions_are_still_too_long():
    done = sorted(set(PENDING) - set(_too_long()))
    assert not done, f"now within {LIMIT} lines: remove them from PENDING: {done}"


def test_the_counter_counts_a_function_from_def_to_its_last_line(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    x = 1\n\n    return x\n\n\nclass C:\n    def g(self):\n        pass\n")
    assert sorted(_functions(source)) == [("f", 1, 4), ("g", 8, 2)]
