"""Campaign cost: wall time of a 1000-run campaign / sum over models of 1000 x latency.

Artifacts are exported into the store first (a warm store: export cost is the exporters'
benchmark, not the device's), then one ``run_campaign`` measures the models. The ratio counts
everything else: worker start, session loading, the mandatory warm-up (>= 10 runs and 0.5 s),
re-measurements of noisy runs, journal fsyncs, and with interleaving (the CPU default) the
re-warm runs before each round. Target: <= 1.15. Also printed: the ratio with
the warm-up time taken out, and the share of wall time spent in warm-up.

    python benchmarks/campaign_cost.py [--models 0:10] [--runs 1000]

The result is printed and written to benchmarks/results/ (see ``_results``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _results import add_arguments, save


def main() -> None:
    from blox_lat import space as sp
    from blox_lat.devices import get_device
    from blox_lat.exporters import ArtifactStore, export
    from blox_lat.harness import LOCAL_INTERLEAVE, CampaignConfig, TimingProtocol, parse_cpus, run_campaign

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="0:10")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup-s", type=float, default=0.5)
    ap.add_argument("--max-attempts", type=int, default=3)
    ap.add_argument("--interleave", type=int, default=None,
                    help="models timed together (default: blox-lat measure's on the CPU)")
    ap.add_argument("--rounds", type=int, default=None, help="default: blox-lat measure's (one group per round)")
    ap.add_argument("--rewarm", type=int, default=0, help="untimed runs before each later round of a model")
    ap.add_argument("--store", default="/tmp/blox-lat-bench-store")
    ap.add_argument("--affinity", default=None, help="pin the measuring worker to these CPUs, e.g. 1 or 0-1")
    add_arguments(ap)
    args = ap.parse_args()
    args.interleave = LOCAL_INTERLEAVE if args.interleave is None else args.interleave
    store = ArtifactStore(args.store)
    archs = sp.select(args.models)
    for arch in archs:
        export(arch, "onnx", store=store)
    protocol = TimingProtocol.from_total(args.runs, warmup_min_s=args.warmup_s, interleave=args.interleave,
                                         rounds=(args.rounds or args.runs // 10) if args.interleave > 1 else 1,
                                         rewarm_runs=args.rewarm)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        affinity = tuple(parse_cpus(args.affinity)) if args.affinity else None
        summary = run_campaign(archs, CampaignConfig(devices=(get_device("cpu"),), protocol=protocol, out_dir=tmp,
                                                     store=store, max_attempts=args.max_attempts, affinity=affinity,
                                                     anchors=0))
        wall = time.perf_counter() - t0
    ideal = sum(args.runs * r["measurement"]["latency_ms"] / 1e3 for r in summary.records if r["measurement"])
    attempts = sum(r["attempts"] for r in summary.records)
    warmup_s = 0.0
    for r in summary.records:
        m = r["measurement"]
        if m:  # warm-up runs x median latency, per attempt (approximation of the warm-up time)
            warmup_s += r["attempts"] * max(args.warmup_s, m["warmup_runs"] * m["median_ms"] / 1e3)
    save("campaign_cost", {
        "models": summary.measured,
        "runs": args.runs,
        "warmup_min_s": args.warmup_s,
        "max_attempts": args.max_attempts,
        "interleave": protocol.interleave,
        "rounds": protocol.rounds,
        "rewarm_runs": protocol.rewarm_runs,
        "affinity": args.affinity,
        "attempts": attempts,
        "attempts_per_model": [r["attempts"] for r in summary.records],
        "cv_per_model": [round(r["measurement"]["cv"], 4) if r["measurement"] else None for r in summary.records],
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "ratio": round(wall / ideal, 4),
        "ratio_without_warmup": round((wall - warmup_s) / ideal, 4),
        "warmup_share_of_wall": round(warmup_s / wall, 4),
        "target": "ratio <= 1.15",
        "meets_target": wall / ideal <= 1.15,
    }, args)


if __name__ == "__main__":
    main()
