"""The README and docs/ stay true: links resolve, sizes hold, tables are generated.

- The examples (commands, ``--help``, Python blocks) are checked in tests/test_docs_run.py.
- Every relative link in README.md, CHANGELOG.md and docs/*.md names an existing file.
- README.md stays a user guide: at most 15 KiB.
- docs/benchmarks.md is exactly what ``benchmarks/make_docs.py`` generates from
  ``benchmarks/results/*.json``, so it cannot be edited by hand.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


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
