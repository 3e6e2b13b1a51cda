"""Within-set noise: which protocol settings make level-corrected latencies repeat best per second.

After the anchors divide each set's level out, what is left is noise inside a set. Each setting
below measures the same ``--models`` random models in two campaigns (other orders, so other
sets, as ``campaign_repeatability.py``) and reports the corrected test-retest median relative
difference, Spearman, the campaign time, the anchors' share and the share of models re-measured.
``noise_at_default_time`` scales each setting's median difference to the default setting's time
by 1/sqrt(time), the rate at which averaging independent runs lowers noise, so that settings of
different cost compare at one budget. Settings (``--runs`` timed runs per model each):

- ``default``: sets of 32, groups of 10, one group per round, 3 anchors, up to 3 attempts;
- ``sets-8``: sets of 8;  ``groups-5`` / ``groups-25``: 5 or 25 runs per group;
- ``anchors-5``: 5 anchors;  ``one-attempt``: no re-measurement of noisy models (max-attempts 1);
- ``sets-8-anchors-1``, ``sets-10-anchors-1``, ``sets-16-anchors-2``: smaller sets with fewer
  anchors (the anchors' share stays near 10 %), and ``sets-8-anchors-1-one-attempt``.

"default" is whatever ``blox-lat measure`` does without flags at the commit measured (the
result file names it): ``--max-attempts auto`` made it one attempt in sets.

    python benchmarks/within_set_noise.py [--models 64] [--runs 100] [--affinity 1] [--only NAME ...]

Resumable (each campaign lives under --work); the result goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path
from typing import Any

from _probe import cpu_probe_s
from _results import add_arguments, save
from campaign_repeatability import _campaign, _figures

SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "sets-8": {"interleave": 8},
    "groups-5": {"measure_arg": ["--runs-per-group", "5"]},
    "groups-25": {"measure_arg": ["--runs-per-group", "25"]},
    "anchors-5": {"anchors": 5},
    "one-attempt": {"measure_arg": ["--max-attempts", "1"]},
    "sets-8-anchors-1": {"interleave": 8, "anchors": 1},
    "sets-16-anchors-2": {"interleave": 16, "anchors": 2},
    "sets-10-anchors-1": {"interleave": 10, "anchors": 1},
    "sets-8-anchors-1-one-attempt": {"interleave": 8, "anchors": 1, "measure_arg": ["--max-attempts", "1"]},
}


def _setting(name: str, first: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Two campaigns of one setting over the same models; their corrected agreement and cost."""
    conf = {"runs": args.runs, "interleave": 32, "anchors": 3, "store": args.store, "affinity": args.affinity,
            "measure_arg": [], **SETTINGS[name]}
    ns = argparse.Namespace(**conf)
    work = args.work / f"{name}-{args.models}-{args.runs}"
    work.mkdir(parents=True, exist_ok=True)
    second = list(first)
    random.Random(args.seed + 1).shuffle(second)
    for camp, order in (("A", first), ("B", second)):
        _campaign(camp, order, work, ns)
    fig = _figures(work / "A", work / "B", args.runs)
    corrected = fig.get("corrected") or {}
    return {"flags": {k: v for k, v in SETTINGS[name].items()},
            "campaign_s": sum(v for v in fig["campaign_s"].values() if v),
            "raw_median_rel_diff": fig["raw"]["abs_rel_diff"]["median"],
            "corrected_median_rel_diff": (corrected.get("abs_rel_diff") or {}).get("median"),
            "corrected_spearman": corrected.get("spearman"), "raw_spearman": fig["raw"]["spearman"],
            "anchor_share": fig.get("anchor_share"), "cv_median": fig["cv_median"],
            "remeasured_share": _remeasured(work)}


def _remeasured(work: Path) -> float:
    """Share of the models' records that needed more than one attempt (both campaigns)."""
    from blox_lat.harness import read_journal

    logs = [len(r["attempt_log"]) for c in ("A", "B") for r in read_journal(work / c, kind="measurement")
            if r["status"] == "ok"]
    return round(sum(n > 1 for n in logs) / len(logs), 4) if logs else math.nan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=64)
    ap.add_argument("--seed", type=int, default=150)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--affinity", default=None, help="pin the measuring worker (blox-lat measure --affinity)")
    ap.add_argument("--store", default="/tmp/blox-lat-bench-store")
    ap.add_argument("--work", type=Path, default=Path("/tmp/blox-lat-within-set-noise"))
    ap.add_argument("--only", nargs="*", choices=sorted(SETTINGS), default=None)
    add_arguments(ap)
    args = ap.parse_args()
    from blox_lat import space as sp

    first = [a.index for a in sp.select(f"random:{args.models}:{args.seed}")]
    probes = [cpu_probe_s()]
    results = {}
    for name in args.only or SETTINGS:
        results[name] = _setting(name, first, args)
        probes.append(cpu_probe_s())
    base = results.get("default")
    for r in results.values():
        if base and r["corrected_median_rel_diff"] is not None and base["campaign_s"]:
            r["noise_at_default_time"] = round(r["corrected_median_rel_diff"] * math.sqrt(r["campaign_s"] / base["campaign_s"]), 4)
    save("within_set_noise", {"models": args.models, "runs": args.runs, "settings": results, "cpu_probe_s": probes}, args)


if __name__ == "__main__":
    main()
