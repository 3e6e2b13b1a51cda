"""What a busy host costs a campaign, what the host check says, and what restores it.

The same ``--models`` random models are measured in two campaigns (the second in reverse
order, so other sets) under each condition, with default flags at ``--runs 100``:

- ``quiet``: nothing started beside it;
- ``busy``: one CPU-bound process per core this process may use;
- ``busy-other-core --affinity``: one CPU-bound process pinned to the first core, the worker
  pinned (``--affinity``) to the last one (only where there are at least two cores).

For each: raw and level-corrected test-retest (Spearman, median |relative difference|, both
through the harness's one rule, ``blox_lat.harness.stand``), models flagged noisy, what the
host check before each campaign said (the ``host_state`` of the environment line, and whether
``measure`` warned), and the wall time.

    python benchmarks/busy_host.py [--models 64] [--seed 23] [--runs 100] [--work DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _probe import cpu_probe_s
from _results import add_arguments, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BURN = "while True: pass"


def _burners(cores: list[int]) -> list[subprocess.Popen]:
    """One CPU-bound process pinned to each of ``cores``."""
    procs = []
    for core in cores:
        procs.append(subprocess.Popen([sys.executable, "-c", BURN],
                                      preexec_fn=lambda c=core: os.sched_setaffinity(0, {c})))
    time.sleep(1.0)  # let them reach full speed before the host check samples
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def _campaign(work: Path, name: str, indices: list[int], args: argparse.Namespace, affinity: str | None
              ) -> dict[str, Any]:
    selector = work / f"{name}.sel"
    selector.write_text("".join(f"{i}\n" for i in indices))
    cmd = [sys.executable, "-m", "blox_lat", "measure", f"@{selector}", "--runs", str(args.runs), "--out",
           str(work / name), "--store", str(args.work / "store"), *(["--affinity", affinity] if affinity else [])]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stderr[-2000:]}")
    return {"wall_s": round(time.monotonic() - started, 1), "warned": "busy host" in proc.stderr}


def _figures(a: Path, b: Path) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from blox_lat.harness import EnvironmentRecord, read_records, stand

    ra, rb = read_records(a), read_records(b)
    per = stand([*ra, *rb]).per_campaign
    (device, models), = per.items()
    pairs = [sorted(by.values(), key=lambda s: str(s.record.recorded_at)) for by in models.values() if len(by) == 2]
    pairs = [p for p in pairs if all(s.ok for s in p)]
    out: dict[str, Any] = {"models": len(pairs)}
    for kind in ("raw", "corrected"):
        x = [p[0].value(kind) for p in pairs]
        y = [p[1].value(kind) for p in pairs]
        if any(v is None for v in (*x, *y)):
            continue
        rel = [abs(u - v) / ((u + v) / 2) for u, v in zip(x, y)]
        out[kind] = {"spearman": round(float(spearmanr(x, y).statistic), 4),
                     "median_abs_rel_diff": round(statistics.median(rel), 4)}
    out["noisy"] = sum(s.record.noisy for p in pairs for s in p)
    out["host_check"] = [(r.extra.get("host_state") or {}).get("verdict") for r in (*ra, *rb)
                         if isinstance(r, EnvironmentRecord)]
    out["host_reason_first"] = next(((r.extra.get("host_state") or {}).get("reason") for r in ra
                                     if isinstance(r, EnvironmentRecord)), None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/blox-lat-busy-host"))
    add_arguments(parser)
    args = parser.parse_args()
    from blox_lat import space as sp

    indices = [a.index for a in sp.select(f"random:{args.models}:{args.seed}")]
    cores = sorted(os.sched_getaffinity(0))
    conditions = [("quiet", [], None), ("busy", cores, None)]
    if len(cores) >= 2:
        conditions.append(("busy-other-core --affinity", cores[:1], str(cores[-1])))
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    probes = [cpu_probe_s()]
    for label, burn, affinity in conditions:
        work = args.work / label.split()[0]
        if work.exists():
            import shutil

            shutil.rmtree(work)
        work.mkdir()
        procs = _burners(burn)
        try:
            runs = [_campaign(work, "a", indices, args, affinity),
                    _campaign(work, "b", list(reversed(indices)), args, affinity)]
        finally:
            _stop(procs)
        figures = _figures(work / "a", work / "b")
        figures.update(wall_s=[r["wall_s"] for r in runs], warned=[r["warned"] for r in runs],
                       load_average_after=[round(x, 2) for x in os.getloadavg()])
        results[label] = figures
        probes.append(cpu_probe_s())
        print(label, figures, file=sys.stderr)
    save("busy_host", {"models": args.models, "runs": args.runs, "seed": args.seed, "cores": cores,
                       "conditions": results, "cpu_probe_s": [p for p in probes if p is not None and math.isfinite(p)]},
         args)


if __name__ == "__main__":
    main()
