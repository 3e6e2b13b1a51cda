"""Measure the committed data of the latency predictor (issue 16) and compress it into benchmarks/data/.

Runs, on a quiet host (the figures are only as good as the host lets them be):

1. ``cpu-a``: 1,000 random models (``random:1000:16``) on ``cpu`` at ``--runs 100``;
2. ``cpu-b``: ``--retest`` (default 256) of those models again, in a second campaign, in another
   (shuffled) order, so the sets hold other models: the test-retest figures;
3. ``cpu-int8``: 300 random models on ``cpu-int8`` (the first 300 of ``random:1000:16`` and
   so a subset of cpu-a: the transfer benchmark compares them) at ``--runs 100``;
4. ``cpu.pieces.json``: the 140 block pieces on ``cpu`` (``blox-lat predict pieces measure``,
   same run count), for the pieces figures.

Each campaign is a plain ``blox-lat measure`` (``--measure-arg`` passes more flags, e.g. the
anchor options of issue 15 once they exist, so that records carry level-corrected latencies).
The journals (raw samples included) are gzip-compressed to ``benchmarks/data/predictor/
<name>.journal.jsonl.gz`` beside ``host.json`` (host facts, CPU probe before and after, the
commands, wall times). Nothing is overwritten: an existing output folder stops the script.

    python benchmarks/collect_predictor_data.py [--work runs/predictor-data] [--runs 100]
        [--retest 256] [--measure-arg=--anchors --measure-arg=auto]

Resumable: rerun with the same --work after an interruption (each campaign resumes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _probe import cpu_probe_s
from _results import ROOT, git_facts, host_facts

OUT = ROOT / "benchmarks" / "data" / "predictor"
SELECTOR = "random:1000:16"


def _measure(name: str, selector: str, device: str, work: Path, args: argparse.Namespace) -> dict:
    cmd = [str(Path(sys.executable).with_name("blox-lat")), "measure", selector, "--device", device,
           "--out", str(work / name), "--store", str(work / "store"), "--runs", str(args.runs),
           *args.measure_arg]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    rc = subprocess.run(cmd, check=False).returncode
    if rc not in (0, 1):  # 1: some model failed, which the journal records
        sys.exit(f"collect: {name} stopped with status {rc}; rerun to resume")
    return {"name": name, "device": device, "command": cmd[1:], "wall_s": round(time.time() - t0, 1), "exit": rc}


def main() -> None:
    from blox_lat import space as sp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "predictor-data", help="campaign folders")
    ap.add_argument("--out", type=Path, default=OUT, help="where the compressed journals go (must not exist)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--retest", type=int, default=256, help="models of cpu-a measured again (>= 200)")
    ap.add_argument("--int8", type=int, default=300, help="models measured on cpu-int8")
    ap.add_argument("--measure-arg", action="append", default=[], help="extra flag for blox-lat measure (repeat)")
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"collect: {args.out} exists; move it away or pass --out NEW")
    args.work.mkdir(parents=True, exist_ok=True)
    probes = [cpu_probe_s()]
    models = [a.index for a in sp.select(SELECTOR)]
    import random

    retest = models[: args.retest]
    random.Random(16).shuffle(retest)
    (args.work / "retest.txt").write_text("# cpu-a models measured again, shuffled\n" +
                                          "\n".join(map(str, retest)) + "\n")
    (args.work / "int8.txt").write_text("\n".join(map(str, models[: args.int8])) + "\n")
    runs = [_measure("cpu-a", SELECTOR, "cpu", args.work, args),
            _measure("cpu-b", f"@{args.work / 'retest.txt'}", "cpu", args.work, args),
            _measure("cpu-int8", f"@{args.work / 'int8.txt'}", "cpu-int8", args.work, args)]
    pieces = args.work / "cpu.pieces.json"
    if not pieces.exists():
        cmd = [str(Path(sys.executable).with_name("blox-lat")), "predict", "pieces", "measure", "--device", "cpu",
               "--runs", str(args.runs), "--out", str(pieces)]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        t0 = time.time()
        if subprocess.run(cmd, check=False).returncode != 0:
            sys.exit("collect: measuring the pieces failed; rerun to try again")
        runs.append({"name": "cpu.pieces", "device": "cpu", "command": cmd[1:], "wall_s": round(time.time() - t0, 1)})
    probes.append(cpu_probe_s())
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy(pieces, tmp / "cpu.pieces.json")
    for r in runs[:3]:
        src = args.work / r["name"] / "journal.jsonl"
        with open(src, "rb") as fi, gzip.open(tmp / f"{r['name']}.journal.jsonl.gz", "wb", compresslevel=9) as fo:
            shutil.copyfileobj(fi, fo)
    (tmp / "host.json").write_text(json.dumps({"host": host_facts(), "git": git_facts(), "cpu_probe_s": probes,
                                               "campaigns": runs, "selector": SELECTOR}, indent=2) + "\n")
    tmp.rename(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
