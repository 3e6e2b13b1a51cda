"""Arrow columns of release sections, from Python values or filled numpy matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from blox_lat.dataset._schema import LAYER_FIELDS

__all__ = ["arrow_column", "epoch_array", "epoch_matrix", "layerlist_type"]


def layerlist_type():
    """The Arrow type of a ``layerlist`` column: a list of one struct per layer (``LAYER_FIELDS``)."""
    import pyarrow as pa

    scalar = {"str": pa.string(), "i32": pa.int32(), "f64": pa.float64()}
    return pa.list_(pa.struct([pa.field(name, scalar[t]) for name, t in LAYER_FIELDS]))


def arrow_column(col, values: list[Any], epochs: int | None):
    import pyarrow as pa

    t = col.type
    if t in ("acc_epochs", "loss_epochs"):
        mat, mask = epoch_matrix(col, len(values), epochs)
        for i, v in enumerate(values):
            if v is not None:
                mat[i] = v
                mask[i] = False
        return epoch_array(mat, mask, epochs)
    if t == "i8x15":
        arr = np.asarray(values, dtype=np.int8).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(arr), 15)
    if t == "layerlist":
        return pa.array(values, type=layerlist_type())
    types = {"str": pa.string(), "json": pa.string(), "i32": pa.int32(), "i64": pa.int64(), "f64": pa.float64(),
             "bool": pa.bool_(), "strlist": pa.list_(pa.string()), "f64list": pa.list_(pa.float64())}
    return pa.array(values, type=types[t])


def epoch_matrix(col, n: int, epochs: int | None, filled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An all-null (rows, epochs) matrix of ``col``'s dtype and its null mask, to fill in.

    ``filled``: the caller writes every row, so the NaNs that null rows hold are not written.
    """
    dtype = np.float32 if col.type == "acc_epochs" else np.float64
    shape = (n, epochs or 0)
    return (np.empty(shape, dtype=dtype) if filled else np.full(shape, np.nan, dtype=dtype)), np.ones(n, dtype=bool)


def epoch_array(mat: np.ndarray, mask: np.ndarray, epochs: int | None):
    import pyarrow as pa

    # schema 2: one fixed-size binary cell per row holding the epochs' little-endian floats.
    # Parquet stores it without list levels, so a 200-epoch column decodes ~7x faster than
    # a FixedSizeList; readers turn it back into a FixedSizeList (zero copy).
    n = len(mat)
    width = (epochs or 0) * mat.dtype.itemsize
    buf = pa.py_buffer(np.ascontiguousarray(mat.astype(mat.dtype.newbyteorder("<"), copy=False)))  # no copy
    validity = pa.array(~mask).buffers()[1] if mask.any() else None
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [validity, buf], null_count=int(mask.sum()))
