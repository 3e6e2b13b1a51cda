"""Campaign repeatability: the same models in two campaigns, other orders and other sets.

The repeatability benchmark times each pass as one set, so every model shares its set's level.
A real campaign has many sets minutes apart. Here ``--models`` random models are measured in
two ``blox-lat measure`` campaigns (sets of ``--interleave``): campaign A in the sample's order,
campaign B in another order, so that every set of B mixes models from different sets of A.
Prints JSON: raw and level-corrected test-retest Spearman and relative differences, each set's
level, the anchors' share of the campaign's timed runs, the wall times and the CPU probe.
Targets (issue 15): corrected Spearman >= 0.95 at --runs 100 (>= 0.99 at 1000), anchors <= 10 %.

    python benchmarks/campaign_repeatability.py [--models 128] [--seed 15] [--runs 100]
        [--interleave 32] [--anchors 3] [--work DIR]
    python benchmarks/campaign_repeatability.py --from A B [--runs 100]   # two existing campaigns,
        # e.g. benchmarks/data/predictor/cpu-a.journal.jsonl.gz and cpu-b.journal.jsonl.gz

Resumable: both campaigns live in ``--work`` (default
``/tmp/blox-lat-campaign-repeatability/<models>-<seed>-<runs>-<interleave>-<anchors>``); rerun
the same command after an interruption and each campaign goes on where it stopped (a finished
one is not measured again). The result is printed and written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _probe import cpu_probe_s
from _results import add_arguments, save


def spearman(a: list[float], b: list[float]) -> float:
    import numpy as np
    import pandas as pd

    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


def _rel(a: list[float], b: list[float]) -> dict[str, float]:
    rel = [abs(x - y) / ((x + y) / 2) for x, y in zip(a, b)]
    return {"mean": round(statistics.fmean(rel), 4), "median": round(statistics.median(rel), 4),
            "max": round(max(rel), 4)}


def _campaign(name: str, indices: list[int], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) one campaign over ``indices`` in that order; its wall time this call."""
    selector = work / f"{name}.txt"
    if not selector.exists():
        selector.write_text("".join(f"{i}\n" for i in indices))
    cmd = [sys.executable, "-m", "blox_lat", "measure", f"@{selector}", "--runs", str(args.runs),
           "--interleave", str(args.interleave), "--anchors", str(args.anchors), "--out", str(work / name),
           "--store", args.store, "--quiet", "--json",
           *(["--affinity", args.affinity] if args.affinity else []), *getattr(args, "measure_arg", [])]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"campaign_repeatability: {' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _read(out: Path, first_attempts: bool = False) -> dict[str, Any]:
    """A campaign's ok records and anchors lines. ``first_attempts``: as it would have been
    without burst redos (each redone set's models with their first attempt's latency and that
    attempt's anchors line): the same run, one step left out."""
    from blox_lat.harness import read_journal

    records = {r["model_hash"]: r for r in read_journal(out, kind="measurement") if r["status"] == "ok"}
    sets = list(read_journal(out, kind="anchors"))
    if first_attempts:
        records, sets = _without_redos(out, records)
    return {"records": records, "sets": sets}


