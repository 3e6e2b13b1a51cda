"""Output files of ``blox-lat predict`` (predictors, plans, prediction tables, pieces).

:func:`check_out` refuses an output path before any work: one that exists (unless
``overwrite``), a folder, or one in a folder that cannot be written (only creating a file tells:
permission bits do not stop root, and ``/sys`` refuses even root). :func:`write_out` checks the
same and writes atomically (temp file + rename), turning an ``OSError`` into a
:class:`PredictError` that names the path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from blox_lat._fs import atomic_write, probe_writable
from blox_lat.predict._errors import PredictError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_out(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """``path`` as a Path if a file can be written there; :class:`PredictError` saying why not.

    Folders it had to create for the probe are removed again, so a refusal leaves no trace.
    """
    path = Path(path)
    if path.is_dir():
        raise PredictError(f"{path} is a directory; name the file to write (e.g. {path / 'out.json'})")
    if path.exists() and not overwrite:
        raise PredictError(f"{path} exists; pick another name or pass --force to replace it")
    folder = path.parent
    try:
        probe_writable(folder, prefix=f".{path.name}.probe-")
    except OSError as exc:
        raise PredictError(f"cannot write {path}: {_reason(exc)} in {folder}; pick a folder you can write to") from None
    return path


def write_out(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object], *,
              overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically after :func:`check_out`; an OS error names the path."""
    path = check_out(path, overwrite=overwrite)
    try:
        return atomic_write(path, data)
    except OSError as exc:
        raise PredictError(f"cannot write {path}: {_reason(exc)}; pick a folder you can write to") from None
