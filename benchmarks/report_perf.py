"""Report and compare speed at full size (JSON to benchmarks/results/).

- ``report_s``: ``blox-lat report RELEASE --out DIR`` in a fresh process (imports included) over a
  synthetic release with all 91,125 models measured on two devices (``cpu``, ``gpu``) and trained
  (``base/0``: test accuracy), so every figure that release data allows is drawn: distribution,
  two block-cost fits, device pair, two proxy and noise figures, two campaign figures, two
  Pareto fronts. Target (issue 17): <= 20 s.
- ``compare_s``: ``blox-lat compare A B --json`` in a fresh process over two synthetic campaign
  journals of 91,125 models each (``--samples`` raw samples per model, 10 per group), B with a
  known 1.25x slowdown on 1 % of the models; ``compare_found_exactly`` checks the result. Target:
  <= 5 s.

Inputs are generated in the real on-disk formats once per ``--workdir`` and reused. Each command
runs ``--repeats`` times; the best and every run are kept, with the 1-minute load average and a
CPU probe (benchmarks/_probe.py) beside them, since the host may be shared.
Usage: python benchmarks/report_perf.py [--workdir DIR] [--samples 100] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _results import add_arguments, save

N = 91125
ROOT = Path(__file__).resolve().parents[1]
SLOW_EVERY = 100  # every 100th model is slowed in campaign B
SLOW_FACTOR = 1.25


def _profile(device: str) -> dict:
    return {"name": device, "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
            "input_size": 32, "precision": "fp32", "options": {}}


def write_journal(path: Path, device: str, samples: int, seed: int, slow: bool) -> None:
    """A campaign journal of every model: per-model level from its blocks, small noise."""
    from blox_lat.harness import TimingProtocol
    from blox_lat.space._table import space_table

    table = space_table()
    hashes = table.hashes
    t = table.triple_of_index.astype(np.int64)
    blocks = np.stack([t % 45, (t // 45) % 45, t // 2025], axis=1)
    cost = np.random.default_rng(0).uniform(0.1, 2.0, size=(3, 45)) * np.array([[1.0], [0.7], [0.5]])
    level = 1.0 + cost[np.arange(3), blocks].sum(axis=1)
    rng = np.random.default_rng(seed)
    groups = samples // 10
    protocol = TimingProtocol(groups=groups, runs_per_group=10, warmup_min_runs=10, warmup_min_s=0.5)
    env = {"schema": 1, "kind": "environment", "env_id": f"e-{device}-{seed}", "campaign_id": f"c{seed}",
           "recorded_at": "2026-01-01T00:00:00+00:00", "host": "bench", "cpu": {"model": "synthetic"},
           "versions": {"python": platform.python_version()}, "device": device, "device_facts": {},
           "profile": _profile(device), "protocol": protocol.to_dict(), "selected": N}
    with open(path / "journal.jsonl", "w") as fh:
        fh.write(json.dumps(env) + "\n")
        for i in range(N):
            factor = SLOW_FACTOR if slow and i % SLOW_EVERY == 0 else 1.0
            s = (level[i] * factor * (1 + rng.normal(0, 0.01, samples))).round(6)
            gm = s.reshape(groups, 10).mean(axis=1)
            m = {"latency_ms": float(np.mean(gm)), "median_ms": float(np.median(s)), "mean_ms": float(s.mean()),
                 "min_ms": float(s.min()), "std_ms": float(s.std()), "iqr_ms": 0.01, "cv": float(s.std() / s.mean()),
                 "rel_iqr": 0.01, "group_cv": 0.01, "groups": groups, "runs_per_group": 10, "warmup_runs": 10,
                 "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00",
                 "cv_threshold": 0.1, "noisy": False, "flags": [], "group_means_ms": gm.tolist(), "samples_ms": s.tolist()}
            stamp = datetime.fromtimestamp(1767225600 + i * 3.0, timezone.utc).isoformat()
            fh.write(json.dumps({"schema": 1, "kind": "measurement", "model_hash": hashes[i], "model_index": i,
                                 "device": device, "unit": device, "profile": _profile(device),
                                 "protocol": protocol.identity(), "env_id": env["env_id"], "campaign_id": env["campaign_id"],
                                 "status": "ok", "reason": None, "recorded_at": stamp, "attempts": 1,
                                 "measurement": m, "artifact": {}}) + "\n")


def write_training(root: Path, epochs: int) -> None:
    from blox_lat.dataset._synthetic import ENV
    from blox_lat.space._table import space_table

    hashes = space_table().hashes
    rng = np.random.default_rng(1)
    folder = root / "records" / "normal"
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, epochs)
    for i in range(N):
        top = 55 + 15 * rng.random()
        acc = (5 + (top - 5) * ramp).round(3).tolist()
        loss = (4.6 - 3.6 * ramp).round(6).tolist()
        rec = {"schema": 1, "kind": "training", "setting": "normal", "model_hash": hashes[i], "model_index": i,
               "seed": 0, "teacher": None, "epochs": epochs,
               "metrics": {"train_top1": acc, "train_top5": acc, "train_loss": loss, "val_top1": acc, "val_top5": acc,
                           "val_loss": loss},
               "test": {"top1": round(top - 1, 3), "top5": round(top + 15, 3), "loss": 1.2}, "train_time_s": 3000.0,
               "environment": {**ENV, "seed": 0}}
        (folder / f"{hashes[i]}.json").write_text(json.dumps(rec))


def generate(work: Path, samples: int, epochs: int) -> dict:
    times = {}
    t = time.perf_counter()
    for name, device, seed, slow in (("cpu", "cpu", 1, False), ("gpu", "gpu", 2, False),
                                     ("camp-a", "cpu", 3, False), ("camp-b", "cpu", 4, True)):
        (work / name).mkdir(parents=True, exist_ok=True)
        if not (work / name / "journal.jsonl").exists():
            write_journal(work / name, device, samples, seed, slow)
    times["generate_journals_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if not (work / "train" / "records").exists():
        write_training(work / "train", epochs)
    times["generate_records_s"] = time.perf_counter() - t
    if not (work / "release" / "dataset.json").exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "blox_lat", "dataset", "build", "--from", str(work / "cpu"), "--from",
                        str(work / "gpu"), "--from", str(work / "train"), "--out", str(work / "release"),
                        "--version", "1.0.0", "--no-raw"], check=True, capture_output=True)
        times["build_release_s"] = time.perf_counter() - t
    return times


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return elapsed, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="keeps the generated inputs between runs")
    ap.add_argument("--samples", type=int, default=100, help="raw samples per model in the campaigns (multiple of 10)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    add_arguments(ap)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="blox-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"models": N, "samples_per_model": args.samples, "epochs": args.epochs}
    result.update(generate(work, args.samples, args.epochs))
    exe = [sys.executable, "-m", "blox_lat"]
    report_runs, compare_runs, loads = [], [], []
    compare_out = None
    for k in range(args.repeats):
        loads.append(os.getloadavg()[0])
        elapsed, _ = timed([*exe, "report", str(work / "release"), "--out", str(work / f"report-{k}"), "--force"])
        report_runs.append(round(elapsed, 3))
        elapsed, res = timed([*exe, "compare", str(work / "camp-a"), str(work / "camp-b"), "--json"])
        compare_runs.append(round(elapsed, 3))
        compare_out = json.loads(res.stdout)
    figures = sorted(p.name for p in (work / "report-0" / "figures").glob("*.png"))
    slowed = {i for i in range(N) if i % SLOW_EVERY == 0}
    found = {r["model_index"] for r in compare_out["rows"] if r["classification"] == "slower"}
    result.update({
        "load_avg_1m": loads,
        "report_s": min(report_runs), "report_runs_s": report_runs, "report_figures": figures,
        "compare_s": min(compare_runs), "compare_runs_s": compare_runs,
        "compare_counts": compare_out["counts"], "compare_found_exactly": found == slowed,
        "targets": {"report_s": 20.0, "compare_s": 5.0},
    })
    result["meets_targets"] = all(result[k] <= v for k, v in result["targets"].items())
    result["workdir"] = str(work)
    save("report_perf", result, args)


if __name__ == "__main__":
    main()
