"""The artifact store on a cluster file system: many processes (nodes) put the same and
different artifacts into one store at once, with file locks that exclude nothing (as fcntl
locks across NFS clients may). Every artifact a put returns must be its record's file, with its
recorded sha256, and the store must end with one record per key and no temporary files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from blox_lat.exporters import ArtifactStore
from blox_lat.exporters._types import sha256_file

WORKER = textwrap.dedent("""
    import fcntl, json, os, sys, time
    from pathlib import Path
    fcntl.flock = lambda *a, **k: None  # locks that exclude nothing, as across NFS clients
    from blox_lat.exporters import ArtifactStore
    from blox_lat.exporters._types import ArtifactKey, sha256_file

    root, worker, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    store = ArtifactStore(root)
    got = []
    while time.time() < start:
        time.sleep(0.001)
    for round_ in range(8):
        for k in range(6):
            key = ArtifactKey(f"{k:032x}", "onnx", 1, (("opset", "17"),), (("test", "1"),))
            # keys 0-2: every worker makes the same bytes; keys 3-5: each worker different bytes
            # (an export that is not byte-deterministic); worker-private keys 100+
            fill = bytes([k]) if k < 3 else bytes([k, worker, round_])
            for key_, data in ((key, fill * 400_000),
                               (ArtifactKey(f"{100 + worker:032x}", "onnx", 1, (("opset", "17"),), (("test", "1"),)),
                                bytes([worker]) * 300_000)):
                with store.tempdir() as tmp:
                    src = Path(tmp) / "model.onnx"
                    src.write_bytes(data)
                    art = store.put(key_, src, {"worker": worker}, suffix=".onnx")
                got.append([art, sha256_file(art.path), key_.digest()])
    # an artifact once served stays what it was (nobody overwrites a published file)
    print(json.dumps([[str(a.path), a.sha256, now, sha256_file(a.path), d] for a, now, d in got]))
""")


def test_concurrent_puts_without_working_locks(tmp_path):
    root = tmp_path / "store"
    ArtifactStore(root)
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(w), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(5)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, [o[1][-800:] for o in outs]
    served: dict[str, set[str]] = {}
    for out, _ in outs:
        for path, recorded, actual, later, digest in json.loads(out):
            assert recorded == actual, f"put returned {path} with sha256 {recorded[:12]} but the file has {actual[:12]}"
            assert later == recorded, f"{path} changed after it was served"
            served.setdefault(digest, set()).add(path)
    store = ArtifactStore(root)
    entries = store.manifest()
    assert len(entries) == len({e["digest"] for e in entries}) == 6 + 5
    for entry in entries:
        path = root / entry["path"]
        assert sha256_file(path) == entry["sha256"] and path.stat().st_size == entry["bytes"]
        assert store.get(store_key(entry), verify=True) is not None
    for artifact in store.artifacts():
        assert store.verify(artifact)
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


def store_key(entry: dict):
    from blox_lat.exporters._types import ArtifactKey

    return ArtifactKey.from_dict(entry)


def test_old_layout_store_is_still_read(tmp_path):
    """A store written by the previous layout (artifact named by key digest, records with the
    relative path, manifest.jsonl) serves its artifacts unchanged."""
    from blox_lat.exporters._types import ArtifactKey

    root = tmp_path / "store"
    key = ArtifactKey("0" * 32, "onnx", 1, (("opset", "17"),), (("test", "1"),))
    digest = key.digest()
    (root / "objects" / digest[:2]).mkdir(parents=True)
    blob = root / "objects" / digest[:2] / f"{digest}.onnx"
    blob.write_bytes(b"old" * 1000)
    record = {"digest": digest, **key.to_dict(), "path": f"objects/{digest[:2]}/{digest}.onnx",
              "sha256": sha256_file(blob), "bytes": 3000, "verification": {"verified": True}}
    (root / "objects" / digest[:2] / f"{digest}.json").write_text(json.dumps(record, sort_keys=True))
    (root / "manifest.jsonl").write_text(json.dumps({"schema": 1, "time": 1.0, "event": "put", **record}) + "\n")
    store = ArtifactStore(root)
    art = store.get(key, verify=True)
    assert art is not None and art.path == blob and art.verification == {"verified": True}
    assert [e["digest"] for e in store.manifest()] == [digest]


def test_record_path_outside_the_store_is_refused(tmp_path):
    import pytest

    from blox_lat.exporters import ExportError
    from blox_lat.exporters._types import ArtifactKey

    root = tmp_path / "store"
    key = ArtifactKey("1" * 32, "onnx", 1, (("opset", "17"),), (("test", "1"),))
    digest = key.digest()
    (root / "objects" / digest[:2]).mkdir(parents=True)
    (tmp_path / "secret").write_bytes(b"s" * 10)
    record = {"digest": digest, **key.to_dict(), "path": "../secret", "sha256": sha256_file(tmp_path / "secret"),
              "bytes": 10, "verification": {}}
    (root / "objects" / digest[:2] / f"{digest}.json").write_text(json.dumps(record))
    with pytest.raises(ExportError, match="outside"):
        ArtifactStore(root).get(key)
