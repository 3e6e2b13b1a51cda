"""Files on disk: atomic write, folder replacement, a writability probe, SHA-256 of a file, UTC
timestamps (one helper each, for every stage).

An atomic write puts the bytes in a temporary file next to the target, flushes and fsyncs it,
renames it over the target and fsyncs the folder, so a reader sees the old file or the whole new
one and a crash after the call returns cannot lose the new name. :func:`replace_dir` does the
same for a whole folder built under a temporary name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_dir", "replace_dir", "sha256_file", "utc_now"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object], *,
                 mode: int | None = None) -> Path:
    """Replace ``path`` with ``data`` (bytes, UTF-8 text, or a function that writes to a binary file).

    The file gets ``mode``, by default what ``open`` would give (0o666 less the umask). The
    temporary file is named ``.<name>.<random>.tmp`` in the same folder and removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open applies the umask as open() does (mkstemp would make 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move the folder ``new`` to ``target``, replacing the folder already there, if any.

    The old folder is renamed aside (``.<name>.old-PID@HOST-<ns>``), ``new`` renamed into place,
    then the old one removed; if ``new`` cannot move in, the old folder is put back. ``target``
    must not be a symbolic link: resolve it first (``os.path.realpath``) and build ``new``
    beside what it points to, since a rename cannot cross file systems and renaming the link
    aside would replace the link, not its folder, and leave the link behind."""
    from blox_lat._leftovers import owner_tag

    new, target = Path(new), Path(target)
    if target.is_symlink():
        raise ValueError(f"{target} is a symbolic link; replace_dir wants the folder it points to")
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{owner_tag()}-{time.time_ns()}")
        os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def probe_writable(folder: str | os.PathLike[str], prefix: str = ".blox-lat-probe-") -> None:
    """Create a file in ``folder`` (creating the folder first), then remove the file and every
    folder the probe created: ``OSError`` when nothing can be written there. Permission bits do
    not stop root; only writing tells."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=prefix):
            pass
    finally:
        for made in created:  # deepest first
            try:
                made.rmdir()
            except OSError:
                pass


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, streamed."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def utc_now(timespec: str = "seconds", *, zulu: bool = False) -> str:
    """The current UTC time in ISO 8601 (``+00:00``, or ``Z`` with ``zulu``) to ``timespec``."""
    stamp = datetime.now(timezone.utc).isoformat(timespec=timespec)
    return stamp.replace("+00:00", "Z") if zulu else stamp
