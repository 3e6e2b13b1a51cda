"""Writing sections in the Blox reference layout (see :mod:`blox_lat.dataset._bloxfmt`).

``blox-info`` from ``static``; ``blox-base-{seed}``, ``blox-ext-{seed}``, ``blox-env-{seed}``
from ``base/<seed>``, ``ext/<seed>``, ``env/<seed>``; ``blox-bench-{device}`` from
``bench/<device>`` (latency in ms; failed models are left out). Files are ``.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from blox_lat.dataset._bloxfmt import reference_header, write_blox_file

__all__ = ["export_tables"]

_ENV_KEYS = ["codebase", "driver", "gpu", "python", "seed", "torch"]
_EXT = ["train_top1", "train_loss", "train_top5", "val_loss", "val_top5", "test_loss", "test_top5"]


def _nested(flat: list[int]) -> list:
    return [[[flat[5 * s]], [flat[5 * s + 1], flat[5 * s + 2], flat[5 * s + 3], flat[5 * s + 4]]] for s in range(3)]


def _pylist(table, column: str) -> list:
    import pyarrow as pa

    col = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) and pa.types.is_floating(col.type.value_type):
        mat = col.values.to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        valid = col.is_valid().to_numpy(zero_copy_only=False)
        digits = 6 if "loss" in column else 3
        return [[round(float(v), digits) for v in row] if ok else None for row, ok in zip(mat.tolist(), valid)]
    return col.to_pylist()


def _rows(table, columns: list[str]) -> list[list]:
    data = [_pylist(table, c) for c in columns]
    return [list(r) for r in zip(*data)]


def export_tables(tables: dict, out_dir: str | os.PathLike[str]) -> list[str]:
    """Write the reference files for ``tables`` (section name -> Arrow table); returns file names."""
    from blox_lat.dataset._release import with_epoch_lists
    from blox_lat.dataset._schema import columns_of

    tables = {n: with_epoch_lists(t, {c.name: c.type for c in columns_of(n)}) for n, t in tables.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def emit(name: str, header: dict, rows: list[list]) -> None:
        write_blox_file(out / name, header, rows)
        written.append(name)

    if "static" in tables:
        t = tables["static"]
        rows = [[h, p, f, _nested(v)] for h, p, f, v in _rows(t, ["model_hash", "params", "flops", "arch_vec"])]
        emit("blox-info.csv", reference_header("static", ["model_hash", "params", "flops", "arch_vec"]), rows)
    for name in sorted(tables):
        kind, _, rest = name.partition("/")
        t = tables[name]
        if kind == "base":
            cols = ["model_hash", "val_top1", "test_top1", "train_time_s"]
            epochs = t.schema.field("val_top1").type.list_size
            emit(f"blox-base-{rest}.csv", reference_header("training", cols, seed=_seed(rest), epochs=epochs,
                                                           dataset="cifar100", part="base"), _rows(t, cols))
        elif kind == "ext":
            cols = ["model_hash", *_EXT]
            epochs = t.schema.field("train_top1").type.list_size
            emit(f"blox-ext-{rest}.csv", reference_header("training", cols, seed=_seed(rest), epochs=epochs,
                                                          dataset="cifar100", part="ext"), _rows(t, cols))
        elif kind == "env":
            cols = ["model_hash", *_ENV_KEYS]
            emit(f"blox-env-{rest}.csv", reference_header("env", cols, seed=_seed(rest)), _rows(t, cols))
        elif kind == "bench":
            rows = [r for r in _rows(t, ["model_hash", "latency_ms"]) if r[1] is not None and not np.isnan(r[1])]
            emit(f"blox-bench-{rest}.csv", reference_header("benchmarking", ["model_hash", "latency"], device=rest,
                                                            latency_unit="ms"), rows)
    return written


def _seed(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text
