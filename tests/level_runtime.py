"""The programmable-level fake runtime of tests/fakelevel, as the anchor tests use it: artifacts
whose worker sleeps ``level x true latency`` (the level read from a file the test rewrites), and
rank agreement to check what the correction recovers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

from scipy.stats import spearmanr

#: put on a worker's PYTHONPATH: its sitecustomize loads the fake runtime
FAKE = Path(__file__).parent / "fakelevel"


def level_models(tmp: Path, true_ms: dict[str, float], level_file: Path):
    """An artifact source of the fake-level runtime: each model sleeps level x its true latency."""
    def source(archs, profile):
        for a in archs:
            path = tmp / f"{a.hash}.level.json"
            path.write_text(json.dumps({"true_ms": true_ms[a.hash], "level_file": str(level_file)}))
            yield SimpleNamespace(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), format="onnx",
                                  bytes=path.stat().st_size, model_hash=a.hash)

    return source


def spearman(a: list[float], b: list[float]) -> float:
    return float(spearmanr(a, b).statistic)
