"""The section tables of a release, from what :mod:`._collect` gathered.

:class:`Sections` holds the Arrow tables and their metadata as they are added: ``static``
(computed from the space, ``blox-info`` overrides applied), ``measure-env/<device>``, the
training sections (``base``/``ext``/``env``/``finetune``), ``distill`` and the caller's checked
``pred/<device>`` sections; ``bench`` and ``bench-raw`` come from :mod:`._bench_tables`. Rows
are sorted by model index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Sequence

import numpy as np

from blox_lat.dataset._collect import Collector, SectionRow
from blox_lat.dataset._columns import arrow_column, epoch_array, epoch_matrix
from blox_lat.dataset._errors import InputError
from blox_lat.dataset._pred import check_pred_section
from blox_lat.dataset._readers import METRICS, Ref, TrainingBlock
from blox_lat.dataset._schema import ACC_DECIMALS, LOSS_DECIMALS, RELEASE_SCHEMA, columns_of
from blox_lat.space import NUM_MODELS

__all__ = ["PredSection", "Sections", "check_predictions", "hashes", "section_table", "static_arrays"]


@dataclass
class Sections:
    """A release's tables and their metadata, by section name, in the order they were added."""

    tables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, table: Any, metadata: dict) -> None:
        self.tables[name] = table
        self.metadata[name] = metadata


# -- shared -----------------------------------------------------------------------------------


def hashes() -> list[str]:
    from blox_lat.space import space_table

    return space_table().hashes


def section_table(name: str, arrays: list, metadata: dict):
    """A section's Arrow table from its column arrays, with the ``blox_lat`` schema metadata."""
    import pyarrow as pa

    meta = {"section": name, "schema_version": RELEASE_SCHEMA, "metadata": metadata}
    return pa.Table.from_arrays(arrays, names=[c.name for c in columns_of(name)]).replace_schema_metadata(
        {b"blox_lat": json.dumps(meta, sort_keys=True).encode()})


def _make_table(name: str, rows: list[dict], metadata: dict, epochs: int | None = None):
    cols = columns_of(name)
    return section_table(name, [arrow_column(c, [r.get(c.name) for r in rows], epochs) for c in cols], metadata)


# -- static -------------------------------------------------------------------------------------


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


def add_static(s: Sections, c: Collector) -> None:
    """``static``: every model's vector, parameters and FLOPs, ``blox-info`` rows replacing theirs."""
    import pyarrow as pa

    vec, params, flops = static_arrays()
    vec, params, flops = vec.copy(), params.copy(), flops.copy()
    for index, override in c.static_override.items():
        params[index], flops[index], vec[index] = override.params, override.flops, override.arch_vec
    table = pa.Table.from_arrays(
        [pa.array(hashes(), pa.string()), pa.array(np.arange(NUM_MODELS, dtype=np.int32)),
         pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), 15), pa.array(params), pa.array(flops)],
        names=[col.name for col in columns_of("static")],
    ).replace_schema_metadata({b"blox_lat": json.dumps({"section": "static", "schema_version": RELEASE_SCHEMA,
                                                         "metadata": {}}, sort_keys=True).encode()})
    s.add("static", table, {"models": NUM_MODELS})


# -- measurement environments -----------------------------------------------------------------


def add_envs(s: Sections, c: Collector) -> None:
    """``measure-env/<device>``: one row per environment record, by (device, env_id)."""
    envs_by_device: dict[str, list[dict]] = {}
    for (device, env_id), entry in sorted(c.envs.items()):
        rec = entry.record
        envs_by_device.setdefault(device, []).append({
            "env_id": env_id, "campaign_id": rec.get("campaign_id"), "recorded_at": rec.get("recorded_at"),
            "host": rec.get("host"), "device": device, "os": rec.get("os"),
            **{k: json.dumps(rec.get(k), sort_keys=True) for k in ("cpu", "versions", "device_facts")},
            "record": json.dumps(rec, sort_keys=True),
        })
    for device, rows in envs_by_device.items():
        name = f"measure-env/{device}"
        s.add(name, _make_table(name, rows, {"device": device}), {"device": device})


# -- training -----------------------------------------------------------------------------------


