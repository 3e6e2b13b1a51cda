"""The shape of the code: no function, class or parameter list in blox_lat larger than the style allows.

An orchestrator is a class with one small method per step (CONTRIBUTING.md); a function past the limit
is a sign that steps share state they should not. ``LIMIT`` is the hard limit of issue 14; every
module of blox_lat is held to it, except the functions in ``PENDING`` (each with the reason),
which must still be over the limit: split one, and its entry goes.

Issue 23 adds two more: no class over ``CLASS_LIMIT`` lines (an orchestrator is several small
objects, not one big one) and no function outside ``blox_lat/cli/`` with more than
``PARAM_LIMIT`` parameters (related ones travel together as a small frozen dataclass; click
commands take one parameter per option, so ``cli/`` is exempt).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "blox_lat"
LIMIT = 80
#: functions still over the limit, and why they are not split yet
PENDING: dict[str, str] = {}
CLASS_LIMIT = 300
PARAM_LIMIT = 10
CLI = ROOT / "cli"


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


def _nodes(path: Path):
    return ast.walk(ast.parse(path.read_text(), filename=str(path)))


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Every parameter (positional-only, positional, keyword-only, ``*args``, ``**kwargs``),
    less a leading ``self`` or ``cls``."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def _long_classes(root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(root.rglob("*.py")) for node in _nodes(path)
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LIMIT]


def _many_params(root: Path = ROOT) -> list[str]:
    cli = root / "cli"
    return [f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({len(_params(node))} parameters)"
            for path in sorted(root.rglob("*.py")) if not path.is_relative_to(cli) for node in _nodes(path)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(_params(node)) > PARAM_LIMIT]


def test_no_class_is_longer_than_the_limit():
    too_long = _long_classes()
    assert not too_long, f"classes over {CLASS_LIMIT} lines: split them by responsibility: {too_long}"


def test_no_function_outside_cli_takes_too_many_parameters():
    too_many = _many_params()
    assert not too_many, (f"functions outside blox_lat/cli/ with more than {PARAM_LIMIT} parameters: "
                          f"group related ones into a frozen dataclass: {too_many}")


def test_the_class_and_parameter_counters(tmp_path):
    root = tmp_path / "blox_lat"
    (root / "cli").mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(CLASS_LIMIT - 1))
    source = (f"class Short:\n{body}\n\nclass Long:\n{body}    y = 0\n\n\n"
              "def ten(a, b, c, d, e, f, g, h, i, j):\n    pass\n\n\n"
              "def eleven(a, /, b, *args, c, d, e, f, g, h, i, **kwargs):\n    pass\n\n\n"
              "class K:\n    def method(self, a, b, c, d, e, f, g, h, i, j):\n        pass\n\n"
              "    @classmethod\n    def make(cls, a, b, c, d, e, f, g, h, i, j, k):\n        pass\n")
    (root / "m.py").write_text(source)
    (root / "cli" / "c.py").write_text("def command(a, b, c, d, e, f, g, h, i, j, k, m):\n    pass\n")
    lines = source.splitlines()

    def line(start: str) -> int:
        return next(n for n, text in enumerate(lines, 1) if text.lstrip().startswith(start))

    assert _long_classes(root) == [f"blox_lat/m.py:{line('class Long')} Long ({CLASS_LIMIT + 1} lines)"]
    assert _many_params(root) == [f"blox_lat/m.py:{line('def eleven')} eleven (11 parameters)",
                                  f"blox_lat/m.py:{line('def make')} make (11 parameters)"]
