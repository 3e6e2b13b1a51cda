"""Where benchmark results go: one JSON file per run under ``benchmarks/results/``.

Every script in ``benchmarks/`` ends with :func:`save`, which wraps its figures with what is
needed to read them later: the UTC date, the git commit (and whether the tree was dirty), host
facts and the CPU probe (:func:`_probe.cpu_probe_s`). The file is
``benchmarks/results/<name>-<UTC date>.json`` (``-2``, ``-3``... for further runs that day);
an existing file is never overwritten, and the file appears whole (temp file + rename).
``docs/benchmarks.md`` is generated from these files by ``benchmarks/make_docs.py``.

Kept free of ``blox_lat`` imports so that it describes the host even when the package is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _probe import cpu_probe_s

#: results format; bump and note the change in CHANGELOG.md when fields change meaning.
RESULT_SCHEMA = 1
ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark shares: where to write the result, or not to."""
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="folder for the result file (default: benchmarks/results)")
    parser.add_argument("--no-save", action="store_true", help="print the result only")


def git_facts() -> dict[str, Any]:
    """Commit of the checkout and whether it had uncommitted changes (None outside git)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def host_facts() -> dict[str, Any]:
    """What the figures depend on: CPU model and count, load, memory, Python and key packages."""
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    versions = {}
    for dist in ("torch", "onnxruntime", "onnx", "pyarrow", "numpy"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing package is simply not listed
            versions[dist] = None
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "mem_total_mib": mem_kb // 1024 if mem_kb else None,
        "python": platform.python_version(),
        "versions": versions,
    }


def result_path(name: str, date: dt.date, folder: Path) -> Path:
    """``<name>-<date>.json``, or the first free ``<name>-<date>-N.json``."""
    path = folder / f"{name}-{date.isoformat()}.json"
    n = 2
    while path.exists():
        path = folder / f"{name}-{date.isoformat()}-{n}.json"
        n += 1
    return path


def save(name: str, figures: dict[str, Any], args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Print ``figures`` wrapped with date, commit, host and probe; write them unless --no-save.

    ``figures`` may hold its own ``cpu_probe_s`` (a list of probes taken during the run); a
    probe is taken now otherwise. Returns the document.
    """
    now = dt.datetime.now(dt.timezone.utc)
    doc: dict[str, Any] = {
        "result_schema": RESULT_SCHEMA,
        "benchmark": name,
        "date": now.isoformat(timespec="seconds"),
        "git": git_facts(),
        "host": host_facts(),
        "cpu_probe_s": figures.get("cpu_probe_s", cpu_probe_s()),
        "argv": sys.argv[1:],
        "figures": {k: v for k, v in figures.items() if k not in ("benchmark", "cpu_probe_s")},
    }
    text = json.dumps(doc, indent=2) + "\n"
    print(text, end="")
    if args is None or not getattr(args, "no_save", False):
        folder = Path(getattr(args, "results_dir", RESULTS_DIR) or RESULTS_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        while True:  # link, not rename: never replaces a file another run just wrote
            path = result_path(name, now.date(), folder)
            try:
                os.link(tmp, path)
                break
            except FileExistsError:
                continue
        os.unlink(tmp)
        print(f"result written to {path}", file=sys.stderr)
    return doc
