"""A content-addressed, size-bounded artifact store, safe with concurrent exporters.

Layout (schema 1)::

    ROOT/objects/ab/<digest><suffix>   the artifact (digest = ArtifactKey.digest())
    ROOT/objects/ab/<digest>.json      its record (key, sha256, bytes, verification)
    ROOT/manifest.jsonl                one line per event: {"schema": 1, "event": "put"|"evict", ...}
    ROOT/locks/<digest>.lock           per-key lock files (fcntl), so a key is exported once

Writes go to a temporary file in the destination folder and are renamed into place, the
artifact before its record, so a record never points at a partial file. ``put`` of a key that
is already present keeps the first artifact (re-export is a no-op). Eviction removes the least
recently used artifacts (``get`` refreshes the record's mtime) until the store fits
``max_bytes``.

History: schema 1 is the first and only layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._types import Artifact, ArtifactKey, sha256_file

SCHEMA = 1
MANIFEST = "manifest.jsonl"


class ArtifactStore:
    """Artifacts on disk, keyed by :class:`ArtifactKey` digest."""

    def __init__(self, root: Path | str, max_bytes: int | None = None):
        self.root = Path(root).expanduser()
        if max_bytes is not None and max_bytes <= 0:
            raise ExportError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        if self.root.exists() and not self.root.is_dir():
            raise ExportError(f"artifact store {str(self.root)!r} is a file; give a folder path")
        try:
            (self.root / "objects").mkdir(parents=True, exist_ok=True)
            (self.root / "locks").mkdir(exist_ok=True)
        except OSError as exc:
            raise ExportError(f"cannot create artifact store at {str(self.root)!r}: {exc.strerror}; pick a writable --out") from exc

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    # -- paths ---------------------------------------------------------------------------
    def _dir(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2]

    def path_for(self, key: ArtifactKey, suffix: str) -> Path:
        digest = key.digest()
        return self._dir(digest) / f"{digest}{suffix}"

    def _record_path(self, digest: str) -> Path:
        return self._dir(digest) / f"{digest}.json"

    # -- reading -------------------------------------------------------------------------
    def get(self, key: ArtifactKey, *, verify: bool = False) -> Artifact | None:
        """The stored artifact for ``key``, or None (also when its file is missing or truncated).

        With ``verify`` the file's sha256 is checked against its record (about 10 ms for a 10 MB
        ONNX file, nothing next to timing it); a file that differs is evicted and None returned,
        so the caller exports it again. Use it for every artifact that is timed or pushed."""
        record = self._record_path(key.digest())
        try:
            data = json.loads(record.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ExportError(f"corrupt store record {record}: {exc}; delete it to re-export") from exc
        artifact = _artifact_from(data, self.root)
        try:
            size = artifact.path.stat().st_size
        except FileNotFoundError:
            return None
        if size != artifact.bytes:
            return None
        if verify and sha256_file(artifact.path) != artifact.sha256:
            self.discard(artifact)
            return None
        with contextlib.suppress(OSError):  # LRU clock; a read-only store still serves
            os.utime(record)
        return artifact

    def __contains__(self, key: ArtifactKey) -> bool:
        return self.get(key) is not None

    def artifacts(self) -> Iterator[Artifact]:
        """Every artifact currently stored (from the records on disk)."""
        for record in sorted((self.root / "objects").glob("*/*.json")):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue  # a record being replaced concurrently; it is listed next time
            artifact = _artifact_from(data, self.root)
            if artifact.path.exists():
                yield artifact

    def manifest(self) -> list[dict]:
        """The live entries of the manifest (last event per digest, evicted ones dropped)."""
        path = self.root / MANIFEST
        if not path.exists():
            return []
        live: dict[str, dict] = {}
        with open(path) as fh:
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError as exc:
                    raise ExportError(f"{path}:{number} is not JSON ({exc}); fix or remove that line") from exc
                if entry.get("event") == "evict":
                    live.pop(entry["digest"], None)
                else:
                    live[entry["digest"]] = entry
        return list(live.values())

    def total_bytes(self) -> int:
        return sum(a.bytes for a in self.artifacts())

    def discard(self, artifact: Artifact) -> None:
        """Remove one artifact (a damaged one): its record first, then its file."""
        digest = artifact.key.digest()
        self._record_path(digest).unlink(missing_ok=True)
        artifact.path.unlink(missing_ok=True)
        self._append_manifest({"event": "evict", "digest": digest, "model_hash": artifact.model_hash,
                               "format": artifact.format, "bytes": artifact.bytes, "reason": "sha256 mismatch"})

    def verify(self, artifact: Artifact) -> bool:
        """Whether the stored file still has its recorded sha256."""
        return artifact.path.exists() and sha256_file(artifact.path) == artifact.sha256

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: ArtifactKey) -> Iterator[None]:
        """Hold the per-key lock (other processes exporting the same key wait here)."""
        with open(self.root / "locks" / f"{key.digest()}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def tempdir(self) -> tempfile.TemporaryDirectory:
        """A scratch folder on the store's file system (so the final rename is atomic)."""
        return tempfile.TemporaryDirectory(prefix=".tmp-", dir=self.root)

    def put(self, key: ArtifactKey, source: Path | str, verification: dict | None = None, suffix: str | None = None,
            sha256: str | None = None) -> Artifact:
        """Move the file ``source`` into the store under ``key``; a present key is kept as is.

        ``sha256`` is the file's digest when the caller hashed the bytes it wrote (else it is
        computed here)."""
        source = Path(source)
        existing = self.get(key)
        if existing is not None:
            return existing
        digest = key.digest()
        suffix = suffix if suffix is not None else source.suffix
        target = self.path_for(key, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        sha, size = sha256 or sha256_file(source), source.stat().st_size
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        if _same_fs(source, target.parent):
            os.replace(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        artifact = Artifact(key, target, sha, size, dict(verification or {}))
        record = artifact.to_dict()
        record["path"] = str(target.relative_to(self.root))
        _atomic_write_text(self._record_path(digest), json.dumps(record, sort_keys=True))
        self._append_manifest({"event": "put", **record})
        if self.max_bytes is not None:
            self.evict(keep={digest})
        return artifact

    def evict(self, max_bytes: int | None = None, *, keep: set[str] | None = None) -> list[Artifact]:
        """Remove least recently used artifacts until the store holds <= ``max_bytes``."""
        limit = max_bytes if max_bytes is not None else self.max_bytes
        if limit is None:
            return []
        keep = keep or set()
        with self._store_lock():
            entries = []
            for record in (self.root / "objects").glob("*/*.json"):
                try:
                    data = json.loads(record.read_text())
                    entries.append((record.stat().st_mtime, record, _artifact_from(data, self.root)))
                except (OSError, ValueError):
                    continue
            total = sum(a.bytes for _, _, a in entries)
            removed: list[Artifact] = []
            for _, record, artifact in sorted(entries, key=lambda e: e[0]):
                if total <= limit:
                    break
                digest = artifact.key.digest()
                if digest in keep:
                    continue
                record.unlink(missing_ok=True)  # record first: a reader never sees a dangling record
                artifact.path.unlink(missing_ok=True)
                total -= artifact.bytes
                removed.append(artifact)
                self._append_manifest({"event": "evict", "digest": digest, "model_hash": artifact.model_hash,
                                       "format": artifact.format, "bytes": artifact.bytes}, locked=True)
        return removed

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        with open(self.root / "locks" / "store.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _append_manifest(self, entry: dict, locked: bool = False) -> None:
        line = json.dumps({"schema": SCHEMA, "time": round(time.time(), 3), **entry}, sort_keys=True) + "\n"
        if locked:
            _append(self.root / MANIFEST, line)
        else:
            with self._store_lock():
                _append(self.root / MANIFEST, line)


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def _artifact_from(data: dict, root: Path) -> Artifact:
    key = ArtifactKey.from_dict(data)
    path = Path(data["path"])
    return Artifact(key, path if path.is_absolute() else root / path, data["sha256"], int(data["bytes"]), data.get("verification", {}))
