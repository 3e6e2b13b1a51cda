"""``predict all``: every model's prediction and interval as one Parquet file."""

from __future__ import annotations

import os
from pathlib import Path

from blox_lat._fs import atomic_write
from blox_lat.predict._errors import PredictError
from blox_lat.predict._model import Predictor


def write_predictions(predictor: Predictor, path: str | os.PathLike[str], *, level: float = 0.9,
                      overwrite: bool = False) -> Path:
    """Write the ``pred/<device>`` table of all 91,125 models to ``path`` (temp file + rename)."""
    import pyarrow.parquet as pq

    from blox_lat.dataset._pred import pred_table

    path = Path(path)
    if path.exists() and not overwrite:
        raise PredictError(f"{path} exists; pick another name or pass --force to replace it")
    table, _meta = pred_table(predictor, level)
    return atomic_write(path, lambda fh: pq.write_table(table, fh, compression="lz4"))
