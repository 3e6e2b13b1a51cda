"""Does ``compare`` tell the truth on a real retest? Null retests, calibration, injected slowdowns.

Each pair is the same models measured in two anchored campaigns (other orders, so other sets)
on one host: a null retest, where every model is unchanged. For each latency kind the script
runs ``blox_lat.report.compare`` and records how many models it calls changed at 95 %
simultaneous confidence (Bonferroni), how many per-model 95 % intervals of the difference
contain no change (calibration: 95 % is right), the Spearman of the two campaigns and the
level shift between them. Then it multiplies 10 random models of the second campaign by 1.10
(latency, group means, samples, corrected latency, in the journal lines) and counts how many
of them compare finds, and how many others it flags (over 20 random choices of the 10).

    python benchmarks/compare_calibration.py                       # the committed pair
    python benchmarks/compare_calibration.py --pair A B --label "busy host"   # more pairs

Targets (issue 22): null retest flags <= 1 % of the models; with 10 % slowdowns in 10 models,
>= 9 found (mean over the draws) and <= 2 others; per-model 95 % intervals cover 93-97 %.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from _journals import journal_folder
from _results import add_arguments, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COMMITTED = (ROOT / "benchmarks/data/predictor/cpu-a.journal.jsonl.gz",
             ROOT / "benchmarks/data/predictor/cpu-b.journal.jsonl.gz")
SLOWDOWN = 1.10
INJECTED = 10


def _lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "journal.jsonl"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _slowed(folder: Path, hashes: set[str], tmp: Path) -> Path:
    """A copy of the campaign in ``folder`` with ``hashes`` made SLOWDOWN times slower."""
    out = tmp / (folder.name + "-slowed")
    out.mkdir()
    lines = []
    for line in _lines(folder):
        if line.get("kind") == "measurement" and line.get("model_hash") in hashes and line.get("measurement"):
            m = line["measurement"]
            for key in ("latency_ms", "median_ms", "mean_ms", "min_ms", "std_ms", "iqr_ms", "se_ms"):
                if isinstance(m.get(key), (int, float)):
                    m[key] *= SLOWDOWN
            for key in ("group_means_ms", "samples_ms"):
                if isinstance(m.get(key), list):
                    m[key] = [v * SLOWDOWN for v in m[key]]
            if isinstance(line.get("latency_corrected_ms"), (int, float)):
                line["latency_corrected_ms"] *= SLOWDOWN
        lines.append(json.dumps(line))
    (out / "journal.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _figures(comparison: Any) -> dict[str, Any]:
    import numpy as np

    n = comparison.models
    counts = comparison.counts()
    changed = counts["slower"] + counts["faster"]
    summary = comparison.summary()
    covered = int(np.count_nonzero((comparison.low95 <= 1) & (comparison.high95 >= 1)))
    return {"models": n, "changed": changed, "changed_pct": round(100 * changed / n, 2),
            "coverage95_pct": round(100 * covered / n, 2),
            "spearman": round(summary["spearman"], 4), "level_shift": round(summary["level_shift"], 4),
            "headline": comparison.headline()}


def _injection(a: Path, b: Path, tmp: Path, draws: int) -> dict[str, Any]:
    """``draws`` times: 10 random models of B slowed by 10 %; how many compare finds, how many others."""
    from blox_lat import space as sp
    from blox_lat.report import compare

    common = sorted(int(i) for i in compare(a, b, latency="corrected").index)
    found, others = [], []
    for seed in range(draws):
        chosen = set(random.Random(seed).sample(common, INJECTED))
        folder = tmp / f"draw-{seed}"
        folder.mkdir()
        slowed = compare(a, _slowed(b, {sp.from_index(i).hash for i in chosen}, folder), latency="corrected")
        flagged = {int(i) for i, c in zip(slowed.index, slowed.classification) if c in ("slower", "faster")}
        found.append(len(flagged & chosen))
        others.append(len(flagged - chosen))
    return {"injected": INJECTED, "slowdown": SLOWDOWN, "draws": draws, "found_mean": sum(found) / draws,
            "found_min": min(found), "draws_finding_9_or_more_pct": round(100 * sum(f >= 9 for f in found) / draws, 1),
            "others_flagged_max": max(others), "others_flagged_mean": sum(others) / draws}


def run_pair(a: Path, b: Path, label: str, draws: int) -> dict[str, Any]:
    from blox_lat.report import compare

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        fa, fb = journal_folder(a, Path(tmp) / "a"), journal_folder(b, Path(tmp) / "b")
        kinds = {kind: _figures(compare(fa, fb, latency=kind)) for kind in ("raw", "corrected")}
        return {"a": str(a.relative_to(ROOT) if a.is_relative_to(ROOT) else a),
                "b": str(b.relative_to(ROOT) if b.is_relative_to(ROOT) else b), **kinds,
                "injection": _injection(fa, fb, Path(tmp), draws)}


def meets(pair: dict[str, Any]) -> bool:
    c, inj = pair["corrected"], pair["injection"]
    return (c["changed_pct"] <= 1.0 and 93.0 <= c["coverage95_pct"] <= 97.0 and inj["found_mean"] >= 9
            and inj["others_flagged_max"] <= 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("A", "B"),
                        help="two campaigns (folders, journals or .jsonl.gz) of the same models; repeatable")
    parser.add_argument("--label", action="append", default=[], help="what each --pair is (host state), in order")
    parser.add_argument("--draws", type=int, default=20, help="random choices of the 10 slowed models")
    add_arguments(parser)
    args = parser.parse_args()
    pairs = [tuple(p) for p in args.pair] if args.pair else [COMMITTED]
    labels = args.label + [f"pair {k + 1}" for k in range(len(args.label), len(pairs))]
    if not args.pair:
        labels = ["committed: pinned, other work on the other core"]
    for path in (p for pair in pairs for p in pair):
        if not Path(path).exists():
            parser.error(f"{path} does not exist")
    results = {label: run_pair(Path(a), Path(b), label, args.draws) for (a, b), label in zip(pairs, labels)}
    for pair in results.values():
        pair["meets_targets"] = meets(pair)
    save("compare_calibration", {"pairs": results}, args)


if __name__ == "__main__":
    main()