def _without_redos(out: Path, records: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Records and anchors lines with every redone set put back on its first attempt. A set's
    anchors lines (one per attempt) are journaled together right before its records."""
    from blox_lat.harness import read_journal

    block: list[dict[str, Any]] = []
    kept_lines: list[dict[str, Any]] = []
    first_of: dict[str, dict[str, Any]] = {}  # a redo's set_id -> the set's attempt-1 line
    previous = None
    for line in read_journal(out):
        if line["kind"] == "anchors":
            if previous != "anchors":
                block = []
            block.append(line)
            first = next((x for x in block if x["attempt"] == 1), None)
            if line["attempt"] == 1:
                kept_lines.append(line)
            elif first is not None and (first.get("stability") or {}).get("burst"):
                first_of[line["set_id"]] = first
        previous = line["kind"]
    out_records = {}
    for h, r in records.items():
        first = first_of.get(r.get("set_id"))
        log = r.get("attempt_log") or []
        if first is not None and log and log[0].get("latency_ms"):
            latency = log[0]["latency_ms"]
            r = {**r, "measurement": {**r["measurement"], "latency_ms": latency}, "set_id": first["set_id"],
                 "level": first["level"], "latency_corrected_ms": latency / first["level"]}
        out_records[h] = r
    return out_records, kept_lines


def _anchor_share(camp: dict[str, Any]) -> float | None:
    """Anchors' share of the campaign's timed inference time: every attempt of every model
    (``attempt_log``) against every timed attempt of the anchors (``anchors`` lines)."""
    if not camp["sets"]:
        return None
    models = sum(a["latency_ms"] for r in camp["records"].values() for a in r["attempt_log"] if a.get("latency_ms"))
    anchors = sum(a["latency_ms"] for s in camp["sets"] for a in s["anchors"])
    return anchors / (anchors + models)


def _common_reference(*camps: dict[str, Any]) -> dict[str, float]:
    """Each anchor's median latency over every set of both campaigns: a reference for both."""
    by_anchor: dict[str, list[float]] = {}
    for camp in camps:
        for s in camp["sets"]:
            for x in s["anchors"]:
                by_anchor.setdefault(x["model_hash"], []).append(x["latency_ms"])
    return {h: statistics.median(v) for h, v in by_anchor.items()}


def _on_reference(camp: dict[str, Any], hashes: list[str], reference: dict[str, float]) -> list[float]:
    """The campaign's latencies of ``hashes`` divided by their set's level on ``reference``
    (the same anchors in both campaigns: the levels of their sets become comparable)."""
    from blox_lat.harness import set_level

    level = {s["set_id"]: set_level([x["latency_ms"] for x in s["anchors"]],
                                    [reference[x["model_hash"]] for x in s["anchors"]]) for s in camp["sets"]}
    return [camp["records"][h]["measurement"]["latency_ms"] / level[camp["records"][h]["set_id"]] for h in hashes]


def _span_s(out: Path) -> float | None:
    """The campaign's time from its first environment line to its last record (all its runs)."""
    from datetime import datetime

    from blox_lat.harness import read_journal

    stamps = [datetime.fromisoformat(r["recorded_at"]) for r in read_journal(out) if r.get("recorded_at")]
    return round((max(stamps) - min(stamps)).total_seconds(), 1) if stamps else None


def _figures(a_dir: Path, b_dir: Path, target_runs: int, first_attempts: bool = False) -> dict[str, Any]:
    """Raw and level-corrected test-retest figures of the models both campaigns measured
    (``first_attempts``: without the burst redos, see :func:`_read`)."""
    a, b = _read(a_dir, first_attempts), _read(b_dir, first_attempts)
    common = sorted(set(a["records"]) & set(b["records"]))
    raw_a = [a["records"][h]["measurement"]["latency_ms"] for h in common]
    raw_b = [b["records"][h]["measurement"]["latency_ms"] for h in common]
    figures: dict[str, Any] = {
        "models": len(common),
        "campaign_s": {"A": _span_s(a_dir), "B": _span_s(b_dir)},
        "latency_range_ms": [round(min(raw_a), 3), round(max(raw_a), 3)] if raw_a else None,
        "raw": {"spearman": round(spearman(raw_a, raw_b), 4), "abs_rel_diff": _rel(raw_a, raw_b)},
    }
    leveled = [h for h in common if a["records"][h].get("level") and b["records"][h].get("level")]
    if leveled:
        figures.update(_corrected(a, b, leveled, target_runs, len(common)))
    figures["cv_median"] = round(statistics.median(
        c["records"][h]["measurement"]["cv"] for c in (a, b) for h in common), 4) if common else None
    figures["pairs_ms"] = [[round(x, 4), round(y, 4)] for x, y in zip(raw_a, raw_b)]
    if not math.isfinite(figures["raw"]["spearman"]):
        figures["raw"]["spearman"] = None
    return figures


def _corrected(a: dict[str, Any], b: dict[str, Any], leveled: list[str], target_runs: int, common: int) -> dict[str, Any]:
    """The corrected figures, the per-set levels and the anchors' cost."""
    reference = _common_reference(a, b)
    cor_a, cor_b = _on_reference(a, leveled, reference), _on_reference(b, leveled, reference)
    own = spearman([a["records"][h]["latency_corrected_ms"] for h in leveled],
                   [b["records"][h]["latency_corrected_ms"] for h in leveled])
    share = [_anchor_share(c) for c in (a, b)]
    rho = spearman(cor_a, cor_b)
    target = 0.99 if target_runs >= 1000 else 0.95
    return {
        # on one reference (each anchor's median over both campaigns); spearman_own_reference:
        # the journals' own corrected latencies (each campaign relative to its first set)
        "corrected": {"models": len(leveled), "spearman": round(rho, 4), "abs_rel_diff": _rel(cor_a, cor_b),
                      "spearman_own_reference": round(own, 4)},
        "levels": {k: [round(s["level"], 4) for s in c["sets"]] for k, c in (("A", a), ("B", b))},
        "level_range": {k: [round(min(s["level"] for s in c["sets"]), 4), round(max(s["level"] for s in c["sets"]), 4)]
                        for k, c in (("A", a), ("B", b))},
        "anchor_share": [round(s, 4) for s in share if s is not None],
        "anchors_cv_median": round(statistics.median(x["cv"] for c in (a, b) for s in c["sets"]
                                                     for x in s["anchors"]), 4),
        "target": f"corrected spearman >= {target} and anchors <= 10 % of the timed runs",
        "meets_target": bool(rho >= target and max(share) <= 0.10) if common >= 128 else None,
    }


def _from_journals(args: argparse.Namespace) -> dict[str, Any]:
    """Figures of two existing campaigns (folders or .jsonl[.gz] journals), e.g. the committed
    predictor data (cpu-a and its re-measurement cpu-b)."""
    import tempfile

    from _journals import journal_folder

    with tempfile.TemporaryDirectory() as tmp:
        a_dir, b_dir = (journal_folder(Path(p), Path(tmp)) for p in args.from_journals)
        figures = _figures(a_dir, b_dir, args.runs)
    return {"source": [str(p) for p in args.from_journals], "runs": args.runs, **figures,
            "cpu_probe_s": [cpu_probe_s()]}


def _measured(args: argparse.Namespace) -> dict[str, Any]:
    """Measure both campaigns (or resume them) and return their figures."""
    from blox_lat import space as sp

    work = args.work or Path("/tmp/blox-lat-campaign-repeatability") / (
        f"{args.models}-{args.seed}-{args.runs}-{args.interleave}-{args.anchors}")
    work.mkdir(parents=True, exist_ok=True)
    first = [a.index for a in sp.select(f"random:{args.models}:{args.seed}")]
    second = list(first)
    random.Random(args.seed + 1).shuffle(second)  # other order, so other set compositions
    probes = [cpu_probe_s()]
    summaries = {}
    for name, order in (("A", first), ("B", second)):
        summaries[name] = _campaign(name, order, work, args)
        probes.append(cpu_probe_s())
    without = _figures(work / "A", work / "B", args.runs, first_attempts=True)
    return {"runs": args.runs, "interleave": args.interleave, "anchors": args.anchors, "work": str(work),
            "measure_args": args.measure_arg, "affinity": args.affinity,
            "cpu_probe_s": probes, "wall_s_this_call": {k: round(s["wall_s"], 1) for k, s in summaries.items()},
            "host_check": {k: _host_seen(s) for k, s in summaries.items()},
            "redos": {k: _redos(s) for k, s in summaries.items()},
            "without_redos": {k: without.get(k) for k in ("raw", "corrected")},
            **_figures(work / "A", work / "B", args.runs)}


def _host_seen(summary: dict[str, Any]) -> dict[str, Any] | None:
    """What the host check before the campaign saw (its verdict and reason)."""
    host = summary.get("host")
    return None if host is None else {"verdict": host.get("verdict"), "reason": host.get("reason")}


def _redos(summary: dict[str, Any]) -> dict[str, Any]:
    """What the burst redos cost this call: sets redone, seconds (waits for quiet included),
    their share of the campaign's wall time, and what stayed unrepaired."""
    wall = summary.get("wall_s") or 0.0
    return {"redone_sets": summary.get("redone_sets"), "redo_s": summary.get("redo_s"),
            "redo_share": round(summary.get("redo_s", 0.0) / wall, 4) if wall else None,
            "unrepaired_sets": summary.get("unrepaired_sets"), "unrepaired_models": summary.get("unrepaired_models")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=128, help="random models measured in both campaigns")
    ap.add_argument("--seed", type=int, default=15, help="which random models, and campaign B's order")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--interleave", type=int, default=32, help="set size (blox-lat measure --interleave)")
    ap.add_argument("--anchors", type=int, default=3, help="anchors per set (0: none, raw figures only)")
    ap.add_argument("--store", default="/tmp/blox-lat-bench-store")
    ap.add_argument("--affinity", default=None, help="pin the measuring worker (blox-lat measure --affinity)")
    ap.add_argument("--work", type=Path, default=None, help="where both campaigns live (resumable)")
    ap.add_argument("--measure-arg", action="append", default=[], help="extra flag for blox-lat measure (repeat)")
    ap.add_argument("--from", dest="from_journals", nargs=2, type=Path, default=None, metavar=("A", "B"),
                    help="measure nothing: compare two existing campaigns (folders or .jsonl[.gz]); "
                         "--runs then only says which target applies")
    add_arguments(ap)
    args = ap.parse_args()
    figures = _from_journals(args) if args.from_journals else _measured(args)
    save("campaign_repeatability", figures, args)

if __name__ == "__main__":
    main()
