"""Writing a release: Parquet sections, the Blox layout and ``dataset.json``, atomically.

Everything goes into a temporary sibling directory (``.<name>.partial-<PID@HOST>``, see
:mod:`blox_lat._leftovers`), is made read-only and renamed into place; an output directory
that appeared meanwhile is never touched. The same tables and inputs give byte-identical files:
no timestamps; provenance is the builder version, the git commit and the inputs with sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from blox_lat.dataset._collect import Collected
from blox_lat.dataset._errors import ReleaseExistsError
from blox_lat.dataset._inputs import sha256_file
from blox_lat.dataset._schema import (
    FORMAT,
    MANIFEST,
    RELEASE_SCHEMA,
    columns_of,
    key_column,
    manifest_digest,
    search_space_record,
    section_file,
)
from blox_lat.dataset._tables import Sections

__all__ = ["Written", "input_provenance", "write_release"]


class Written(NamedTuple):
    """What :func:`write_release` wrote: rows per section and the Blox files (relative paths)."""

    rows: dict[str, int]
    blox_files: tuple[str, ...]


class _SectionFile(NamedTuple):
    file: str  # relative to the release
    bytes: int
    sha256: str


# -- provenance ---------------------------------------------------------------------------------


def _journal_provenance(digests: list[str]) -> dict:
    """The journals' measurements as one content digest: independent of how the work was split
    into journals (one machine, or one journal per cluster shard) and of where they lay."""
    joined = "".join(f"{d}\n" for d in sorted(digests))
    return {"path": "journals", "kind": "measurements", "records": len(digests),
            "sha256": hashlib.sha256(joined.encode()).hexdigest()}


def input_provenance(collected: Collected) -> list[dict]:
    """The manifest's ``inputs``: Blox files and the journals' measurements by path, then each
    source's training records as one digest over their labels and sha256."""
    listed = list(collected.blox)
    if collected.journals:
        listed.append(_journal_provenance(collected.digests))
    inputs = sorted(listed, key=lambda d: d["path"])
    for source, recs in sorted(collected.records.items()):
        h = hashlib.sha256("".join(f"{lab}\0{sha}\n" for lab, sha in sorted(recs)).encode()).hexdigest()
        inputs.append({"path": f"{source}/", "kind": "records", "files": len(recs), "sha256": h})
    return inputs


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


# -- files --------------------------------------------------------------------------------------


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    # lz4: as small as zstd on these dictionary-encoded columns (accuracies have 3 decimals,
    # latencies repeat little but are few) and ~3x faster to decode, which is the cold load
    # page checksums: every read verifies each page's CRC32, so a flipped bit is an error, not a
    # wrong value (schema 3)
    pq.write_table(table, path, compression="lz4", row_group_size=1 << 20, write_page_checksum=True)


def _write_sections(tmp: Path, s: Sections) -> dict[str, dict]:
    """Every section's Parquet file under ``tmp``; the manifest's ``sections``."""

    def write(name: str) -> _SectionFile:
        rel = section_file(name)
        _write_parquet(s.tables[name], tmp / rel)
        return _SectionFile(rel, (tmp / rel).stat().st_size, sha256_file(tmp / rel))

    # Arrow encodes and hashlib hashes without the GIL: sections are written side by side
    names = sorted(s.tables)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as writers:
        written = list(writers.map(write, names))
    sections: dict[str, dict] = {}
    for name, f in zip(names, written):
        sections[name] = {
            "file": f.file, "rows": s.tables[name].num_rows, "bytes": f.bytes, "sha256": f.sha256, "key": key_column(name),
            "columns": [col.to_dict() for col in columns_of(name)], "metadata": s.metadata.get(name, {}),
        }
    return sections


def _write_blox(tmp: Path, s: Sections) -> list[dict]:
    """The Blox reference layout under ``tmp/blox``; the manifest's ``blox_files``."""
    from blox_lat.dataset._export import export_tables

    blox_files: list[dict] = []
    for rel in export_tables(s.tables, tmp / "blox"):
        p = tmp / "blox" / rel
        blox_files.append({"file": f"blox/{rel}", "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return blox_files


def _manifest(version: str, sections: dict[str, dict], blox_files: list[dict], inputs: list[dict]) -> dict:
    from blox_lat import __version__
    from blox_lat.harness import RULE

    manifest = {
        "format": FORMAT, "schema_version": RELEASE_SCHEMA, "dataset_version": version,
        "search_space": search_space_record(), "sections": sections, "blox_files": blox_files,
        "provenance": {"builder": f"blox-lat {__version__}", "git_commit": _git_commit(), "inputs": inputs,
                       "duplicates_rule": f"bench: {RULE}; training: identical or error"},
    }
    manifest["manifest_sha256"] = manifest_digest(manifest)
    return manifest


def _publish(tmp: Path, out: Path) -> None:
    """Make every file of ``tmp`` read-only and rename it to ``out`` (which must not exist)."""
    for p in sorted(tmp.rglob("*")):
        if p.is_file():
            p.chmod(0o444)
    try:
        os.rename(tmp, out)
    except OSError:
        raise ReleaseExistsError(f"{out} appeared while building; releases are immutable, build into a new directory") from None


def write_release(out: Path, version: str, s: Sections, inputs: list[dict], blox_format: bool) -> Written:
    """Write release ``version`` of ``s`` at ``out`` via a temporary sibling directory."""
    from blox_lat._leftovers import owner_tag

    tmp = out.parent / f".{out.name}.partial-{owner_tag()}"  # PID@HOST: see _leftovers for the cleanup
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        sections = _write_sections(tmp, s)
        blox_files = _write_blox(tmp, s) if blox_format else []
        manifest = _manifest(version, sections, blox_files, inputs)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Written({k: v["rows"] for k, v in sections.items()}, tuple(b["file"] for b in blox_files))
