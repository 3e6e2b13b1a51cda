"""Finding and reading build inputs: measurement journals, training records, Blox files.

A ``--from`` directory is walked in sorted order. ``journal.jsonl`` files are measurement
journals (read with :func:`blox_lat.harness.read_journal`, which skips a torn final line);
``*.json`` files whose ``kind`` is ``training`` or ``distill-block`` are training records (other
JSON files, such as artifact metadata, are ignored; unreadable JSON is an error); files named
``blox-*`` that start with ``---`` are Blox reference files. A file given directly is treated
the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blox_lat import _json as fast_json
from blox_lat._fs import sha256_file
from blox_lat.dataset._errors import InputError
from blox_lat.training import TRAINING_RECORD_SCHEMA

__all__ = ["InputFile", "discover", "load_record", "sha256_file"]

RECORD_KINDS = ("training", "distill-block")


@dataclass(frozen=True)
class InputFile:
    file: str  # where it is, as walked (kept as text: a full-size build lists 91,125 files)
    label: str  # stable name for provenance: <source dir name>/<relative path>
    kind: str  # journal | json | blox
    source: str

    @property
    def path(self) -> Path:
        return Path(self.file)


def _classify(name: str) -> str | None:
    if name in ("journal.jsonl", "journal.jsonl.gz"):  # a gzipped journal reads the same
        return "journal"
    if name.startswith("blox-") and not name.endswith((".partial", ".tmp")):
        return "blox"
    if name.endswith(".json"):
        return "json"
    return None


def discover(sources: list[str | os.PathLike[str]]) -> list[InputFile]:
    """Every input file under ``sources`` in a deterministic order."""
    if not sources:
        raise InputError("no inputs: pass --from DIR (a campaign directory, a training-records folder or Blox files)")
    found: list[InputFile] = []
    for source in sources:
        root = Path(source)
        if root.is_file():
            kind = _classify(root.name) or ("json" if root.suffix == ".json" else None)
            if kind is None:
                raise InputError(f"{root}: not a journal.jsonl, a training record (.json) or a Blox file (blox-*)")
            found.append(InputFile(str(root), root.name, kind, root.name))
            continue
        if not root.is_dir():
            raise InputError(f"input {root} does not exist; pass a campaign directory, a records folder or a Blox file")
        top = os.fspath(root)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = Path(dirpath).relative_to(root).as_posix()
            prefix = f"{root.name}/" if rel == "." else f"{root.name}/{rel}/"
            for name in sorted(filenames):
                kind = _classify(name)
                if kind is not None:
                    found.append(InputFile(os.path.join(dirpath, name), prefix + name, kind, root.name))
    return found




def load_record(data: bytes, label: str) -> dict[str, Any] | None:
    """A training / distill-block record, or ``None`` for JSON that is not one of ours."""
    try:
        record = fast_json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{label}: not valid JSON ({getattr(exc, 'msg', exc)}); fix or remove the file") from None
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS:
        return None
    schema = record.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise InputError(f"{label}: training record without a valid 'schema' number")
    if schema > TRAINING_RECORD_SCHEMA:
        raise InputError(f"{label}: record schema {schema} is newer than this blox-lat reads ({TRAINING_RECORD_SCHEMA}); "
                         "upgrade blox-lat")
    return record
