"""The Blox reference file layout (SamsungLabs/blox ``tools/make_datasets.py`` / ``blox/io.py``).

A file is ``---\\n``, a YAML header, ``---\\n``, then the payload. Header keys, in order:
``version``, ``search_space`` (``shape``, ``nodes``, ``stages``, ``ops``), ``dataset_type``
(``training`` / ``static`` / ``env`` / ``benchmarking``), ``columns``, then ``seed``, ``epochs``,
``dataset``, ``part`` (training), ``seed`` (env) or ``device`` (benchmarking), and last
``format`` (``csv`` or ``pickle``). The reference reader needs the whole header within the first
1024 bytes. CSV payloads are written by :mod:`csv` (``\\r\\n`` line ends); per-epoch values are a
Python list literal (``[1.0, 2.5]``), accuracies rounded to 3 decimals and losses to 6; an
architecture vector is its nested-list literal. Column layouts:

- ``blox-base-{seed}``: model_hash, val_top1 (per epoch), test_top1, train_time_s (int)
- ``blox-ext-{seed}``: model_hash, train_top1, train_loss, train_top5, val_loss, val_top5
  (per epoch), test_loss, test_top5
- ``blox-info``: model_hash, params (int), flops, arch_vec
- ``blox-env-{seed}``: model_hash, then the environment keys sorted by name
- ``blox-bench-{device}``: model_hash, latency

Our writer emits every header value as a JSON literal (a subset of YAML), so the header reads
back with PyYAML (what the reference uses) or, without PyYAML, with the small reader here.
Models without a value are left out of a reference file (the reference returns ``None`` for
an absent model). Only CSV payloads are read by default: a pickle payload is unpickled only with
``allow_pickle=True``, because unpickling runs arbitrary code; the reference's ``custom`` binary
payload is not supported (use the ``.csv`` files of the release).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from blox_lat.dataset._errors import InputError, PickleRefusedError, SearchSpaceMismatchError

__all__ = ["HEADER_LIMIT", "read_blox_file", "reference_header", "write_blox_file"]

HEADER_LIMIT = 1024
OPS = ["conv", "mbconv", "bconv"]


def reference_search_space() -> dict:
    return {"shape": [[[3], [3, 2, 2, 2]]] * 3, "nodes": 2, "stages": 3, "ops": list(OPS)}


def reference_header(dataset_type: str, columns: list[str], **extra: Any) -> dict:
    """A header laid out like the reference's ``make_header`` (``format`` is added on write)."""
    return {"version": 1, "search_space": reference_search_space(), "dataset_type": dataset_type,
            "columns": list(columns), **extra}


