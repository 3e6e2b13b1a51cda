"""Collecting a build's inputs: journals, training records and Blox files into typed entries.

:func:`collect` reads every input (JSON in worker processes where the caller gives a pool and
there are enough of them, journals in the pool whenever there is one) and files it in a
:class:`Collector`: measurements per (device, model) with their standing keys, environment
records, training rows per section and model, distillation results per (teacher, epochs) and
block, and ``blox-info`` overrides of the static values. A training value seen twice must be
identical (:class:`DuplicateKeyError`). What the inputs were (for the manifest's provenance)
comes back beside it as :class:`Collected`. The rules themselves are in :mod:`._build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import numpy as np

from blox_lat.dataset._errors import DuplicateKeyError, InputError
from blox_lat.dataset._inputs import InputFile, sha256_file
from blox_lat.dataset._readers import (
    JournalPart,
    MeasRef,
    Ref,
    env_row,
    read_journal_part,
    read_json_files,
)
from blox_lat.dataset._readers import model_index as _model_index
from blox_lat.dataset._readers import need as _need
from blox_lat.dataset._readers import rounded as _r
from blox_lat.dataset._schema import ACC_DECIMALS, LOSS_DECIMALS, validate_section_name

__all__ = ["EXT_LISTS", "Collected", "Collector", "DistillKey", "DistillValue", "SectionRow", "collect"]

EXT_LISTS = ("train_top1", "train_loss", "train_top5", "val_loss", "val_top5")


# -- named entries --------------------------------------------------------------------------


class MeasEntry(NamedTuple):
    """One measurement of a model on a device: its standing key and the record (or where it lies)."""

    key: tuple
    record: dict | MeasRef


class EnvEntry(NamedTuple):
    """The environment record kept for a (device, env_id) and the input it came from."""

    label: str
    record: dict


class SectionRow(NamedTuple):
    """A model's row of a training section (a dict, or a :class:`Ref` into a block of rows) and its input."""

    row: dict | Ref
    label: str


class DistillKey(NamedTuple):
    teacher: str  # with ``+<init>`` for remapped candidates
    epochs: int


class BlockKey(NamedTuple):
    stage: int
    block: int


class DistillValue(NamedTuple):
    loss: float
    delta: float | None
    seed: Any


class DistillEntry(NamedTuple):
    value: DistillValue
    label: str


class StaticOverride(NamedTuple):
    """A ``blox-info`` row's values, replacing the ones computed from the space."""

    params: int
    flops: int
    arch_vec: list[int]


class RecordFile(NamedTuple):
    """A training record file that was used: its label and sha256 (provenance)."""

    label: str
    sha256: str


# -- training rows compared ----------------------------------------------------------------


def _rlist(values: Any, digits: int, label: str, name: str) -> np.ndarray | None:
    """Per-epoch values rounded like the Blox release (vectorised: 91,125 x 200 x 6 of them)."""
    if values is None:
        return None
    if not isinstance(values, (list, np.ndarray)) or len(values) == 0:
        raise InputError(f"{label}: metrics.{name} must be a non-empty list of per-epoch values")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{label}: metrics.{name} holds a non-number") from None
    if arr.ndim != 1:
        raise InputError(f"{label}: metrics.{name} must be a flat list")
    return np.round(arr, digits)


def _row_dict(section: str, row: dict | Ref) -> dict:
    return row.block.row(row.j, section.split("/", 1)[0]) if isinstance(row, Ref) else row


