"""The README and docs/ stay true: examples parse, links resolve, sizes hold, tables are generated.

- Every ``blox-lat`` command in a fenced ``bash`` block of the README parses with the real CLI
  (its arguments and options are checked by click, the command is not run).
- Every relative link in README.md, CHANGELOG.md and docs/*.md names an existing file.
- README.md stays a user guide: at most 15 KiB.
- docs/benchmarks.md is exactly what ``benchmarks/make_docs.py`` generates from
  ``benchmarks/results/*.json``, so it cannot be edited by hand.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import click
import pytest

from blox_lat.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def bash_commands(text: str) -> list[str]:
    """``blox-lat ...`` command lines of the fenced bash blocks (continuations joined)."""
    commands = []
    for lang, body in FENCE.findall(text):
        if lang != "bash":
            continue
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            for part in re.split(r"&&|;", line):
                part = part.strip()
                if part.startswith("blox-lat "):
                    commands.append(part)
    return commands


README_COMMANDS = bash_commands(README.read_text())


def test_readme_has_bash_examples():
    assert len(README_COMMANDS) >= 20


@pytest.mark.parametrize("line", README_COMMANDS)
def test_readme_example_parses(line):
    """Resolve the subcommand chain and let click parse the arguments, without running anything."""
    argv = shlex.split(line, comments=True)[1:]
    command: click.Command = cli
    ctx = click.Context(cli, info_name="blox-lat")
    while isinstance(command, click.Group):
        assert argv, f"{line!r} names a group, not a command"
        name, argv = argv[0], argv[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{line!r}: no command {name!r}"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    # make_context parses and validates every argument and option (types, choices, required)
    with command.make_context(command.name, list(argv), parent=ctx.parent) as parsed:
        assert parsed.params is not None


def _links(path: Path) -> list[tuple[str, Path]]:
    out = []
    text = FENCE.sub("", path.read_text())  # links inside code blocks are examples, not links
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # external or same-page
        out.append((target, (path.parent / target.split("#", 1)[0]).resolve()))
    return out


@pytest.mark.parametrize("doc", [README, ROOT / "CHANGELOG.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    missing = [target for target, path in _links(doc) if not path.exists()]
    assert missing == [], f"{doc.name}: links to missing files: {missing}"


def test_readme_is_short():
    assert README.stat().st_size <= 15 * 1024, "README.md is a user guide: move details to docs/"


def test_benchmarks_page_is_generated():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "benchmarks" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert (ROOT / "docs" / "benchmarks.md").read_text() == expected, (
        "docs/benchmarks.md differs from the result files: run python benchmarks/make_docs.py")
