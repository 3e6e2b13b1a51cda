"""The self-contained device runner: the worker and the timing loop as one ``.pyz`` file.

A remote host (an SSH GPU box, an ADB board with Python) must not need blox-lat installed: it
needs a Python interpreter and the runtime (torch or onnxruntime + numpy) only. We ship the
*same* worker and timing code that the local path runs, as a zip application built from the
installed package: ``python runner.pyz`` reads one JSON request on stdin and answers one JSON
line (see :mod:`blox_lat.harness._worker`). Nothing is duplicated, so local and remote
measurements share one timing loop.

The archive is deterministic (sorted entries, fixed timestamps), so its sha256 names it on the
device and a campaign pushes it only when that exact runner is not there yet.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from blox_lat._fs import atomic_write, sha256_file

__all__ = ["RunnerBundle", "runner_bundle"]

_PACKAGE = Path(__file__).resolve().parents[1]  # .../blox_lat
#: modules copied verbatim; the worker imports only these. Every ``harness/_runtime*.py`` (the
#: runtime registry and each runtime's module) goes too, so a new runtime needs no entry here.
_MODULES = ("errors.py", "_fs.py", "_registry.py", "harness/_timing.py", "harness/_worker.py",
            "harness/_layerprof.py",
            *sorted(p.relative_to(_PACKAGE).as_posix() for p in (_PACKAGE / "harness").glob("_runtime*.py")))
#: light package stubs replace the real __init__ files (which import the whole harness)
_STUBS = {
    "blox_lat/__init__.py": '"""blox-lat device runner bundle (see blox_lat.harness._bundle)."""\n',
    "blox_lat/harness/__init__.py": "",
}
_MAIN = (
    "import sys\n"
    "from blox_lat.harness._worker import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


class RunnerBundle:
    """A built bundle: local ``path``, content ``sha256`` and the file name to use remotely."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path = path
        self.sha256 = sha256

    @property
    def remote_name(self) -> str:
        return f"blox-lat-runner-{self.sha256[:16]}.pyz"

    def __repr__(self) -> str:
        return f"RunnerBundle({str(self.path)!r}, sha256={self.sha256[:12]}...)"


def _archive_bytes() -> bytes:
    entries: dict[str, bytes] = {name: text.encode() for name, text in _STUBS.items()}
    for rel in _MODULES:
        entries[f"blox_lat/{rel}"] = (_PACKAGE / rel).read_bytes()
    entries["__main__.py"] = _MAIN.encode()
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
    return buf.getvalue()


@lru_cache(maxsize=1)
def runner_bundle(cache_dir: str | None = None) -> RunnerBundle:
    """Build (once per process) the runner ``.pyz`` in ``cache_dir`` (default: a temp dir)."""
    data = _archive_bytes()
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / f"blox-lat-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"blox-lat-runner-{digest[:16]}.pyz"
    if not path.exists() or sha256_file(path) != digest:
        atomic_write(path, data)
    return RunnerBundle(path, digest)
