"""Building a release: inputs -> Parquet sections + ``dataset.json``, deterministic and atomic.

Rules (also in the README):

- Measurements: every journal line is judged as :func:`blox_lat.harness.read_records` judges
  it (a NaN, zero, negative or text latency, counts that do not add up, a level without its
  anchors line: refused, naming ``file:line`` and the field). One ``bench/<device>`` row per
  (device, model): when a model was journaled more than once, the row comes from the record
  that stands by the harness's rule (:func:`blox_lat.harness.standing_key`, ``RULE``): ``ok``
  and not noisy, then ``ok`` but noisy, then ``failed``; among equals the latest
  ``recorded_at`` wins (ties: campaign id, env id, input order). Its ``level``,
  ``latency_corrected_ms`` and their standard errors are what :func:`blox_lat.harness.stand`
  gives for it, on the device's common level reference. ``records`` counts what was seen. A failed model keeps a row with its
  ``reason`` and null timings. All records of one device must share one device setting
  (runtime, format, precision, batch, input size, options), which becomes the section metadata;
  two settings under one device name are an input error (give them two profile names).
  Environment records go to ``measure-env/<device>`` keyed by ``env_id`` (earliest record kept).
- Training records, setting ``normal``, seed ``s``: ``base/<s>`` (val_top1 per epoch, test_top1,
  train_time_s rounded to whole seconds), ``ext/<s>`` (the other metrics) and ``env/<s>``
  (the record's environment). Setting ``finetune`` with teacher ``t`` and ``E`` epochs feeds
  ``finetune/<t>/<E>``. All rows of a section have the same number of epochs.
- ``distill-block`` records (teacher, epochs, stage, block) feed ``distill/<teacher>/<epochs>``
  (``distill/<teacher>+remap/<epochs>`` for candidates initialised by parameter remapping):
  one row per model whose three blocks are all distilled; ``loss_sum`` (DONNA) and
  ``delta_sum`` (LANA, null if a delta is missing) are the sums over the three stages.
- A training value seen twice (two records, or a record and a Blox file) must be identical,
  else :class:`DuplicateKeyError`. Blox files: ``blox-base/ext/env-{seed}`` feed the same
  sections as records, ``blox-bench-{device}`` a latency-only bench section (journal
  measurements win over it), ``blox-info`` replaces the computed static values of its models.
- ``static`` holds all 91,125 models (computed from the space).
- ``pred/<device>``: predictions made by the caller (``predictions=``), checked (every model in
  index order, ``lo_ms <= pred_ms <= hi_ms``, the device named in the metadata), one per device,
  fitted on the device setting of that device's ``bench/<device>``; kept apart from it.
- Output: Parquet (zstd) per section, rows sorted by model index, plus the manifest; the same
  inputs give byte-identical files (no timestamps; provenance = builder version, git commit,
  inputs with sha256; the journals' measurements as one digest over their records, so a release
  built from cluster shards' journals equals one built from a single machine's journal). The
  release is written to a temporary sibling directory and renamed into place; an existing
  output directory is never touched.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blox_lat.dataset._columns import arrow_column, epoch_array, epoch_matrix
from blox_lat.dataset._errors import DuplicateKeyError, InputError, OutputError, ReleaseExistsError
from blox_lat.dataset._inputs import InputFile, discover, sha256_file
from blox_lat.dataset._pred import check_pred_section
from blox_lat.dataset._readers import (
    METRICS,
    JournalPart,
    MeasRef,
    Ref,
    bench_row,
    env_row,
    leveled,
    raw_row,
    read_journal_part,
    read_json_files,
)
from blox_lat.dataset._readers import model_index as _model_index
from blox_lat.dataset._readers import need as _need
from blox_lat.dataset._readers import rounded as _r
from blox_lat.dataset._schema import (
    ACC_DECIMALS,
    FORMAT,
    LOSS_DECIMALS,
    MANIFEST,
    RELEASE_SCHEMA,
    columns_of,
    key_column,
    manifest_digest,
    search_space_record,
    section_file,
    validate_section_name,
)
from blox_lat.space import NUM_MODELS

__all__ = ["BuildResult", "build"]

_VERSION_RE = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
PARALLEL_MIN_FILES = 2000  # below this, parse JSON inputs in-process
PARALLEL_MIN_JOURNAL_BYTES = 16 << 20  # or when the journals are at least this big
_METRICS_BASE = ("val_top1",)
_EXT_LISTS = ("train_top1", "train_loss", "train_top5", "val_loss", "val_top5")


@dataclass(frozen=True)
class BuildResult:
    path: Path
    version: str
    sections: dict[str, int]  # name -> rows
    inputs: int
    blox_files: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"path": str(self.path), "version": self.version, "sections": dict(self.sections),
                "inputs": self.inputs, "blox_files": list(self.blox_files)}


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


@dataclass
class _Collector:
    allow_pickle: bool = False
    meas: dict[tuple[str, str], list[tuple[tuple, dict]]] = field(default_factory=dict)
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # device -> profile json -> label
    envs: dict[tuple[str, str], tuple[str, dict]] = field(default_factory=dict)
    rows: dict[str, dict[int, tuple[dict, str]]] = field(default_factory=dict)  # section -> index -> (row, label)
    distill: dict[tuple[str, int], dict[tuple[int, int], tuple[tuple, str]]] = field(default_factory=dict)
    static_override: dict[int, tuple[int, int, list[int]]] = field(default_factory=dict)
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
            if old is None or str(record.get("recorded_at", "")) < str(old[1].get("recorded_at", "")):
                self.envs[key] = (f.label, record)
        for device, setting in part.settings:
            self.profiles.setdefault(device, {}).setdefault(setting, f.label)
        for device, anchors in part.anchors:
            self.anchors.setdefault(device, []).append(anchors)
        meas = self.meas
        for i, (device, h, _index, key) in enumerate(part.meas):
            entry = ((*key[:4], base + key[4]), part.record(i))
            recs = meas.get((device, h))
            if recs is None:
                meas[(device, h)] = [entry]
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
            table[index] = (row, label)
            return
        new, was = _row_dict(section, row), _row_dict(section, old[0])
        if not _same_row(was, new):
            diff = sorted(k for k in new if not _same_row({k: new.get(k)}, {k: was.get(k)}))
            raise DuplicateKeyError(
                f"model #{index} appears twice in {section} with different {', '.join(diff)} "
                f"({old[1]} and {label}); remove one of the two inputs"
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
        metrics = _need(record, "metrics", dict, label)
        test = record.get("test") or {}
        if not isinstance(test, dict):
            raise InputError(f"{label}: 'test' must be an object")
        lists = {}
        for name in ("val_top1", *_EXT_LISTS):
            digits = LOSS_DECIMALS if "loss" in name else ACC_DECIMALS
            lists[name] = _rlist(metrics.get(name), digits, label, name)
            if lists[name] is not None and len(lists[name]) != epochs:
                raise InputError(f"{label}: metrics.{name} has {len(lists[name])} epochs but the record says {epochs}")
        t = record.get("train_time_s")
        base = {"val_top1": lists["val_top1"], "test_top1": _r(test.get("top1"), ACC_DECIMALS),
                "train_time_s": None if t is None else int(round(float(t)))}
        ext = {k: lists[k] for k in _EXT_LISTS}
        ext["test_loss"] = _r(test.get("loss"), LOSS_DECIMALS)
        ext["test_top5"] = _r(test.get("top5"), ACC_DECIMALS)
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
        value = (loss, _r(record.get("val_acc_delta"), ACC_DECIMALS), record.get("seed"))
        validate_section_name(f"distill/{teacher}/{epochs}")
        table = self.distill.setdefault((teacher, epochs), {})
        old = table.get((stage, block_id))
        if old is not None and old[0] != value:
            raise DuplicateKeyError(f"block {block_id} of stage {stage} is distilled twice from {teacher} "
                                    f"({epochs} epochs) with different results ({old[1]} and {label}); keep one")
        table[(stage, block_id)] = (value, label)

    # -- Blox files ---------------------------------------------------------------------
    def add_blox(self, f: InputFile) -> None:
        from blox_lat.dataset._bloxfmt import read_blox_file
        from blox_lat.harness import MeasurementRecord, standing_key

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
            if dtype == "training":
                seed, part = header.get("seed"), header.get("part")
                if part == "base":
                    self._put(f"base/{seed}", index, {"val_top1": row.get("val_top1"), "test_top1": row.get("test_top1"),
                                                      "train_time_s": row.get("train_time_s")}, f.label)
                elif part == "ext":
                    self._put(f"ext/{seed}", index, {k: row.get(k) for k in (*_EXT_LISTS, "test_loss", "test_top5")}, f.label)
                else:
                    raise InputError(f"{f.label}: unknown training part {part!r}")
            elif dtype == "env":
                self._put(f"env/{header.get('seed')}", index, env_row(row, header.get("seed")), f.label)
            elif dtype == "static":
                self.static_override[index] = (row["params"], row["flops"], row["arch_vec"])
            elif dtype == "benchmarking":
                device = str(header.get("device"))
                validate_section_name(f"bench/{device}")
                self.order += 1
                rec = {"status": "ok", "model_hash": h, "_index": index, "measurement": {"latency_ms": row.get("latency")},
                       "profile": None, "recorded_at": None, "_source": f.label}
                key = standing_key(MeasurementRecord.from_dict(rec), self.order)
                self.meas.setdefault((device, h), []).append((key, rec))
            else:
                raise InputError(f"{f.label}: unknown dataset_type {dtype!r}")


# -- tables -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def static_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arch_vec int8 (N, 15), params int64, flops int64) for every model, in index order.

    Vectorised: a model's parameters and FLOPs are a fixed part plus one term per stage that
    depends only on that stage's block, so ``f(b0, b1, b2) = f(b0, 0, 0) + f(0, b1, 0) +
    f(0, 0, b2) - 2 f(0, 0, 0)``; canonical vectors come from the first raw position of each
    model (base-72 stage codes). A test compares every model with ``space.params/flops``.
    """
    from blox_lat.space import (
        CONFIGS_PER_STAGE,
        NUM_BLOCKS,
        macs_of_blocks,
        params_of_blocks,
        space_table,
        stage_digits,
    )

    table = space_table()
    triple = np.asarray(table.triple_of_index, dtype=np.int64)
    blocks = np.stack([triple % NUM_BLOCKS, (triple // NUM_BLOCKS) % NUM_BLOCKS, triple // NUM_BLOCKS**2], axis=1)
    per_stage_p = np.zeros((3, NUM_BLOCKS), dtype=np.int64)
    per_stage_m = np.zeros((3, NUM_BLOCKS), dtype=np.int64)
    for s in range(3):
        for b in range(NUM_BLOCKS):
            t = [0, 0, 0]
            t[s] = b
            per_stage_p[s, b] = params_of_blocks(tuple(t), 100)
            per_stage_m[s, b] = macs_of_blocks(tuple(t))
    base_p, base_m = per_stage_p[0, 0], per_stage_m[0, 0]
    params = sum(per_stage_p[s][blocks[:, s]] for s in range(3)) - 2 * base_p
    flops = 2 * (sum(per_stage_m[s][blocks[:, s]] for s in range(3)) - 2 * base_m)
    digits = np.array([stage_digits(c) for c in range(CONFIGS_PER_STAGE)], dtype=np.int8)  # (72, 5)
    first = np.asarray(table.first_position, dtype=np.int64)
    codes = np.stack([first % CONFIGS_PER_STAGE, (first // CONFIGS_PER_STAGE) % CONFIGS_PER_STAGE,
                      first // CONFIGS_PER_STAGE**2], axis=1)
    vec = digits[codes].reshape(NUM_MODELS, 15)  # per stage: op0, op1, prev, input, skip
    return vec, params.astype(np.int64), flops.astype(np.int64)


def _hashes() -> list[str]:
    from blox_lat.space import space_table

    return space_table().hashes


def _make_table(name: str, rows: list[dict], metadata: dict, epochs: int | None = None):
    cols = columns_of(name)
    return _table(name, [arrow_column(c, [r.get(c.name) for r in rows], epochs) for c in cols], metadata)


def _table(name: str, arrays: list, metadata: dict):
    import pyarrow as pa

    meta = {"section": name, "schema_version": RELEASE_SCHEMA, "metadata": metadata}
    return pa.Table.from_arrays(arrays, names=[c.name for c in columns_of(name)]).replace_schema_metadata(
        {b"blox_lat": json.dumps(meta, sort_keys=True).encode()})


def _training_table(section: str, entries: dict[int, tuple[dict | Ref, str]], hashes: list[str], metadata: dict,
                    epochs: int | None):
    """``_make_table`` of a base/ext/env/finetune section whose rows are dicts or :class:`Ref`s.

    Rows read as columns are gathered block by block (whole matrix slices), the rest as dicts.
    """
    import pyarrow as pa

    order = sorted(entries)
    n = len(order)
    dict_rows: list[tuple[int, dict]] = []
    blocks: dict[int, tuple[Any, list[int], list[int]]] = {}  # id(block) -> (block, positions, rows)
    for pos, index in enumerate(order):
        row = entries[index][0]
        if isinstance(row, Ref):
            b = blocks.get(id(row.block))
            if b is None:
                b = blocks[id(row.block)] = (row.block, [], [])
            b[1].append(pos)
            b[2].append(row.j)
        else:
            dict_rows.append((pos, row))
    gathers = [(block, np.asarray(pos, dtype=np.intp), np.asarray(js, dtype=np.intp), js)
               for block, pos, js in blocks.values()]
    arrays = []
    for col in columns_of(section):
        if col.name == "model_hash":
            arrays.append(pa.array([hashes[i] for i in order], pa.string()))
        elif col.name == "model_index":
            arrays.append(pa.array(order, pa.int32()))
        elif col.type in ("acc_epochs", "loss_epochs"):
            mat, mask = epoch_matrix(col, n, epochs, filled=not dict_rows)
            for pos, row in dict_rows:
                v = row.get(col.name)
                if v is not None:
                    mat[pos] = v
                    mask[pos] = False
            m = METRICS.index(col.name)
            for block, pos, rows, _js in gathers:
                mat[pos] = block.metrics[rows, m]
                mask[pos] = False
            arrays.append(epoch_array(mat, mask, epochs))
        else:
            values: list[Any] = [None] * n
            for pos, row in dict_rows:
                values[pos] = row.get(col.name)
            for block, pos, _rows, js in gathers:
                src = block.scalars[col.name]
                for p, j in zip(pos.tolist(), js):
                    values[p] = src[j]
            arrays.append(arrow_column(col, values, epochs))
    return _table(section, arrays, metadata)


def _epochs_of(section: str, rows: dict[int, tuple[dict | Ref, str]]) -> int | None:
    lengths: dict[int, str] = {}
    first_list = {"base": "val_top1", "ext": METRICS[1]}.get(section.split("/", 1)[0])
    for row, label in rows.values():
        if isinstance(row, Ref):
            if first_list is not None and row.block.epochs not in lengths:
                lengths[row.block.epochs] = f"{label} ({first_list})"
            continue
        for k, v in row.items():
            if isinstance(v, (list, np.ndarray)):
                lengths.setdefault(len(v), f"{label} ({k})")
    if len(lengths) > 1:
        described = "; ".join(f"{n} epochs in {lab}" for n, lab in sorted(lengths.items()))
        raise InputError(f"{section} mixes epoch counts ({described}); build them as separate releases or fix the records")
    return next(iter(lengths), None)


def _bench_tables(c: _Collector) -> dict[str, tuple[Any, Any, dict]]:
    """device -> (bench table, bench-raw table or None, metadata), one row per model by the
    harness's selection rule (:func:`~blox_lat.harness.standing_key`)."""
    from blox_lat.harness import RULE, MeasurementRecord

    out: dict[str, tuple[Any, Any, dict]] = {}
    by_device: dict[str, list[tuple[str, list]]] = {}
    for (device, h), recs in c.meas.items():
        by_device.setdefault(device, []).append((h, recs))
    for device, items in sorted(by_device.items()):
        settings = c.profiles.get(device, {})
        if len(settings) > 1:
            (s1, l1), (s2, l2) = sorted(settings.items())[:2]
            raise InputError(f"device {device!r} was measured with two settings ({l1}: {s1}; {l2}: {s2}); "
                             "measure them under two device profile names")
        profile = json.loads(next(iter(settings))) if settings else None
        chosen: list[tuple] = []  # (index, hash, records seen, record, its row, its raw row, its leveled record)
        protocols: set[str] = set()
        last_protocol: Any = None
        for h, recs in items:
            key, rec = recs[0] if len(recs) == 1 else max(recs, key=lambda kr: kr[0])
            if isinstance(rec, MeasRef):
                protocol, index, row, raw = rec.part.protocols[rec.i], rec.part.meas[rec.i][2], None, None
                slim = rec.part.leveled.get(rec.i)
            else:
                protocol = rec.get("protocol")
            if protocol is not None and protocol != last_protocol:
                last_protocol = protocol  # one protocol per campaign: encode it once
                protocols.add(json.dumps(last_protocol, sort_keys=True))
            if not isinstance(rec, MeasRef):
                typed = MeasurementRecord.from_dict(rec)
                row, raw, index, slim = bench_row(typed), raw_row(typed), rec["_index"], leveled(typed)
            chosen.append((index, h, len(recs), rec, row, raw, slim))
        chosen.sort(key=lambda x: x[0])
        meta = {"device": device, "profile": profile, "latency_unit": "ms",
                "protocols": [json.loads(p) for p in sorted(protocols)],
                "duplicates_rule": RULE}
        if profile is None:
            meta["source"] = "blox-release"
        reference = _reference_meta(c.anchors.get(device, []))
        if reference is not None:
            meta["level_reference"] = reference
        bench = _on_reference(_gather(f"bench/{device}", chosen, meta, raw=False), device, chosen,
                              c.anchors.get(device, []))
        with_raw = [x for x in chosen if (x[3].part.raws[x[3].i] >= 0 if isinstance(x[3], MeasRef) else x[5] is not None)]
        out[device] = (bench, _gather(f"bench-raw/{device}", with_raw, {"device": device}, raw=True) if with_raw else None,
                       meta)
    return out


def _reference_meta(anchors: list[Any]) -> dict | None:
    """The section metadata naming the device's common level reference (the earliest anchored
    campaign's, :func:`~blox_lat.harness.common_reference`, each campaign's reference being its
    earliest anchors line), the campaigns on it and those timed with other anchors (null
    levels); None for a device without anchors."""
    from blox_lat.harness import CampaignReference, common_reference

    by_campaign: dict[str, list[Any]] = {}
    for a in anchors:
        by_campaign.setdefault(str(a.campaign_id), []).append(a)
    refs = []
    for campaign, lines in by_campaign.items():
        first = min(lines, key=lambda a: str(a.recorded_at or ""))
        refs.append(CampaignReference(campaign, tuple(first.hashes), tuple(float(x) for x in first.reference_ms),
                                      str(first.recorded_at or "")))
    first, factors = common_reference(refs)
    if first is None:
        return None
    return {"campaign_id": first.campaign_id, "anchors": list(first.anchors),
            "reference_ms": list(first.reference_ms), "campaigns": sorted(factors),
            "other_anchors": sorted(set(by_campaign) - set(factors))}


#: the columns :func:`_on_reference` takes from :func:`~blox_lat.harness.stand`
_STANDING_COLUMNS = (("level", "level"), ("latency_corrected_ms", "corrected_ms"),
                     ("latency_corrected_se_ms", "corrected_se_ms"))


def _on_reference(table: Any, device: str, chosen: list[tuple], anchors: list[Any]) -> Any:
    """``level``, ``latency_corrected_ms`` and ``latency_corrected_se_ms`` of every row as
    :func:`~blox_lat.harness.stand` gives them for its record: on the device's common reference
    (campaigns after the earliest rescaled onto it, their corrected SE adding the rescaling's),
    null for models timed without anchors or with other anchors than the reference's.

    ``stand`` sees every anchors line of the device and the chosen records that carry a level
    (one per model, so it stands), without their samples."""
    import pyarrow as pa

    from blox_lat.harness import stand

    n = len(chosen)
    at = {x[1]: pos for pos, x in enumerate(chosen) if x[6] is not None}
    values: dict[str, list] = {name: [None] * n for name, _attr in _STANDING_COLUMNS}
    if at and anchors:
        for h, standing in stand([*anchors, *(chosen[pos][6] for pos in at.values())]).of(device).items():
            pos = at[h]
            for name, attr in _STANDING_COLUMNS:
                values[name][pos] = getattr(standing, attr)
    names = table.column_names
    for name, _attr in _STANDING_COLUMNS:
        i = names.index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values[name], pa.float64()))
    return table


def _gather(section: str, chosen: list[tuple], metadata: dict, raw: bool):
    """The table of ``chosen`` rows: columns read by workers are taken from their Arrow arrays."""
    import pyarrow as pa

    sources: list[dict] = []  # Arrow columns of each journal part, then of the records kept as dicts
    offsets: dict[int, int] = {}
    total = 0
    take: list[int] = []
    dict_rows: list[dict] = []
    for _index, _h, _n, rec, row, raw_values, _slim in chosen:
        if isinstance(rec, MeasRef):
            part = rec.part
            off = offsets.get(id(part))
            if off is None:
                cols = part.raw_columns if raw else part.columns
                off = offsets[id(part)] = total
                sources.append(cols)
                total += len(next(iter(cols.values())))
            take.append(off + (part.raws[rec.i] if raw else part.rows[rec.i]))
        else:
            take.append(-1 - len(dict_rows))  # placed after the parts' rows below
            dict_rows.append(raw_values if raw else row)
    take = [t if t >= 0 else total - 1 - t for t in take]
    arrays = []
    for col in columns_of(section):
        if col.name == "model_hash":
            arrays.append(arrow_column(col, [x[1] for x in chosen], None))
        elif col.name == "model_index":
            arrays.append(arrow_column(col, [x[0] for x in chosen], None))
        elif col.name == "records":
            arrays.append(arrow_column(col, [x[2] for x in chosen], None))
        elif not sources:
            arrays.append(arrow_column(col, [r[col.name] for r in dict_rows], None))
        else:
            pieces = [src[col.name] for src in sources]
            if dict_rows:
                pieces.append(arrow_column(col, [r[col.name] for r in dict_rows], None))
            arrays.append((pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]).take(pa.array(take, pa.int64())))
    return _table(section, arrays, metadata)


def _distill_rows(c: _Collector) -> dict[str, list[dict]]:
    from blox_lat.space import space_table

    table = space_table()
    t = table.triple_of_index.astype(np.int64)
    blocks = np.stack([t % 45, (t // 45) % 45, t // 2025], axis=1)
    hashes = _hashes()
    out = {}
    for (teacher, epochs), entries in sorted(c.distill.items()):
        loss = np.full((3, 45), np.nan)
        delta = np.full((3, 45), np.nan)
        seeds = np.full((3, 45), None, dtype=object)
        for (stage, block), ((lo, de, seed), _label) in entries.items():
            loss[stage, block] = lo
            delta[stage, block] = np.nan if de is None else de
            seeds[stage, block] = seed
        per = np.stack([loss[s, blocks[:, s]] for s in range(3)], axis=1)
        dper = np.stack([delta[s, blocks[:, s]] for s in range(3)], axis=1)
        rows = []
        for i in np.flatnonzero(~np.isnan(per).any(axis=1)).tolist():
            d = dper[i]
            ss = {seeds[s, blocks[i, s]] for s in range(3)}
            row = {"model_hash": hashes[i], "model_index": i, "loss_sum": round(float(per[i].sum()), LOSS_DECIMALS),
                   "delta_sum": None if np.isnan(d).any() else round(float(d.sum()), ACC_DECIMALS),
                   "seed": ss.pop() if len(ss) == 1 else None}
            for s in range(3):
                row[f"loss_s{s}"] = float(per[i, s])
                row[f"delta_s{s}"] = None if np.isnan(d[s]) else float(d[s])
            rows.append(row)
        out[f"distill/{teacher}/{epochs}"] = rows
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    # lz4: as small as zstd on these dictionary-encoded columns (accuracies have 3 decimals,
    # latencies repeat little but are few) and ~3x faster to decode, which is the cold load
    # page checksums: every read verifies each page's CRC32, so a flipped bit is an error, not a
    # wrong value (schema 3)
    pq.write_table(table, path, compression="lz4", row_group_size=1 << 20, write_page_checksum=True)


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _iter_json(files: list[InputFile], jobs: int, pool: Any = None):
    """Read JSON inputs (:func:`read_json_files`) in input order, in parallel when a ``pool`` is given."""
    items = [(f.file, f.label) for f in files]
    if pool is None or jobs <= 1 or len(items) < PARALLEL_MIN_FILES:
        return iter(read_json_files(items))
    size = max(500, len(items) // (jobs * 8))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    parts = pool.map(read_json_files, chunks)
    return (entry for part in parts for entry in part)


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while inputs are read.

    A full-size build holds millions of parsed containers at once; every few thousand new
    ones the collector walks all of them, which made JSON parsing ~3x slower. Parsed records
    form no reference cycles, so nothing is left for the collector to find afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise InputError(f"dataset version {version!r} is not X.Y.Z (e.g. 1.0.0)")
    return version


def check_writable(out: Path) -> None:
    """Make ``out``'s parent folder and check that a file can be created in it, before any work."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent, prefix=f".{out.name}.probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise OutputError(f"--out {out}: cannot write in {out.parent} ({reason}); pick a writable folder") from None


def build(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    version: str,
    *,
    allow_pickle: bool = False,
    blox_format: bool = False,
    raw: bool = True,
    static: bool = True,
    jobs: int | None = None,
    predictions: Sequence[tuple[str, Any, dict]] = (),
) -> BuildResult:
    """Build release ``version`` at ``out`` from journals, training records and Blox files.

    ``predictions``: ``pred/<device>`` sections as ``(name, table, metadata)``, made by the
    caller (``blox_lat.predict.pred_section``); kept apart from the measured ``bench/<device>``.
    """

    check_version(version)
    preds = _check_predictions(predictions)
    out = Path(out)
    if out.exists():
        raise ReleaseExistsError(f"{out} already exists; releases are immutable, so build a new version into a new directory")
    check_writable(out)
    from blox_lat._leftovers import remove_stale

    remove_stale(p for p in out.parent.glob(".*.partial-*") if p.is_dir())  # killed builds' temporary folders
    with _gc_paused():
        return _build(sources, out, version, allow_pickle=allow_pickle, blox_format=blox_format, raw=raw,
                      static=static, jobs=jobs, predictions=preds)


def _check_predictions(predictions: Sequence[tuple[str, Any, dict]]) -> list[tuple[str, Any, dict]]:
    """Each prediction section checked (:func:`check_pred_section`); one per device."""
    if isinstance(predictions, (str, bytes)) or not isinstance(predictions, Sequence):
        raise InputError("predictions must be a list of (name, table, metadata) sections (blox_lat.predict.pred_section)")
    out: list[tuple[str, Any, dict]] = []
    for item in predictions:
        if not isinstance(item, tuple) or len(item) != 3:
            raise InputError("a prediction section is a (name, table, metadata) tuple (blox_lat.predict.pred_section)")
        name, table, meta = check_pred_section(*item, _hashes())
        if any(name == other for other, _t, _m in out):
            raise InputError(f"two predictors for {name}; a release holds one prediction section per device")
        out.append((name, table, meta))
    return out


def _add_predictions(tables: dict, metadata: dict, predictions: list[tuple[str, Any, dict]]) -> None:
    """Add the checked ``pred/<device>`` sections; a predictor of another device setting than the
    release's measurements of that device is refused."""
    for name, table, meta in predictions:
        if name in tables:
            raise InputError(f"{name} is already a section of this release; give one predictor per device")
        device = name.split("/", 1)[1]
        measured = (metadata.get(f"bench/{device}") or {}).get("profile")
        fitted = meta.get("profile")
        if measured is not None and fitted is not None and fitted != measured:
            raise InputError(f"{name}: the predictor was fitted on another setting of {device!r} ({json.dumps(fitted, sort_keys=True)}) "
                             f"than bench/{device} was measured with ({json.dumps(measured, sort_keys=True)}); "
                             "fit it on these measurements, or record the other setting under another device name")
        tables[name] = table
        metadata[name] = meta


def _build(sources: list[str | os.PathLike[str]], out: Path, version: str, *, allow_pickle: bool,
           blox_format: bool, raw: bool, static: bool, jobs: int | None,
           predictions: list[tuple[str, Any, dict]]) -> BuildResult:
    files = discover(sources)
    c = _Collector(allow_pickle=allow_pickle)
    per_source: dict[str, list[tuple[str, str]]] = {}
    listed: list[dict] = []
    measured: list[str] = []
    used = 0
    json_files = [f for f in files if f.kind == "json"]
    source_of = {f.label: f.source for f in json_files}
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    journals = [f for f in files if f.kind == "journal"]
    with contextlib.ExitStack() as stack:
        pool = None
        if jobs > 1 and (len(json_files) >= PARALLEL_MIN_FILES
                         or sum(f.path.stat().st_size for f in journals) >= PARALLEL_MIN_JOURNAL_BYTES):
            from concurrent.futures import ProcessPoolExecutor

            pool = stack.enter_context(ProcessPoolExecutor(max_workers=jobs, initializer=gc.disable))
        # journals first: they are the longest tasks, and the parent needs them last
        parts = {id(f): pool.submit(read_journal_part, f.file, f.label) for f in journals} if pool else {}
        for label, sha, record, ref in _iter_json(json_files, jobs, pool):
            if ref is not None:
                c.add_ref(ref, label)
            elif record is not None:
                c.add_record(record, label)
            else:
                continue
            per_source.setdefault(source_of[label], []).append((label, sha))
            used += 1
        for f in files:
            if f.kind == "json":
                continue
            elif f.kind == "journal":
                part = parts[id(f)].result() if id(f) in parts else read_journal_part(f.file, f.label)
                c.add_journal(f, part)
                measured.extend(part.digests)
            else:
                c.add_blox(f)
                listed.append({"path": f.label, "kind": "blox", "sha256": sha256_file(f.path)})
            used += 1
    if used == 0:
        raise InputError(f"no journals, training records or Blox files under {', '.join(map(str, sources))}")

    tables: dict[str, Any] = {}
    hashes = _hashes()
    metadata: dict[str, dict] = {"static": {"models": NUM_MODELS}}
    if static:
        tables["static"] = _static_table(c, hashes)
    _add_tables(c, tables, metadata, hashes, raw)
    _add_predictions(tables, metadata, predictions)
    if journals:
        listed.append(_journal_provenance(measured))
    return _write_release(out, version, tables, metadata, listed, per_source, used, blox_format)


def _journal_provenance(digests: list[str]) -> dict:
    """The journals' measurements as one content digest: independent of how the work was split
    into journals (one machine, or one journal per cluster shard) and of where they lay."""
    joined = "".join(f"{d}\n" for d in sorted(digests))
    return {"path": "journals", "kind": "measurements", "records": len(digests),
            "sha256": hashlib.sha256(joined.encode()).hexdigest()}


def _static_table(c: _Collector, hashes: list[str]):
    import pyarrow as pa

    vec, params, flops = static_arrays()
    vec, params, flops = vec.copy(), params.copy(), flops.copy()
    for index, (p, fl, v) in c.static_override.items():
        params[index], flops[index], vec[index] = p, fl, v
    return pa.Table.from_arrays(
        [pa.array(hashes, pa.string()), pa.array(np.arange(NUM_MODELS, dtype=np.int32)),
         pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), 15), pa.array(params), pa.array(flops)],
        names=[col.name for col in columns_of("static")],
    ).replace_schema_metadata({b"blox_lat": json.dumps({"section": "static", "schema_version": RELEASE_SCHEMA,
                                                         "metadata": {}}, sort_keys=True).encode()})


def _add_tables(c: _Collector, tables: dict, metadata: dict, hashes: list[str], raw: bool) -> None:
    for device, (bench, raws, meta) in _bench_tables(c).items():
        tables[f"bench/{device}"] = bench
        metadata[f"bench/{device}"] = meta
        if raw and raws is not None:
            tables[f"bench-raw/{device}"] = raws
            metadata[f"bench-raw/{device}"] = {"device": device}
    envs_by_device: dict[str, list[dict]] = {}
    for (device, env_id), (_label, rec) in sorted(c.envs.items()):
        envs_by_device.setdefault(device, []).append({
            "env_id": env_id, "campaign_id": rec.get("campaign_id"), "recorded_at": rec.get("recorded_at"),
            "host": rec.get("host"), "device": device, "os": rec.get("os"),
            **{k: json.dumps(rec.get(k), sort_keys=True) for k in ("cpu", "versions", "device_facts")},
            "record": json.dumps(rec, sort_keys=True),
        })
    for device, rows in envs_by_device.items():
        tables[f"measure-env/{device}"] = _make_table(f"measure-env/{device}", rows, {"device": device})
        metadata[f"measure-env/{device}"] = {"device": device}
    for section, entries in sorted(c.rows.items()):
        epochs = _epochs_of(section, entries)
        kind, *parts = section.split("/")
        meta: dict[str, Any] = {"epochs": epochs} if epochs is not None else {}
        if kind in ("base", "ext", "env"):
            meta["seed"] = parts[0]
        if kind == "finetune":
            meta.update({"teacher": parts[0], "setting": "finetune"})
        tables[section] = _training_table(section, entries, hashes, meta, epochs)
        metadata[section] = meta
    for section, rows in _distill_rows(c).items():
        _k, teacher, epochs = section.split("/")
        meta = {"teacher": teacher, "epochs": int(epochs),
                "score_rules": {"loss_sum": "DONNA: sum of block losses", "delta_sum": "LANA: sum of accuracy deltas"}}
        tables[section] = _make_table(section, rows, meta)
        metadata[section] = meta


def _write_release(out: Path, version: str, tables: dict, metadata: dict, listed: list[dict],
                   per_source: dict[str, list[tuple[str, str]]], used: int, blox_format: bool) -> BuildResult:
    from blox_lat import __version__
    from blox_lat.harness import RULE

    inputs = sorted(listed, key=lambda d: d["path"])
    for source, recs in sorted(per_source.items()):
        h = hashlib.sha256("".join(f"{lab}\0{sha}\n" for lab, sha in sorted(recs)).encode()).hexdigest()
        inputs.append({"path": f"{source}/", "kind": "records", "files": len(recs), "sha256": h})

    from blox_lat._leftovers import owner_tag

    tmp = out.parent / f".{out.name}.partial-{owner_tag()}"  # PID@HOST: see _leftovers for the cleanup
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        def write(name: str) -> tuple[str, int, str]:
            rel = section_file(name)
            _write_parquet(tables[name], tmp / rel)
            return rel, (tmp / rel).stat().st_size, _sha256(tmp / rel)

        # Arrow encodes and hashlib hashes without the GIL: sections are written side by side
        names = sorted(tables)
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as writers:
            written = list(writers.map(write, names))
        sections: dict[str, dict] = {}
        for name, (rel, size, sha) in zip(names, written):
            sections[name] = {
                "file": rel, "rows": tables[name].num_rows, "bytes": size, "sha256": sha, "key": key_column(name),
                "columns": [col.to_dict() for col in columns_of(name)], "metadata": metadata.get(name, {}),
            }
        blox_files: list[dict] = []
        if blox_format:
            from blox_lat.dataset._export import export_tables

            for rel in export_tables(tables, tmp / "blox"):
                p = tmp / "blox" / rel
                blox_files.append({"file": f"blox/{rel}", "bytes": p.stat().st_size, "sha256": _sha256(p)})
        manifest = {
            "format": FORMAT, "schema_version": RELEASE_SCHEMA, "dataset_version": version,
            "search_space": search_space_record(), "sections": sections, "blox_files": blox_files,
            "provenance": {"builder": f"blox-lat {__version__}", "git_commit": _git_commit(), "inputs": inputs,
                           "duplicates_rule": f"bench: {RULE}; training: identical or error"},
        }
        manifest["manifest_sha256"] = manifest_digest(manifest)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                p.chmod(0o444)
        try:
            os.rename(tmp, out)
        except OSError:
            raise ReleaseExistsError(f"{out} appeared while building; releases are immutable, build into a new directory") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(out, version, {k: v["rows"] for k, v in sections.items()}, used,
                       tuple(b["file"] for b in blox_files))
