"""``export``: one model, one format -> a verified artifact in a store."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._format import ExportFormat, ExportJob, normalise_options, toolchain
from blox_lat.exporters._formats import get_format
from blox_lat.exporters._store import ArtifactStore
from blox_lat.exporters._types import Artifact, ArtifactKey
from blox_lat.space import Arch, resolve

DEFAULT_STORE = "artifacts"
MAX_BATCH = 4096
METHODS = ("fast", "naive")


def check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ExportError(f"batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    return batch


def check_toolchain(format: str) -> None:
    """Fail once, before any model, when the format's external toolchain is missing.

    Without it every model would fail the same way (one identical line per model).
    """
    fmt = get_format(format)
    check_packages(format)
    if fmt.toolchain_check is not None:
        fmt.toolchain_check()  # e.g. SnpeNotFoundError, naming the missing tool and the fix


def check_packages(format: str) -> None:
    """Import the Python packages the format's exporter needs, before any model: a missing one
    raises ModuleNotFoundError, which the CLI turns into one line naming the extra to install."""
    for package in get_format(format).packages:
        importlib.import_module(package.replace("-", "_"))


def make_key(arch: Arch, fmt: ExportFormat, batch: int, options: Mapping[str, str] | None) -> ArtifactKey:
    opts = normalise_options(fmt, options)
    return ArtifactKey(arch.hash, fmt.name, batch, opts, toolchain(fmt))


def export(
    arch,
    format: str,
    *,
    batch: int = 1,
    store: ArtifactStore | None = None,
    options: Mapping[str, str] | None = None,
    verify: bool = True,
    method: str = "fast",
) -> Artifact:
    """Export one model (any model name) to ``format``; a present artifact is returned as is.

    ``method="fast"`` builds models from pre-exported pieces (see ``_compose``), ``"naive"``
    builds and exports each model directly; both give the same weights and outputs. With
    ``verify`` (the default) the artifact is run and compared with the PyTorch model, and a
    mismatch raises :class:`VerificationError`. ``store`` defaults to ``./artifacts``.
    """
    arch = resolve(arch)
    fmt = get_format(format)
    batch = check_batch(batch)
    if method not in METHODS:
        raise ExportError(f"unknown export method {method!r}; choose one of: {', '.join(METHODS)}")
    key = make_key(arch, fmt, batch, options)
    if method == "naive" and dict(key.options).get("quantizer") == "pieces":
        raise ExportError("method 'naive' quantises each whole model; pass the option quantizer=whole")
    store = store if store is not None else ArtifactStore(DEFAULT_STORE)
    found = store.get(key, verify=True)  # a damaged file is evicted here and exported again
    if found is not None:
        return found
    with store.lock(key):
        found = store.get(key, verify=True)  # another process may have made it while we waited
        if found is not None:
            return found
        with store.tempdir() as tmp:
            out = Path(tmp) / f"model{fmt.suffix}"
            job = ExportJob(arch, batch, dict(key.options), out, verify, method, store.root / "pieces")
            produced = fmt.produce(job)
            verification, sha256 = produced if isinstance(produced, tuple) else (produced, None)
            return store.put(key, out, verification, suffix=fmt.suffix, sha256=sha256)
