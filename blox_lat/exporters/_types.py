"""Identity (``ArtifactKey``) and result (``Artifact``, ``ExportFailure``) value objects."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat._fs import sha256_file as sha256_file  # re-exported: the stage's checksum helper

#: bump when the way artifacts are produced changes (weights scheme, graph layout)
EXPORTER_VERSION = "2"  # 2: ONNX pieces emitted directly (same operators and weights)


@dataclass(frozen=True)
class ArtifactKey:
    """What an artifact is: model, format, batch, options and the toolchain that made it.

    ``options`` and ``toolchain`` are sorted ``(name, value)`` pairs with defaults filled in,
    so two spellings of the same request share one key (and one file in the store).
    """

    model_hash: str
    format: str
    batch: int
    options: tuple[tuple[str, str], ...] = ()
    toolchain: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_hash": self.model_hash,
            "format": self.format,
            "batch": self.batch,
            "options": dict(self.options),
            "toolchain": dict(self.toolchain),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArtifactKey":
        return cls(
            model_hash=str(data["model_hash"]),
            format=str(data["format"]),
            batch=int(data["batch"]),
            options=tuple(sorted((str(k), str(v)) for k, v in data.get("options", {}).items())),
            toolchain=tuple(sorted((str(k), str(v)) for k, v in data.get("toolchain", {}).items())),
        )

    def digest(self) -> str:
        """Stable sha256 (hex) over a canonical JSON of every field."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Artifact:
    """One exported model file in a store, with its checksum and how it was verified."""

    key: ArtifactKey
    path: Path
    sha256: str
    bytes: int
    verification: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def model_hash(self) -> str:
        return self.key.model_hash

    @property
    def format(self) -> str:
        return self.key.format

    @property
    def batch(self) -> int:
        return self.key.batch

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.key.digest(),
            **self.key.to_dict(),
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "verification": dict(self.verification),
        }


@dataclass(frozen=True)
class ExportFailure:
    """A model that could not be exported: a status with a reason, never a fake artifact."""

    model_hash: str
    model_index: int
    format: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_hash": self.model_hash,
            "model_index": self.model_index,
            "format": self.format,
            "status": "failed",
            "reason": self.reason,
        }