def add_training(s: Sections, c: Collector) -> None:
    """``base``/``ext``/``env``/``finetune`` sections, each with one epoch count."""
    models = hashes()
    for section, entries in sorted(c.rows.items()):
        epochs = _epochs_of(section, entries)
        kind, *parts = section.split("/")
        meta: dict[str, Any] = {"epochs": epochs} if epochs is not None else {}
        if kind in ("base", "ext", "env"):
            meta["seed"] = parts[0]
        if kind == "finetune":
            meta.update({"teacher": parts[0], "setting": "finetune"})
        s.add(section, _training_table(section, entries, models, meta, epochs), meta)


def _epochs_of(section: str, rows: dict[int, SectionRow]) -> int | None:
    lengths: dict[int, str] = {}
    first_list = {"base": "val_top1", "ext": METRICS[1]}.get(section.split("/", 1)[0])
    for entry in rows.values():
        row, label = entry.row, entry.label
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


class _FromBlock(NamedTuple):
    """Rows of a section read as columns from one :class:`TrainingBlock`: the table rows ``at``
    they go to and the block's rows they come from (also as a list, for scalar columns)."""

    block: TrainingBlock
    at: np.ndarray
    rows: np.ndarray
    row_list: list[int]


def _split_rows(order: list[int], entries: dict[int, SectionRow]) -> tuple[list[tuple[int, dict]], list[_FromBlock]]:
    """(table position, row) of the rows kept as dicts, and the rows read as columns, block by block."""
    dict_rows: list[tuple[int, dict]] = []
    blocks: dict[int, tuple[TrainingBlock, list[int], list[int]]] = {}  # id(block) -> (block, positions, rows)
    for pos, index in enumerate(order):
        row = entries[index].row
        if isinstance(row, Ref):
            b = blocks.get(id(row.block))
            if b is None:
                b = blocks[id(row.block)] = (row.block, [], [])
            b[1].append(pos)
            b[2].append(row.j)
        else:
            dict_rows.append((pos, row))
    gathers = [_FromBlock(block, np.asarray(pos, dtype=np.intp), np.asarray(js, dtype=np.intp), js)
               for block, pos, js in blocks.values()]
    return dict_rows, gathers


def _training_table(section: str, entries: dict[int, SectionRow], models: list[str], metadata: dict,
                    epochs: int | None):
    """The table of a base/ext/env/finetune section whose rows are dicts or :class:`Ref`s.

    Rows read as columns are gathered block by block (whole matrix slices), the rest as dicts.
    """
    import pyarrow as pa

    order = sorted(entries)
    dict_rows, gathers = _split_rows(order, entries)
    arrays = []
    for col in columns_of(section):
        if col.name == "model_hash":
            arrays.append(pa.array([models[i] for i in order], pa.string()))
        elif col.name == "model_index":
            arrays.append(pa.array(order, pa.int32()))
        elif col.type in ("acc_epochs", "loss_epochs"):
            arrays.append(_epoch_column(col, len(order), epochs, dict_rows, gathers))
        else:
            arrays.append(_scalar_column(col, len(order), epochs, dict_rows, gathers))
    return section_table(section, arrays, metadata)


def _epoch_column(col: Any, n: int, epochs: int | None, dict_rows: list[tuple[int, dict]], gathers: list[_FromBlock]):
    mat, mask = epoch_matrix(col, n, epochs, filled=not dict_rows)
    for pos, row in dict_rows:
        v = row.get(col.name)
        if v is not None:
            mat[pos] = v
            mask[pos] = False
    m = METRICS.index(col.name)
    for g in gathers:
        mat[g.at] = g.block.metrics[g.rows, m]
        mask[g.at] = False
    return epoch_array(mat, mask, epochs)


def _scalar_column(col: Any, n: int, epochs: int | None, dict_rows: list[tuple[int, dict]], gathers: list[_FromBlock]):
    values: list[Any] = [None] * n
    for pos, row in dict_rows:
        values[pos] = row.get(col.name)
    for g in gathers:
        src = g.block.scalars[col.name]
        for p, j in zip(g.at.tolist(), g.row_list):
            values[p] = src[j]
    return arrow_column(col, values, epochs)


# -- distillation -------------------------------------------------------------------------------