def _same_row(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k, va in a.items():
        vb = b[k]
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            if va is None or vb is None or not np.array_equal(np.asarray(va, dtype=np.float64),
                                                              np.asarray(vb, dtype=np.float64), equal_nan=True):
                return False
        elif va != vb:
            return False
    return True


def _training_rows(record: dict, epochs: int, label: str) -> tuple[dict, dict]:
    """The ``base`` and ``ext`` rows of a training record, rounded like the Blox release."""
    metrics = _need(record, "metrics", dict, label)
    test = record.get("test") or {}
    if not isinstance(test, dict):
        raise InputError(f"{label}: 'test' must be an object")
    lists = {}
    for name in ("val_top1", *EXT_LISTS):
        digits = LOSS_DECIMALS if "loss" in name else ACC_DECIMALS
        lists[name] = _rlist(metrics.get(name), digits, label, name)
        if lists[name] is not None and len(lists[name]) != epochs:
            raise InputError(f"{label}: metrics.{name} has {len(lists[name])} epochs but the record says {epochs}")
    t = record.get("train_time_s")
    base = {"val_top1": lists["val_top1"], "test_top1": _r(test.get("top1"), ACC_DECIMALS),
            "train_time_s": None if t is None else int(round(float(t)))}
    ext = {k: lists[k] for k in EXT_LISTS}
    ext["test_loss"] = _r(test.get("loss"), LOSS_DECIMALS)
    ext["test_top5"] = _r(test.get("top5"), ACC_DECIMALS)
    return base, ext


def _distill_entry(record: dict, label: str) -> tuple[DistillKey, BlockKey, DistillValue]:
    """A ``distill-block`` record checked: which section, which block, what result."""
    from blox_lat import space as sp

    teacher = _need(record, "teacher", str, label)
    if record.get("init", "random") not in (None, "random"):
        # remapped candidates are another method: their own section distill/<t>+<init>/<E>
        teacher = f"{teacher}+{record['init']}"
    epochs = _need(record, "epochs", int, label)
    stage = _need(record, "stage", int, label)
    block_id = _need(record, "block_id", int, label)
    if not 0 <= stage < 3 or not 0 <= block_id < 45:
        raise InputError(f"{label}: stage {stage} / block_id {block_id} out of range (0..2 / 0..44)")
    name = record.get("block_name")
    if name is not None and sp.list_blocks()[block_id].name != name:
        raise InputError(f"{label}: block_id {block_id} is {sp.list_blocks()[block_id].name!r}, not {name!r}")
    loss = _r(record.get("distill_loss"), LOSS_DECIMALS)
    if loss is None:
        raise InputError(f"{label}: distill_loss is missing")
    value = DistillValue(loss, _r(record.get("val_acc_delta"), ACC_DECIMALS), record.get("seed"))
    return DistillKey(teacher, epochs), BlockKey(stage, block_id), value


# -- the collector --------------------------------------------------------------------------


@dataclass
class Collector:
    allow_pickle: bool = False
    meas: dict[tuple[str, str], list[MeasEntry]] = field(default_factory=dict)  # (device, hash) -> measurements
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # device -> profile json -> label
    envs: dict[tuple[str, str], EnvEntry] = field(default_factory=dict)  # (device, env_id) -> earliest record
    rows: dict[str, dict[int, SectionRow]] = field(default_factory=dict)  # section -> index -> row
    distill: dict[DistillKey, dict[BlockKey, DistillEntry]] = field(default_factory=dict)
    static_override: dict[int, StaticOverride] = field(default_factory=dict)
    #: device -> its AnchorsRecords (every anchors line of its journals, in input order)
    anchors: dict[str, list[Any]] = field(default_factory=dict)
    order: int = 0

    # -- measurements -------------------------------------------------------------------
    def add_journal(self, f: InputFile, part: JournalPart) -> None:
        """Add a journal read by :func:`read_journal_part` (in a worker process for large builds)."""
        base = self.order
        self.order += part.count
        for device, env_id, record in part.envs:
            key = (device, env_id)
            old = self.envs.get(key)
            if old is None or str(record.get("recorded_at", "")) < str(old.record.get("recorded_at", "")):
                self.envs[key] = EnvEntry(f.label, record)
        for device, setting in part.settings:
            self.profiles.setdefault(device, {}).setdefault(setting, f.label)
        for device, anchors in part.anchors:
            self.anchors.setdefault(device, []).append(anchors)
        for i, (device, h, _index, key) in enumerate(part.meas):
            self._add_measurement(device, h, MeasEntry((*key[:4], base + key[4]), part.record(i)))

    def _add_measurement(self, device: str, h: str, entry: MeasEntry) -> None:
        recs = self.meas.get((device, h))
        if recs is None:
            self.meas[(device, h)] = [entry]
        else:
            recs.append(entry)

    # -- training -----------------------------------------------------------------------
    def _put(self, section: str, index: int, row: dict | Ref, label: str) -> None:
        table = self.rows.get(section)
        if table is None:
            validate_section_name(section)
            table = self.rows[section] = {}
        old = table.get(index)
        if old is None:
            table[index] = SectionRow(row, label)
            return
        new, was = _row_dict(section, row), _row_dict(section, old.row)
        if not _same_row(was, new):
            diff = sorted(k for k in new if not _same_row({k: new.get(k)}, {k: was.get(k)}))
            raise DuplicateKeyError(
                f"model #{index} appears twice in {section} with different {', '.join(diff)} "
                f"({old.label} and {label}); remove one of the two inputs"
            )

    def add_ref(self, ref: Ref, label: str) -> None:
        """A plain ``normal`` record read as columns: what ``add_record`` does with it."""
        seed, index = ref.block.seed[ref.j], ref.block.index[ref.j]
        self._put(f"base/{seed}", index, ref, label)
        self._put(f"ext/{seed}", index, ref, label)
        self._put(f"env/{seed}", index, ref, label)

    def add_record(self, record: dict, label: str) -> None:
        if record["kind"] == "distill-block":
            self._add_distill(record, label)
            return
        h, index = _model_index(record, label)
        setting = record.get("setting")
        seed = _need(record, "seed", int, label)
        epochs = _need(record, "epochs", int, label)
        base, ext = _training_rows(record, epochs, label)
        if setting == "normal":
            self._put(f"base/{seed}", index, base, label)
            self._put(f"ext/{seed}", index, ext, label)
            env = record.get("environment") or {}
            if not isinstance(env, dict):
                raise InputError(f"{label}: 'environment' must be an object")
            self._put(f"env/{seed}", index, env_row(env, seed), label)
        elif setting == "finetune":
            teacher = _need(record, "teacher", str, label)
            self._put(f"finetune/{teacher}/{epochs}", index, {"seed": seed, **base, **ext}, label)
        else:
            raise InputError(f"{label}: setting {setting!r} is not 'normal' or 'finetune'")

    def _add_distill(self, record: dict, label: str) -> None:
        key, block, value = _distill_entry(record, label)
        validate_section_name(f"distill/{key.teacher}/{key.epochs}")
        table = self.distill.setdefault(key, {})
        old = table.get(block)
        if old is not None and old.value != value:
            raise DuplicateKeyError(f"block {block.block} of stage {block.stage} is distilled twice from {key.teacher} "
                                    f"({key.epochs} epochs) with different results ({old.label} and {label}); keep one")
        table[block] = DistillEntry(value, label)

    # -- Blox files ---------------------------------------------------------------------
    def add_blox(self, f: InputFile) -> None:
        from blox_lat.dataset._bloxfmt import read_blox_file

        header, rows = read_blox_file(f.path, allow_pickle=self.allow_pickle)
        dtype = header["dataset_type"]
        seen: set[str] = set()
        for row in rows:
            h = row["model_hash"]
            if h in seen:
                raise DuplicateKeyError(f"{f.label}: model {h} appears twice; a Blox file has one row per model")
            seen.add(h)
            _, index = _model_index(row, f.label)
            row = {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) and k != "arch_vec" else v)
                   for k, v in row.items()}
            self._add_blox_row(dtype, header, h, index, row, f.label)

    def _add_blox_row(self, dtype: str, header: dict, h: str, index: int, row: dict, label: str) -> None:
        if dtype == "training":
            seed, part = header.get("seed"), header.get("part")
            if part == "base":
                self._put(f"base/{seed}", index, {"val_top1": row.get("val_top1"), "test_top1": row.get("test_top1"),
                                                  "train_time_s": row.get("train_time_s")}, label)
            elif part == "ext":
                self._put(f"ext/{seed}", index, {k: row.get(k) for k in (*EXT_LISTS, "test_loss", "test_top5")}, label)
            else:
                raise InputError(f"{label}: unknown training part {part!r}")
        elif dtype == "env":
            self._put(f"env/{header.get('seed')}", index, env_row(row, header.get("seed")), label)
        elif dtype == "static":
            self.static_override[index] = StaticOverride(row["params"], row["flops"], row["arch_vec"])
        elif dtype == "benchmarking":
            self._add_blox_latency(str(header.get("device")), h, index, row.get("latency"), label)
        else:
            raise InputError(f"{label}: unknown dataset_type {dtype!r}")

    def _add_blox_latency(self, device: str, h: str, index: int, latency: Any, label: str) -> None:
        """A ``blox-bench`` row: a latency-only record that any journal measurement of the model outranks."""
        from blox_lat.harness import MeasurementRecord, standing_key

        validate_section_name(f"bench/{device}")
        self.order += 1
        rec = {"status": "ok", "model_hash": h, "_index": index, "measurement": {"latency_ms": latency},
               "profile": None, "recorded_at": None, "_source": label}
        key = standing_key(MeasurementRecord.from_dict(rec), self.order)
        self.meas.setdefault((device, h), []).append(MeasEntry(key, rec))


