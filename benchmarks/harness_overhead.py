"""Harness overhead: the harness's latency vs a bare ``session.run`` loop, same models, same run.

For each model the harness (worker process, warm-up, gc off, two-level trimmed mean) and a bare
loop in this process (same session options, same input, ``perf_counter_ns`` around each
``session.run``, same statistic) are timed in the same minutes: half of each bare loop runs
before the harness times the set and half after it (in reverse order), so a drift of the
shared host's speed during the set weighs on both sides alike. (An earlier version timed a
whole set first and the bare loops after it; with one big set that confounded drift with the
protocol and read 1.05-1.14 for one group per round, which an in-process A/B did not confirm.)
With ``--interleave K`` (default: what ``blox-lat measure`` does on the CPU) the harness times
K models together in rounds and the bare loops run each model alone, consecutively: the ratio
then also shows whether interleaving biases the latency (other models' data in the caches).
Prints JSON; target: median ratio within 1.00 +- 0.02.

    python benchmarks/harness_overhead.py [--models 0:10] [--runs 1000]

The result is printed and written to benchmarks/results/ (see ``_results``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from _results import add_arguments, save


class BareLoop:
    """One model's plain ``session.run`` loop, timed in halves around the harness's turn."""

    def __init__(self, path: str) -> None:
        self.session, self.feed = _session(path)
        self.samples_ms: list[float] = []

    def run(self, runs: int, warmup_s: float) -> None:
        end = time.perf_counter() + warmup_s
        while time.perf_counter() < end:
            self.session.run(None, self.feed)
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            self.session.run(None, self.feed)
            samples.append(time.perf_counter_ns() - t0)
        self.samples_ms.extend(s / 1e6 for s in samples)

    def latency(self) -> tuple[float, float]:
        from blox_lat.harness import protocol_latency

        return protocol_latency(self.samples_ms, 10), statistics.fmean(self.samples_ms)


def _session(path: str):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    return sess, {sess.get_inputs()[0].name: x}


def main() -> None:
    from blox_lat import space as sp
    from blox_lat.devices import get_device
    from blox_lat.exporters import ArtifactStore, export
    from blox_lat.harness import LOCAL_INTERLEAVE, LocalWorkerRunner, Measurement, TimingProtocol

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="0:10")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--store", default="/tmp/blox-lat-bench-store")
    ap.add_argument("--interleave", type=int, default=None,
                    help="models timed together (default: blox-lat measure's on the CPU)")
    ap.add_argument("--rounds", type=int, default=None, help="default: blox-lat measure's (one group per round)")
    ap.add_argument("--rewarm", type=int, default=0, help="untimed runs before each later round of a model")
    add_arguments(ap)
    args = ap.parse_args()
    args.interleave = LOCAL_INTERLEAVE if args.interleave is None else args.interleave
    store = ArtifactStore(args.store)
    groups = args.runs // 10
    protocol = TimingProtocol.from_total(args.runs, interleave=args.interleave,
                                         rounds=(args.rounds or groups) if args.interleave > 1 else 1,
                                         rewarm_runs=args.rewarm)
    profile = get_device("cpu")
    rows = []
    archs = sp.select(args.models)
    sets = [archs[i:i + args.interleave] for i in range(0, len(archs), args.interleave)]
    with LocalWorkerRunner() as runner:
        for members in sets:
            artifacts = [export(arch, "onnx", store=store) for arch in members]
            results = [{} for _ in members]
            bare = [BareLoop(str(a.path)) for a in artifacts]
            first = (args.runs // 20) * 10  # whole groups on each side
            for loop in bare:
                loop.run(first, 0.5)
            if len(artifacts) > 1:
                raws = runner.measure_many(artifacts, profile, protocol)
            else:
                raws = [runner.measure(artifacts[0], profile, protocol)]
            for result, raw in zip(results, raws):
                m = Measurement.from_ns(raw.samples_ns, runs_per_group=10, warmup_runs=raw.warmup_runs,
                                        started_at=raw.started_at, finished_at=raw.finished_at)
                result["harness_ms"] = m.latency_ms
            for loop in reversed(bare):
                loop.run(args.runs - first, 0.5)
            for result, loop in zip(results, bare):
                result["bare_ms"], result["bare_plain_mean_ms"] = loop.latency()
            for arch, result in zip(members, results):
                result["ratio"] = result["harness_ms"] / result["bare_ms"]
                rows.append({"index": arch.index, **{k: round(v, 5) for k, v in result.items()}})
    ratios = [r["ratio"] for r in rows]
    save("harness_overhead", {
        "models": len(rows),
        "runs": args.runs,
        "interleave": protocol.interleave,
        "rounds": protocol.rounds,
        "rewarm_runs": protocol.rewarm_runs,
        "median_ratio": round(statistics.median(ratios), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
        "target": "median ratio within 1.00 +- 0.02",
        "meets_target": abs(statistics.median(ratios) - 1.0) <= 0.02,
        "per_model": rows,
    }, args)


if __name__ == "__main__":
    main()
