"""The ``pred/<device>`` section: predicted latencies, never mixed with measured ``bench/<device>``.

One row per model of the space (91,125), keyed by ``model_hash`` with ``model_index``
alongside, in index order: the prediction, its interval and how it was made. The section
metadata is the predictor's description (device, setting, protocol, which latency it predicts,
method, family, training set summary, cross-validated figures, provenance; docs/predict.md).
A release can hold both ``bench/cpu`` (what was measured) and ``pred/cpu`` (what the predictor
says); a query names which one it reads (``Release.latency`` measures,
``Release.predicted_latency`` / ``Release.prediction`` predictions).

``predict`` sits above ``dataset``: the caller loads the predictor and hands ``dataset build``
the section as ``(name, table, metadata)`` (``blox_lat.predict.pred_section(FILE)``), which
:func:`check_pred_section` validates; the dataset never imports ``predict``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from blox_lat.dataset._errors import DeviceNotInReleaseError, InputError, UnknownSectionError
from blox_lat.dataset._schema import KINDS, RELEASE_SCHEMA, validate_section_name

__all__ = ["PRED_COLUMNS", "PRED_KIND_COLUMNS", "check_pred_section", "pred_table", "prediction_row"]

PRED_KIND_COLUMNS = KINDS["pred"]
PRED_COLUMNS = PRED_KIND_COLUMNS[2:]
_LATENCY = ("pred_ms", "lo_ms", "hi_ms")


def pred_table(predictor: Any, level: float = 0.9):
    """The section's Arrow table (schema metadata as ``dataset build`` writes it) and metadata."""
    import pyarrow as pa

    from blox_lat.space import space_table

    p = predictor.predict(level=level)
    n = len(p.indices)
    measured = np.zeros(n, dtype=bool)
    trained = np.asarray(predictor.training.get("indices") or [], dtype=np.int64)
    measured[trained] = True
    method = f"{predictor.method}/{predictor.family}"
    meta = section_metadata(predictor, level)
    arrays = [pa.array(space_table().hashes, pa.string()), pa.array(p.indices.astype(np.int32)),
              pa.array(p.latency_ms), pa.array(p.lo_ms), pa.array(p.hi_ms), pa.array(measured),
              pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int8), pa.array([method])).cast(pa.string())]
    name = f"pred/{predictor.device}"
    return _with_metadata(pa.Table.from_arrays(arrays, names=[c.name for c in PRED_KIND_COLUMNS]), name, meta), meta


def section_metadata(predictor: Any, level: float) -> dict:
    doc = predictor.to_dict()
    training = {k: v for k, v in doc["training"].items() if k != "indices"}
    return {"device": predictor.device, "kind": "prediction", "level": level, "latency_unit": "ms",
            "latency": predictor.latency, "method": predictor.method, "family": predictor.family,
            "profile": predictor.setting, "protocol": predictor.protocol, "training": training,
            "cv": doc["cv"], "provenance": doc["provenance"]}


def _with_metadata(table: Any, name: str, meta: dict):
    schema_meta = {"section": name, "schema_version": RELEASE_SCHEMA, "metadata": meta}
    return table.replace_schema_metadata({b"blox_lat": json.dumps(schema_meta, sort_keys=True).encode()})


def check_pred_section(name: Any, table: Any, meta: Any, hashes: list[str]) -> tuple[str, Any, dict]:
    """A ``(name, table, metadata)`` prediction section checked for ``dataset build``; raises
    :class:`InputError` naming the section and what is wrong."""
    try:
        kind = validate_section_name(name).split("/", 1)[0] if isinstance(name, str) else None
    except UnknownSectionError:
        kind = None
    if kind != "pred":
        raise InputError(f"{str(name)[:80]!r} is not a prediction section name; expected pred/<device>")
    device = name.split("/", 1)[1]
    if not isinstance(meta, dict) or meta.get("device") != device:
        found = meta.get("device") if isinstance(meta, dict) else None
        raise InputError(f"{name}: the predictions are for device {found!r}, not {device!r}; "
                         "the section name must be pred/<the predictor's device>")
    if meta.get("latency") not in ("raw", "corrected"):
        raise InputError(f"{name}: the metadata must say which latency is predicted (latency: raw or corrected)")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: the metadata is not plain JSON ({exc})") from None
    return name, _with_metadata(_checked_table(name, table, hashes), name, meta), meta


def _checked_table(name: str, table: Any, hashes: list[str]):
    """``table`` cast to the section's Arrow types, one valid row per model in index order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from blox_lat.dataset._columns import arrow_column

    expected = [c.name for c in PRED_KIND_COLUMNS]
    if not isinstance(table, pa.Table) or table.column_names != expected:
        got = table.column_names if isinstance(table, pa.Table) else type(table).__name__
        raise InputError(f"{name}: columns {got} are not the pred section's {expected}")
    schema = pa.schema([pa.field(c.name, arrow_column(c, [], None).type) for c in PRED_KIND_COLUMNS])
    try:
        table = table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"{name}: a column has the wrong type ({' '.join(str(exc).split())[:120]})") from None
    if table.num_rows != len(hashes):
        raise InputError(f"{name}: {table.num_rows} rows; a prediction section holds every model ({len(hashes)})")
    col = table.column
    if col("model_hash").to_pylist() != hashes or col("model_index").to_pylist() != list(range(len(hashes))):
        raise InputError(f"{name}: rows are not keyed model by model in index order (model_hash, model_index)")
    if any(col(c).null_count for c in expected):
        raise InputError(f"{name}: holds nulls; every model needs a prediction, an interval, measured and method")
    lo, pred, hi = (col(c) for c in ("lo_ms", "pred_ms", "hi_ms"))
    good = pc.and_(pc.and_(pc.is_finite(lo), pc.is_finite(hi)),
                   pc.and_(pc.greater(lo, 0), pc.and_(pc.less_equal(lo, pred), pc.less_equal(pred, hi))))
    if not pc.all(good).as_py():
        bad = pc.index(good, False).as_py()
        raise InputError(f"{name}: model #{bad} has no valid prediction (0 < lo_ms <= pred_ms <= hi_ms, finite)")
    return table.combine_chunks()


def prediction_row(section: Any, row: int) -> dict:
    """Row ``row`` of a ``pred/<device>`` section as the query API returns it."""
    entry = section.entry
    meta = entry.get("metadata", {})
    out = {c: section.column_list(c)[row] for c in ("pred_ms", "lo_ms", "hi_ms", "measured", "method")}
    for c in _LATENCY:
        v = out[c]
        out[c] = v if v is None or math.isfinite(v) else None
    return {"source": "predicted", "section": section.name, "device": section.name.split("/", 1)[1],
            "latency": meta.get("latency"), "level": meta.get("level"), **out}


def no_predictions(release: Any, device: str | None) -> DeviceNotInReleaseError:
    have = release.predicted_devices
    if device is None:
        return DeviceNotInReleaseError(f"release {release.version} has predictions for {len(have)} devices "
                                       f"({', '.join(have) or 'none'}); name one with device=...")
    return DeviceNotInReleaseError(f"release {release.version} has no predictions for device {device!r}; "
                                   f"it has: {', '.join(have) or 'none'} (add one: dataset build --pred FILE)")
