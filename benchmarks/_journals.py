"""Campaign journals given to a benchmark as a folder, a journal.jsonl or a compressed .jsonl.gz
(the committed data under ``benchmarks/data/``), opened as the folder ``read_journal`` expects."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path


def journal_folder(path: Path, tmp: Path) -> Path:
    """A folder under ``tmp`` holding ``path`` as journal.jsonl (decompressed when it ends in .gz);
    a campaign folder is returned as it is."""
    if path.is_dir():
        return path
    folder = tmp / path.name.replace(".", "_")
    folder.mkdir()
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fi, open(folder / "journal.jsonl", "wb") as fo:
            shutil.copyfileobj(fi, fo)
    else:
        shutil.copy(path, folder / "journal.jsonl")
    return folder