def add_distill(s: Sections, c: Collector) -> None:
    """``distill/<teacher>/<epochs>``: models whose three blocks are all distilled, with the sums."""
    for section, rows in _distill_rows(c).items():
        _k, teacher, epochs = section.split("/")
        meta = {"teacher": teacher, "epochs": int(epochs),
                "score_rules": {"loss_sum": "DONNA: sum of block losses", "delta_sum": "LANA: sum of accuracy deltas"}}
        s.add(section, _make_table(section, rows, meta), meta)


def _distill_rows(c: Collector) -> dict[str, list[dict]]:
    from blox_lat.space import space_table

    table = space_table()
    t = table.triple_of_index.astype(np.int64)
    blocks = np.stack([t % 45, (t // 45) % 45, t // 2025], axis=1)
    models = hashes()
    out = {}
    for key, entries in sorted(c.distill.items()):
        loss = np.full((3, 45), np.nan)
        delta = np.full((3, 45), np.nan)
        seeds = np.full((3, 45), None, dtype=object)
        for (stage, block), entry in entries.items():
            loss[stage, block] = entry.value.loss
            delta[stage, block] = np.nan if entry.value.delta is None else entry.value.delta
            seeds[stage, block] = entry.value.seed
        per = np.stack([loss[s, blocks[:, s]] for s in range(3)], axis=1)
        dper = np.stack([delta[s, blocks[:, s]] for s in range(3)], axis=1)
        rows = []
        for i in np.flatnonzero(~np.isnan(per).any(axis=1)).tolist():
            d = dper[i]
            ss = {seeds[s, blocks[i, s]] for s in range(3)}
            row = {"model_hash": models[i], "model_index": i, "loss_sum": round(float(per[i].sum()), LOSS_DECIMALS),
                   "delta_sum": None if np.isnan(d).any() else round(float(d.sum()), ACC_DECIMALS),
                   "seed": ss.pop() if len(ss) == 1 else None}
            for s in range(3):
                row[f"loss_s{s}"] = float(per[i, s])
                row[f"delta_s{s}"] = None if np.isnan(d[s]) else float(d[s])
            rows.append(row)
        out[f"distill/{key.teacher}/{key.epochs}"] = rows
    return out


# -- predictions --------------------------------------------------------------------------------


class PredSection(NamedTuple):
    """A checked ``pred/<device>`` section made by the caller."""

    name: str
    table: Any
    metadata: dict


def check_predictions(predictions: Sequence[tuple[str, Any, dict]]) -> list[PredSection]:
    """Each prediction section checked (:func:`check_pred_section`); one per device."""
    if isinstance(predictions, (str, bytes)) or not isinstance(predictions, Sequence):
        raise InputError("predictions must be a list of (name, table, metadata) sections (blox_lat.predict.pred_section)")
    out: list[PredSection] = []
    for item in predictions:
        if not isinstance(item, tuple) or len(item) != 3:
            raise InputError("a prediction section is a (name, table, metadata) tuple (blox_lat.predict.pred_section)")
        checked = PredSection(*check_pred_section(*item, hashes()))
        if any(checked.name == other.name for other in out):
            raise InputError(f"two predictors for {checked.name}; a release holds one prediction section per device")
        out.append(checked)
    return out


def add_predictions(s: Sections, predictions: list[PredSection]) -> None:
    """Add the checked ``pred/<device>`` sections; a predictor of another device setting than the
    release's measurements of that device is refused."""
    for pred in predictions:
        name, meta = pred.name, pred.metadata
        if name in s.tables:
            raise InputError(f"{name} is already a section of this release; give one predictor per device")
        device = name.split("/", 1)[1]
        measured = (s.metadata.get(f"bench/{device}") or {}).get("profile")
        fitted = meta.get("profile")
        if measured is not None and fitted is not None and fitted != measured:
            raise InputError(f"{name}: the predictor was fitted on another setting of {device!r} ({json.dumps(fitted, sort_keys=True)}) "
                             f"than bench/{device} was measured with ({json.dumps(measured, sort_keys=True)}); "
                             "fit it on these measurements, or record the other setting under another device name")
        s.add(name, pred.table, meta)