def _fmt(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column == "model_hash" or isinstance(value, str):
        return str(value)
    if column == "arch_vec":
        return str(value)
    if isinstance(value, (list, tuple)):
        digits = _decimals(column)
        return "[" + ", ".join(repr(round(float(v), digits)) for v in value) + "]"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        digits = _decimals(column)
        return repr(round(value, digits)) if digits is not None else repr(value)
    return str(value)


def _decimals(column: str) -> int | None:
    if "top" in column:
        return 3
    if "loss" in column:
        return 6
    return None


def write_blox_file(path: str | os.PathLike[str], header: dict, rows: list[list[Any]]) -> Path:
    """Write one reference-layout CSV file (header then rows); returns the path."""
    header = {**header, "format": "csv"}
    lines = ["---"] + [f"{key}: {json.dumps(value, separators=(', ', ': '))}" for key, value in header.items()]
    text = "\n".join(lines) + "\n---\n"
    if len(text.encode()) > HEADER_LIMIT:
        raise InputError(f"the Blox header of {path} is {len(text)} bytes; the reference reader needs <= {HEADER_LIMIT}")
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    columns = header["columns"]
    for row in rows:
        writer.writerow([_fmt(v, c) for v, c in zip(row, columns)])
    path = Path(path)
    path.write_bytes((text + buf.getvalue()).encode("utf-8"))
    return path


def _parse_header(raw: bytes, path: Path) -> dict:
    text = raw.decode("utf-8", errors="replace")
    try:
        import yaml  # the reference reads headers with PyYAML; use it when present
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            header = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: the Blox header is not valid YAML ({exc.__class__.__name__})") from None
    else:
        header = {}
        for line in text.splitlines():
            if not line.strip() or line.strip() == "---":
                continue
            key, sep, value = line.partition(":")
            try:
                header[key.strip()] = json.loads(value.strip())
            except json.JSONDecodeError:
                raise InputError(f"{path}: cannot read this Blox header without PyYAML; `pip install pyyaml`") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: the Blox header is not a mapping")
    return header


def read_blox_header(path: str | os.PathLike[str]) -> tuple[dict, bytes]:
    header, payload, _ = _read_blox(path)
    return header, payload


def _read_blox(path: str | os.PathLike[str]) -> tuple[dict, bytes, int]:
    """Header, payload and the 1-based file line on which the payload starts."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    head = data[:HEADER_LIMIT]
    if not head.startswith(b"---\n"):
        raise InputError(f"{path} is not a Blox dataset file (it must start with '---'); pass the .csv files of a Blox release")
    end = head.find(b"---\n", 3)
    if end == -1:
        raise InputError(f"{path}: no header end ('---') within the first {HEADER_LIMIT} bytes; the file is damaged")
    header = _parse_header(head[4:end], path)
    for key in ("version", "search_space", "dataset_type", "columns", "format"):
        if key not in header:
            raise InputError(f"{path}: the Blox header has no {key!r}; the file is damaged or not a Blox file")
    if not isinstance(header["columns"], list) or not all(isinstance(c, str) for c in header["columns"]):
        raise InputError(f"{path}: the Blox header's columns must be a list of names, got {header['columns']!r}")
    ss = header["search_space"]
    if not isinstance(ss, dict) or ss.get("ops") != OPS or ss.get("stages") != 3 or ss.get("nodes") != 2:
        raise SearchSpaceMismatchError(
            f"{path} describes another search space ({ss!r}); blox-lat reads the Blox space (ops {OPS}, 3 stages, 2 nodes)"
        )
    return header, data[end + 4 :], head[: end + 4].count(b"\n") + 1


def read_blox_file(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> tuple[dict, list[dict]]:
    """Read a reference-layout file: its header and one dict per row (column -> parsed value)."""
    path = Path(path)
    header, payload, first_line = _read_blox(path)
    fmt = header["format"]
    columns = list(header["columns"])
    if not columns or columns[0] != "model_hash":
        raise InputError(f"{path}: the first column must be model_hash, got {columns[:1]}")
    lines: list[int] = []
    if fmt == "csv":
        try:
            reader = csv.reader(io.StringIO(payload.decode("utf-8"), newline=""))
            rows = []
            for row in reader:
                rows.append(row)
                lines.append(first_line + reader.line_num - 1)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{path}: the CSV payload is damaged ({exc}); restore the file") from None
    elif fmt == "pickle":
        if not allow_pickle:
            raise PickleRefusedError(
                f"{path} holds a pickle payload; unpickling runs code, so use the release's .csv file "
                "or pass --allow-pickle (allow_pickle=True) if you trust this file"
            )
        from blox_lat._unpickle import NUMPY_SCALARS, restricted_loads

        try:  # rows of strings, numbers and lists; nothing that can run code
            rows = restricted_loads(payload, NUMPY_SCALARS)
        except Exception as exc:  # any failure of a damaged or hostile payload is the same user error
            raise InputError(f"{path}: the pickle payload is damaged or not rows of values "
                             f"({type(exc).__name__}: {exc}); use the release's .csv file") from None
        if not isinstance(rows, list):
            raise InputError(f"{path}: the pickle payload is not a list of rows")
    else:
        raise InputError(f"{path}: payload format {fmt!r} is not supported; use the release's .csv files")
    out = []
    for number, row in enumerate(rows, start=1):
        where = f"{path}:{lines[number - 1]}" if lines else f"{path}: row {number}"
        if not isinstance(row, (list, tuple)) or len(row) != len(columns):
            size = len(row) if isinstance(row, (list, tuple)) else "no list of"
            raise InputError(f"{where}: row {number} has {size} values for {len(columns)} columns")
        values = {c: _parse_value(c, v, path, number) for c, v in zip(columns, row)}
        latency = values.get("latency")
        if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))
                                    or not math.isfinite(latency) or latency <= 0):
            raise InputError(f"{where}: latency {latency!r} is not a positive finite number of ms; "
                             "fix the row or leave the value empty for a model without one")
        out.append(values)
    return header, out



def _parse_value(column: str, value: Any, path: Path, number: int) -> Any:
    if not isinstance(value, str):  # pickle payloads carry Python values already
        if column == "arch_vec" and value is not None:
            return _flatten_vec(value, path, number)
        return value
    if value == "":
        return None
    try:
        if column == "model_hash":
            return value
        if column == "arch_vec":
            return _flatten_vec(json.loads(value), path, number)
        if ("top" in column or "loss" in column) and "test" not in column:
            parsed = json.loads(value) if value.startswith("[") else [float(value)]
            return [float(v) for v in parsed]
        if column in ("train_time_s", "params", "seed"):
            return int(float(value))
        if column == "flops":
            return int(round(float(value)))
        if "top" in column or "loss" in column or column == "latency":
            return float(value)
        return value
    except (ValueError, TypeError, OverflowError, RecursionError):  # "inf" as an int; "[[[[..." too deep
        raise InputError(f"{path}: row {number}, column {column}: cannot parse {value[:40]!r}") from None


def _flatten_vec(vec: Any, path: Path, number: int) -> list[int]:
    flat: list[int] = []

    def walk(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            flat.append(int(v))

    walk(vec)
    if len(flat) != 15:
        raise InputError(f"{path}: row {number}: arch_vec has {len(flat)} numbers, expected 15")
    return flat
