"""A content-addressed, size-bounded artifact store, safe with concurrent exporters, also from
several nodes sharing it over a cluster file system (NFS).

Layout (schema 1)::

    ROOT/objects/ab/<digest>.<sha16><suffix>  the artifact (digest = ArtifactKey.digest(), sha16 =
                                              the first 16 hex digits of the file's sha256)
    ROOT/objects/ab/<digest>.json             its record (key, path, sha256, bytes, verification)
    ROOT/manifest.jsonl                       a log, one line per event: {"schema": 1, "event": ...}
    ROOT/locks/<digest>.lock                  per-key lock files (fcntl), so a key is exported once

Correctness relies on no lock: ``fcntl`` locks may exclude nothing across NFS clients, so
they only save duplicate work. A file is written in full under a temporary name, then
published with ``os.link`` (atomic, and it fails if the name exists, also on NFS): the artifact
under a name that includes its content digest, so two exporters of one key never overwrite each
other's bytes, then the record, first writer wins. A process whose record lost returns the
winner's artifact (and removes its own file if it differs), so an artifact once served is
never changed under its user. The records are the truth (``manifest()`` reads them); appends
to ``manifest.jsonl`` from several nodes may interleave, so it is a log for people only.
``get`` refreshes a record's mtime (the LRU clock); eviction removes the least recently used
artifacts until the store fits ``max_bytes``. Temporary names carry ``PID@HOST``; those of
killed processes are removed by the next store opened on them (see ``blox_lat._leftovers``).

History: schema 1 is the only record format. Artifacts written before content digests were
put in file names are named ``<digest><suffix>``; records hold the path, so both are read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from blox_lat._fs import sha256_file
from blox_lat._leftovers import owner_tag, remove_stale
from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._types import Artifact, ArtifactKey

SCHEMA = 1
MANIFEST = "manifest.jsonl"

_CLEANED: set[str] = set()  # roots whose leftovers this process removed already


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
        if str(self.root) not in _CLEANED:
            _CLEANED.add(str(self.root))
            self.clean_stale()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    # -- paths ---------------------------------------------------------------------------
    def _dir(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2]

    def path_for(self, key: ArtifactKey, suffix: str, sha256: str) -> Path:
        """Where the artifact of ``key`` whose content has ``sha256`` is stored."""
        digest = key.digest()
        return self._dir(digest) / f"{digest}.{sha256[:16]}{suffix}"

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
        try:
            artifact = _artifact_from(data, self.root)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"corrupt store record {record}: {exc}; delete it to re-export") from exc
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
            try:
                artifact = _artifact_from(data, self.root)
            except (KeyError, TypeError, ValueError):
                continue  # damaged or hostile record: get() reports it
            if artifact.path.exists():
                yield artifact

    def manifest(self) -> list[dict]:
        """One entry per stored artifact, from the records (the truth; ``manifest.jsonl`` is a
        log that concurrent nodes may interleave)."""
        entries = []
        for record in sorted((self.root / "objects").glob("*/*.json")):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "digest" in data:
                entries.append({"schema": SCHEMA, "event": "put", **data})
        return entries

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
        with _flocked(self.root / "locks" / f"{key.digest()}.lock"):
            yield

    def tempdir(self) -> tempfile.TemporaryDirectory:
        """A scratch folder on the store's file system (so the final rename is atomic)."""
        return tempfile.TemporaryDirectory(prefix=f".tmp-{owner_tag()}-", dir=self.root)

    def clean_stale(self) -> list[Path]:
        """Remove the temporary folders and files of killed exporters (see ``_leftovers``)."""
        removed = remove_stale(self.root.glob(".tmp-*"))
        return removed + remove_stale((self.root / "objects").glob("*/.*.tmp"))

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
        sha, size = sha256 or sha256_file(source), source.stat().st_size
        target = self.path_for(key, suffix, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        _publish_file(source, target, sha)
        artifact = Artifact(key, target, sha, size, dict(verification or {}))
        record = artifact.to_dict()
        record["path"] = str(target.relative_to(self.root))
        for _ in range(3):
            if _publish(self._record_path(digest), json.dumps(record, sort_keys=True).encode()):
                break
            winner = self.get(key)  # another process published this key first: serve its artifact
            if winner is not None:
                if winner.path != target:
                    target.unlink(missing_ok=True)  # ours differs (a non-deterministic export); unused
                return winner
            # its record names a file that is gone (evicted meanwhile): replace it with ours
            self._record_path(digest).unlink(missing_ok=True)
        else:
            raise ExportError(f"could not publish the store record of {key.model_hash} ({digest[:12]}); retry")
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
                except (OSError, ValueError, KeyError, TypeError):
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
        with _flocked(self.root / "locks" / "store.lock"):
            yield

    def _append_manifest(self, entry: dict, locked: bool = False) -> None:
        """One line of the log (one write(2) call; the records, not this log, are the truth)."""
        line = json.dumps({"schema": SCHEMA, "time": round(time.time(), 3), **entry}, sort_keys=True) + "\n"
        with contextlib.suppress(OSError):
            _append(self.root / MANIFEST, line)


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    """Hold an fcntl lock on ``path`` where the file system gives one; go on without where it
    does not (ENOLCK on some NFS mounts): locks here only save duplicate work."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{owner_tag()}.{time.monotonic_ns()}.tmp")


def _publish(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` atomically unless it exists; whether this call made it.

    The bytes go to a temporary file that is then hard-linked to ``path``: ``link`` fails if
    the name exists (also on NFS), so of several writers exactly one wins and nobody ever sees
    a partial file. Where hard links are not supported the rename fallback lets the last win."""
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return _link_or_rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_or_rename(tmp: Path, path: Path) -> bool:
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        os.replace(tmp, path)
        return True


def _publish_file(source: Path, target: Path, sha: str) -> None:
    """Put the finished file ``source`` at ``target`` (a name carrying its content digest).

    A ``target`` that exists already holds the same bytes (another process published the same
    content), unless it was damaged on disk: then ours replaces it."""
    tmp = _temp_name(target)
    try:
        if _same_fs(source, target.parent):
            os.replace(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        if not _link_or_rename(tmp, target) and sha256_file(target) != sha:
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def _artifact_from(data: dict, root: Path) -> Artifact:
    key = ArtifactKey.from_dict(data)
    rel = data["path"]
    if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts or not rel.startswith("objects/"):
        raise ValueError(f"path {str(rel)[:80]!r} is outside the store's objects/ folder")
    return Artifact(key, root / rel, data["sha256"], int(data["bytes"]), data.get("verification", {}))
