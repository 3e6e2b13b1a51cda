"""The campaign journal: ``journal.jsonl``, append-only, one JSON object per line (schema 1).

Every line is written with a single ``write`` of the complete line (``O_APPEND``), then
``fsync``: a crash leaves at most one torn *final* line, never a damaged earlier one. Readers
(:func:`read_journal`) ignore a torn final line; :class:`Journal` moves it aside into
``journal.jsonl.torn`` before appending, so the file stays one valid JSON object per line.

Line kinds (``kind``): ``environment`` (one per campaign run, see
:mod:`blox_lat.harness._environment`), ``measurement`` (one per model attempt outcome:
``status`` ``ok`` with a measurement, or ``failed`` with a reason and no number) and, with
anchors, ``anchors`` (one per timed attempt of a set). Schema history (each line carries the
lowest schema that describes it, :mod:`blox_lat.harness._records`):
1 - first version.
2 - anchors: ``anchors`` lines; ``level``, ``latency_corrected_ms``, ``set_id`` on measurement
lines and ``anchors`` on environment lines of anchored campaigns. Readers treat a missing
``level`` as null.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

from blox_lat import _json as fast_json
from blox_lat.errors import BloxLatError
from blox_lat.harness._records import (
    JOURNAL_SCHEMA,
    AnchorsRecord,
    EnvironmentRecord,
    MeasurementRecord,
    RecordError,
)

__all__ = ["JOURNAL_NAME", "JOURNAL_SCHEMA", "Journal", "JournalError", "JournalRecord", "check_measurement_line",
           "journal_path", "judge_line", "read_journal", "read_journal_lines", "read_records"]

JOURNAL_NAME = "journal.jsonl"


class JournalError(BloxLatError):
    """A journal line other than the last one is not valid JSON (the file was edited or damaged)."""


def _split_complete(data: bytes) -> tuple[bytes, bytes]:
    """(complete lines including their newline, torn tail without newline)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def read_journal(path: str | os.PathLike[str], *, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the journal's records in order; a torn final line (no newline) is skipped.

    A damaged line anywhere else raises :class:`JournalError` naming the line. ``kind`` keeps
    only ``"environment"`` or ``"measurement"`` records. Records with a newer ``schema`` than
    this reader knows raise :class:`JournalError` rather than being misread.
    """
    for _number, record in read_journal_lines(path, kind=kind):
        yield record


def journal_path(path: str | os.PathLike[str]) -> Path:
    """The journal file a path names: the path itself, or a campaign folder's ``journal.jsonl``
    (``journal.jsonl.gz`` when only the compressed one is there)."""
    path = Path(path)
    if path.is_dir():
        plain = path / JOURNAL_NAME
        packed = path / (JOURNAL_NAME + ".gz")
        return packed if packed.is_file() and not plain.exists() else plain
    return path


def _read_bytes(path: Path) -> bytes:
    """The journal's bytes, decompressed when the file is gzipped (by its magic number)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}: run 'blox-lat measure ... --out {path.parent}' first") from None
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise JournalError(f"{path}: damaged gzip file ({exc}); restore it from a backup") from None
    return data


def read_journal_lines(path: str | os.PathLike[str], *, kind: str | None = None
                       ) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`read_journal` with each record's line number, for errors that name the line.
    A gzipped journal (``journal.jsonl.gz``) reads the same."""
    path = journal_path(path)
    data = _read_bytes(path)
    complete, _torn = _split_complete(data)
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = fast_json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise JournalError(f"{path}:{number}: damaged journal line ({getattr(exc, 'msg', exc)}); "
                               "restore the file from a backup or remove that line") from None
        if not isinstance(record, dict):
            raise JournalError(f"{path}:{number}: journal line is not a JSON object")
        schema = record.get("schema", 0)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise JournalError(f"{path}:{number}: journal line has schema {schema!r}, not an integer "
                               "(not a blox-lat journal line); remove that line")
        if schema > JOURNAL_SCHEMA:
            raise JournalError(f"{path}:{number}: schema {record['schema']} is newer than this "
                               f"blox-lat understands ({JOURNAL_SCHEMA}); upgrade blox-lat")
        if kind is None or record.get("kind") == kind:
            yield number, record


JournalRecord = Union[EnvironmentRecord, MeasurementRecord, AnchorsRecord]


def read_records(path: str | os.PathLike[str]) -> list[JournalRecord]:
    """The journal's lines as typed records, in order, each validated once, here.

    A line that cannot stand (a measurement with no hash or device, a NaN, zero or negative
    latency, a sample count that does not match its protocol, a level whose ``set_id`` names
    no ``anchors`` line of the journal, an anchors line without usable references) raises
    :class:`JournalError` naming ``file:line`` and the field. Lines of other kinds are skipped.
    Every consumer of a journal (campaign resume, dataset build, predict, report, compare,
    cluster status) reads it through here or :func:`read_journal_lines`."""
    path = journal_path(path)
    records: list[JournalRecord] = []
    set_ids: set[str] = set()
    for number, line in read_journal_lines(path):
        record = judge_line(line, f"{path}:{number}")
        if record is None:
            continue
        if isinstance(record, AnchorsRecord):
            set_ids.add(record.set_id)
        records.append(record)
    for record in records:
        if isinstance(record, MeasurementRecord) and record.set_id is not None and record.level is not None \
                and record.set_id not in set_ids:
            raise JournalError(f"{record.origin}: level {record.level} names set_id {record.set_id!r}, which no "
                               f"anchors line of the journal has; {_FIX}")
    return records


_FIX = "restore the file from a backup or remove that line"


def judge_line(line: dict[str, Any], origin: str) -> JournalRecord | None:
    """The typed, checked record of one journal line (None for a kind no reader uses): the one
    judgement every reader applies, :class:`JournalError` naming ``origin`` (``file:line``) and
    the field when the line cannot stand."""
    try:
        return _typed(line, origin)
    except RecordError as exc:
        raise JournalError(f"{origin}: {exc}; {_FIX}") from None


def _typed(line: dict[str, Any], origin: str) -> JournalRecord | None:
    kind = line.get("kind")
    if kind == MeasurementRecord.kind:
        return MeasurementRecord.from_dict(line, origin).check()
    if kind == AnchorsRecord.kind:
        return AnchorsRecord.from_dict(line, origin).check()
    if kind == EnvironmentRecord.kind:
        env = EnvironmentRecord.from_dict(line)
        if not isinstance(env.device, str) or not isinstance(env.env_id, str):
            raise RecordError("an environment line names no device or env_id")
        return env
    return None


def check_measurement_line(record: dict[str, Any], path: Path, number: int) -> str:
    """The model hash of a ``measurement`` line, judged as :func:`read_records` judges it (the
    one record model: a hash, an ``ok``/``failed`` status, a device, for ``ok`` a measurement
    whose latency and counts can stand); :class:`JournalError` naming ``file:line`` and the
    field otherwise: a line the other readers refuse must not count as measured on resume."""
    return judge_line({**record, "kind": MeasurementRecord.kind}, f"{path}:{number}").model_hash


class Journal:
    """Append records to a journal, each flushed and fsynced; repairs a torn tail on open."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.repaired_bytes = self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair(self) -> int:
        """Move a torn final line (a SIGKILL mid-write) to ``<journal>.torn``; return its size."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return 0
        data = self.path.read_bytes()
        _complete, torn = _split_complete(data)
        if not torn:
            return 0
        with open(self.path.with_name(self.path.name + ".torn"), "ab") as keep:
            keep.write(torn + b"\n")
            keep.flush()
            os.fsync(keep.fileno())
        os.truncate(self.path, len(data) - len(torn))
        return len(torn)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