# -- reading every input ------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` read: the collector and the inputs it used (for provenance)."""

    collector: Collector
    records: dict[str, list[RecordFile]]  # source -> training record files used
    blox: list[dict]  # provenance entries of the Blox files
    digests: list[str]  # the journals' measurement digests
    journals: int
    used: int  # inputs used (JSON that is not a record does not count)


def _iter_json(files: list[InputFile], pool: Any, chunk: int | None) -> Iterator[tuple]:
    """Read JSON inputs (:func:`read_json_files`) in input order, in ``pool`` by ``chunk`` files when given."""
    items = [(f.file, f.label) for f in files]
    if pool is None or chunk is None:
        return iter(read_json_files(items))
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    parts = pool.map(read_json_files, chunks)
    return (entry for part in parts for entry in part)


def json_chunk(files: int, jobs: int) -> int:
    """How many JSON files one worker task reads."""
    return max(500, files // (jobs * 8))


def collect(files: list[InputFile], *, allow_pickle: bool, pool: Any = None, chunk: int | None = None) -> Collected:
    """Every input of ``files`` into a :class:`Collector`: JSON first (in ``pool`` by ``chunk``
    files when both are given), then journals (read in ``pool`` when there is one) and Blox files
    in input order."""
    c = Collector(allow_pickle=allow_pickle)
    json_files = [f for f in files if f.kind == "json"]
    journals = [f for f in files if f.kind == "journal"]
    # journals first: they are the longest tasks, and the parent needs them last
    parts = {id(f): pool.submit(read_journal_part, f.file, f.label) for f in journals} if pool else {}
    records = _collect_json(c, json_files, pool, chunk)
    blox: list[dict] = []
    digests: list[str] = []
    for f in files:
        if f.kind == "json":
            continue
        elif f.kind == "journal":
            part = parts[id(f)].result() if id(f) in parts else read_journal_part(f.file, f.label)
            c.add_journal(f, part)
            digests.extend(part.digests)
        else:
            c.add_blox(f)
            blox.append({"path": f.label, "kind": "blox", "sha256": sha256_file(f.path)})
    used = sum(len(v) for v in records.values()) + len(files) - len(json_files)
    return Collected(c, records, blox, digests, len(journals), used)


def _collect_json(c: Collector, json_files: list[InputFile], pool: Any, chunk: int | None) -> dict[str, list[RecordFile]]:
    """Training records into ``c``; the files used, per source."""
    source_of = {f.label: f.source for f in json_files}
    records: dict[str, list[RecordFile]] = {}
    for label, sha, record, ref in _iter_json(json_files, pool, chunk):
        if ref is not None:
            c.add_ref(ref, label)
        elif record is not None:
            c.add_record(record, label)
        else:
            continue
        records.setdefault(source_of[label], []).append(RecordFile(label, sha))
    return records
