"""``predict all``: every model's prediction and interval as one Parquet file, or a release section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from blox_lat._fs import sha256_file
from blox_lat.predict._files import check_out, write_out
from blox_lat.predict._model import Predictor, load


def write_predictions(predictor: Predictor, path: str | os.PathLike[str], *, level: float = 0.9,
                      overwrite: bool = False) -> Path:
    """Write the ``pred/<device>`` table of all 91,125 models to ``path`` (temp file + rename)."""
    import pyarrow.parquet as pq

    from blox_lat.dataset import pred_table

    check_out(path, overwrite=overwrite)
    table, _meta = pred_table(predictor, level)
    return write_out(path, lambda fh: pq.write_table(table, fh, compression="lz4"), overwrite=overwrite)


def pred_section(path: str | os.PathLike[str], level: float = 0.9) -> tuple[str, Any, dict]:
    """``(section name, table, metadata)`` of a predictor file, for ``dataset build --pred FILE``;
    the metadata names the file's sha256, so a release says which predictor it holds."""
    from blox_lat.dataset import pred_table

    predictor = load(path)
    table, meta = pred_table(predictor, level)
    return f"pred/{predictor.device}", table, {**meta, "predictor_sha256": sha256_file(path)}
