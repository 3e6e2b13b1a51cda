"""How well per-layer profiles add up, and how they agree with the predictor's block costs.

    flock /tmp/blox-bench.lock python benchmarks/profile_accuracy.py [--random 20] [--balanced 135] [--runs 100]

1. ``--random`` random models (seed 7) profiled on the ``cpu`` device: the per-block sum
   (``layers_ms``, profiler on) against the protocol latency timed beside it in the same worker
   (profiler off); target: within +-15 % for every model. The profiler's own overhead
   (``profiled_ms / latency_ms - 1``) is reported too.
2. ``--balanced`` models of ``predict plan`` (every stage-block pair equally often) profiled on
   ``cpu``; each stage-block pair's profiled cost is the mean time of that block's cell over the
   models holding it there, centred per stage as the predictor's costs are; Spearman against the
   block costs of a predictor fitted on ``benchmarks/data/predictor/cpu-a.journal.jsonl.gz``
   (about 1,000 ``cpu`` models, onnxruntime fp32, measured 2026-12-02 on this kind of host),
   over all 135 pairs and per stage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import add_arguments, save

ROOT = Path(__file__).resolve().parents[1]
PREDICTOR_DATA = ROOT / "benchmarks" / "data" / "predictor" / "cpu-a.journal.jsonl.gz"


def _spearman(a: list[float], b: list[float]) -> float:
    from blox_lat.predict._fit import spearman

    return float(spearman(np.asarray(a, dtype=float), np.asarray(b, dtype=float)))


def accuracy(n: int, runs: int, work: Path, store) -> dict:
    from blox_lat import profile, space

    t0 = time.monotonic()
    summary = profile.profile_models(space.select(f"random:{n}:7"), "cpu", out=work / "random", runs=runs, store=store)
    ok = [r for r in summary.records if r.ok]
    ratios = [r.layers_ms / r.latency_ms for r in ok]
    overheads = [r.overhead for r in ok]
    return {
        "models": n, "ok": len(ok), "runs": runs, "wall_s": round(time.monotonic() - t0, 1),
        "ratio_median": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "within_15pct": sum(abs(x - 1) <= 0.15 for x in ratios),
        "overhead_median": round(statistics.median(overheads), 4),
        "overhead_max": round(max(overheads), 4),
        "load_ms_median": round(statistics.median(r.load_ms for r in ok), 2),
        "first_inference_ms_median": round(statistics.median(r.first_inference_ms for r in ok), 3),
        "peak_memory_mib_median": round(statistics.median(r.peak_memory_mib for r in ok), 2),
        "meets_target": len(ok) == n and all(abs(x - 1) <= 0.15 for x in ratios),
        "per_model": [{"model": r.model_index, "latency_ms": r.latency_ms, "layers_ms": r.layers_ms,
                       "profiled_ms": r.profiled_ms, "overhead": r.overhead} for r in ok],
    }


def profiled_block_costs(records) -> np.ndarray:
    """(3, 45) mean cell time of each block at each stage over the models holding it (NaN: none)."""
    from blox_lat.profile import cell_costs

    return cell_costs(records)[0]


def agreement(n: int, runs: int, work: Path, store) -> dict:
    from blox_lat import predict, profile

    t0 = time.monotonic()
    plan = predict.plan_balanced(n, seed=0)
    summary = profile.profile_models([str(i) for i in plan], "cpu", out=work / "balanced", runs=runs, store=store)
    ok = [r for r in summary.records if r.ok]
    prof = profiled_block_costs(ok)
    prof_centred = prof - np.nanmean(prof, axis=1, keepdims=True)
    fitted = predict.fit(predict.load_measurements([PREDICTOR_DATA], device="cpu"))
    costs = np.zeros((3, 45))
    for c in fitted.block_costs():
        costs[c.stage, c.block] = c.cost_ms
    mask = ~np.isnan(prof_centred)
    pooled = _spearman(list(prof_centred[mask]), list(costs[mask]))
    per_stage = [_spearman(list(prof_centred[s][mask[s]]), list(costs[s][mask[s]])) for s in range(3)]
    spread = [round(float(np.nanstd(prof_centred[s])), 4) for s in range(3)]
    return {
        "models": n, "ok": len(ok), "runs": runs, "pairs": int(mask.sum()), "wall_s": round(time.monotonic() - t0, 1),
        "predictor_family": fitted.to_dict().get("family"), "predictor_models": len(predict.load_measurements(
            [PREDICTOR_DATA], device="cpu")),
        "spearman_135": round(pooled, 4), "spearman_stage0": round(per_stage[0], 4),
        "spearman_stage1": round(per_stage[1], 4), "spearman_stage2": round(per_stage[2], 4),
        "profiled_cost_spread_ms": spread,
        "per_pair": [{"stage": s, "block": b, "profiled_ms": round(float(prof[s, b]), 5),
                      "fitted_cost_ms": round(float(costs[s, b]), 5)} for s in range(3) for b in range(45)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--balanced", type=int, default=135)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--store", type=Path, default=None, help="artifact store (default: a temp folder)")
    parser.add_argument("--note", default="", help="what else ran on the host, for the record")
    add_arguments(parser)
    args = parser.parse_args(argv)
    from blox_lat.exporters import ArtifactStore

    with tempfile.TemporaryDirectory(prefix="blox-prof-bench-") as tmp:
        work = Path(tmp)
        store = ArtifactStore(args.store or work / "store")
        figures = {"accuracy": accuracy(args.random, args.runs, work, store)}
        print(f"accuracy: {dict((k, v) for k, v in figures['accuracy'].items() if k != 'per_model')}", file=sys.stderr)
        if args.balanced:
            figures["agreement"] = agreement(args.balanced, args.runs, work, store)
            print(f"agreement: {dict((k, v) for k, v in figures['agreement'].items() if k != 'per_pair')}",
                  file=sys.stderr)
    figures.update(ratio_median=figures["accuracy"]["ratio_median"], ratio_max=figures["accuracy"]["ratio_max"],
                   ratio_min=figures["accuracy"]["ratio_min"], overhead_median=figures["accuracy"]["overhead_median"],
                   spearman_135=figures.get("agreement", {}).get("spearman_135"),
                   meets_target=figures["accuracy"]["meets_target"], note=args.note)
    save("profile_accuracy", figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
