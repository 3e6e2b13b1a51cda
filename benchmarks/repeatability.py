"""Repeatability: the same models measured twice, each pass in its own campaign and processes.

Each pass is a separate ``blox-lat measure`` process (so a separate worker) writing its own
journal, with the CLI's default protocol (interleaved on the local CPU; ``--interleave 1`` for
the consecutive one). Prints JSON: Spearman rank correlation between the passes and the median absolute
relative difference. Targets: Spearman >= 0.99, median |rel diff| <= 2%.

    python benchmarks/repeatability.py [--models random:20:7] [--runs 1000] [--interleave K]
        [--rounds R] [--keep DIR]

``--keep DIR`` leaves both journals there, to look at an outlier's group means and CV (each
model's CV in both passes is printed too). The result is printed and written to
benchmarks/results/ (see ``_results``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _probe import cpu_probe_s
from _results import add_arguments, save


def _ranks(values: list[float]) -> list[float]:
    import pandas as pd

    return pd.Series(values).rank().tolist()


def spearman(a: list[float], b: list[float]) -> float:
    import numpy as np

    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def main() -> None:
    from blox_lat.harness import read_journal

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="random:20:7", help="selector (default: 20 random models)")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--store", default="/tmp/blox-lat-bench-store")
    ap.add_argument("--affinity", default=None, help="pin the measuring worker, e.g. 1 (passed to blox-lat measure)")
    ap.add_argument("--interleave", default="auto", help="passed to blox-lat measure (1: consecutive protocol)")
    ap.add_argument("--rounds", default=None, help="passed to blox-lat measure (default: its own)")
    ap.add_argument("--keep", default=None, help="keep the two passes' journals in DIR/pass1, DIR/pass2 "
                                                 "(to study an outlier's group means); DIR must not exist")
    add_arguments(ap)
    args = ap.parse_args()
    if args.keep and Path(args.keep).exists():
        sys.exit(f"repeatability: --keep {args.keep} exists; name a new directory")
    probes = [cpu_probe_s()]
    results = []
    cvs = []
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory() as tmp:
        for p in (1, 2):
            out = Path(tmp) / f"pass{p}"
            subprocess.run([sys.executable, "-m", "blox_lat", "measure", args.models, "--runs", str(args.runs),
                            "--out", str(out), "--store", args.store, "--quiet", "--json",
                            "--interleave", args.interleave,
                            *(["--affinity", args.affinity] if args.affinity else []),
                            *(["--rounds", args.rounds] if args.rounds else [])],
                           check=True, stdout=subprocess.DEVNULL)
            probes.append(cpu_probe_s())
            ok = [r for r in read_journal(out, kind="measurement") if r["status"] == "ok"]
            results.append({r["model_hash"]: r["measurement"]["latency_ms"] for r in ok})
            cvs.append({r["model_hash"]: r["measurement"]["cv"] for r in ok})
    common = sorted(set(results[0]) & set(results[1]))
    a = [results[0][h] for h in common]
    b = [results[1][h] for h in common]
    rel = [abs(x - y) / ((x + y) / 2) for x, y in zip(a, b)]
    rho = spearman(a, b)
    med = statistics.median(rel)
    save("repeatability", {
        "models": len(common),
        "runs": args.runs,
        "affinity": args.affinity,
        "interleave": args.interleave,
        "rounds": args.rounds,
        "cpu_probe_s": probes,  # before, between and after the passes (see _probe)
        "spearman": round(rho, 4),
        "median_abs_rel_diff": round(med, 4),
        "max_abs_rel_diff": round(max(rel), 4),
        "latency_range_ms": [round(min(a), 3), round(max(a), 3)],
        "pass2_over_pass1_median": round(statistics.median(y / x for x, y in zip(a, b)), 4),
        "pairs_ms": [[round(x, 4), round(y, 4)] for x, y in zip(a, b)],
        "cv_pairs": [[round(cvs[0][h], 4), round(cvs[1][h], 4)] for h in common],
        "journals": args.keep,
        "target": "spearman >= 0.99 and median |rel diff| <= 0.02",
        "meets_target": rho >= 0.99 and med <= 0.02,
    }, args)


if __name__ == "__main__":
    main()
