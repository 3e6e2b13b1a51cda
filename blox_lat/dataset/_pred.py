"""The ``pred/<device>`` section: predicted latencies, never mixed with measured ``bench/<device>``.

One row per model of the space (91,125), keyed by ``model_hash`` with ``model_index``
alongside, in index order: the prediction, its interval and how it was made. The section
metadata is the predictor's description (device, setting, protocol, method, family, training
set summary and cross-validated figures; see docs/predict.md). A release can hold both
``bench/cpu`` (what was measured) and ``pred/cpu`` (what the predictor says); a query names
which one it reads (:func:`predicted_latency` here, ``Release.latency`` for measurements).

Hook into ``dataset build`` (owned by :mod:`blox_lat.dataset._build`): register the kind in
``_schema.KINDS`` as ``"pred": PRED_KIND_COLUMNS`` (arity 1), then for each predictor given add
``tables[name], metadata[name]`` from :func:`pred_table`. The predictor arrives loaded
(``blox_lat.predict.pred_section(FILE)`` loads one): ``predict`` sits above ``dataset``, so the
dataset never imports it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from blox_lat.dataset._schema import _KEY, RELEASE_SCHEMA, Column

__all__ = ["PRED_COLUMNS", "PRED_KIND_COLUMNS", "pred_table", "predicted_latency"]

PRED_COLUMNS = [
    Column("pred_ms", "f64", "ms", "predicted latency (not a measurement)"),
    Column("lo_ms", "f64", "ms", "lower end of the calibrated interval (level in the metadata)"),
    Column("hi_ms", "f64", "ms", "upper end of the calibrated interval"),
    Column("measured", "bool", None, "the model was in the predictor's training set"),
    Column("method", "str", None, "fit | pieces | transfer, with the family: e.g. fit/additive"),
]
PRED_KIND_COLUMNS = _KEY + PRED_COLUMNS


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
    schema_meta = {"section": name, "schema_version": RELEASE_SCHEMA, "metadata": meta}
    table = pa.Table.from_arrays(arrays, names=[c.name for c in PRED_KIND_COLUMNS]).replace_schema_metadata(
        {b"blox_lat": json.dumps(schema_meta, sort_keys=True).encode()})
    return table, meta


def section_metadata(predictor: Any, level: float) -> dict:
    doc = predictor.to_dict()
    training = {k: v for k, v in doc["training"].items() if k != "indices"}
    return {"device": predictor.device, "kind": "prediction", "level": level, "latency_unit": "ms",
            "latency": predictor.latency, "method": predictor.method, "family": predictor.family,
            "profile": predictor.setting, "protocol": predictor.protocol, "training": training,
            "cv": doc["cv"], "provenance": doc["provenance"]}


def predicted_latency(release: Any, arch: Any, device: str) -> dict:
    """A model's prediction from a release's ``pred/<device>`` section (never its measurement)."""
    from blox_lat.dataset._errors import DeviceNotInReleaseError

    name = f"pred/{device}"
    if name not in release.manifest["sections"]:
        have = sorted(n.split("/", 1)[1] for n in release.manifest["sections"] if n.startswith("pred/"))
        raise DeviceNotInReleaseError(f"release {release.version} has no predictions for device {device!r}; "
                                 f"it has: {', '.join(have) or 'none'}")
    sec = release.section(name)
    row = release._index(arch)
    table = sec.table
    out = {c: table.column(c)[row].as_py() for c in ("model_hash", "model_index", "pred_ms", "lo_ms", "hi_ms",
                                                      "measured", "method")}
    return {**out, "source": name, "level": sec.entry.get("metadata", {}).get("level")}
