"""Export throughput: fast (piece composition) vs the naive per-model baseline, same models, one run.

Prints one JSON document. Baselines (no verification, as the issue defines them):
  onnx       build the model, torch.onnx.export(dynamo=False)
  onnx-int8  the same plus onnxruntime quantize_static (QDQ, per-channel, 16 random inputs)
  torchscript  build, torch.jit.trace with a batch-B input, freeze, save
The fast path runs ``blox_lat.exporters.export`` with verification ON for every model, twice:
"cold" in a fresh store (piece exports counted) and "warm" in another fresh store that reuses
the pieces already on disk and the piece modules already built (the steady state of a campaign
over many models), with the PyTorch reference outputs of the cold pass forgotten.
Targets: onnx >= 20x, onnx-int8 >= 10x, torchscript >= 3x (models/s ratio).

    python benchmarks/export_speed.py [--models 50] [--ts-models 10] [--formats onnx,onnx-int8,torchscript]

The result is printed and written to benchmarks/results/ (see ``_results``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _probe import cpu_probe_s
from _results import add_arguments, save

TARGETS = {"onnx": 20.0, "onnx-int8": 10.0, "torchscript": 3.0}


def naive(arch, fmt: str, batch: int, work: Path, calib) -> None:
    import torch

    from blox_lat import space as sp
    from blox_lat.exporters import _naive

    model = sp.build_model(arch).eval()
    if fmt == "torchscript":
        with torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(model, torch.zeros(batch, 3, 32, 32)).eval())
        torch.jit.save(frozen, str(work / "n.pt"))
        return
    _naive.export_onnx_module(model, work / "n.onnx", batch, 17)
    if fmt == "onnx-int8":
        _naive.quantize_int8(work / "n.onnx", work / "n8.onnx", calib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default="onnx,onnx-int8,torchscript")
    parser.add_argument("--ts-batch", type=int, default=256)
    parser.add_argument("--ts-models", type=int, default=10,
                        help="TorchScript uses the first N models (a naive batch-256 trace takes ~13 s each)")
    parser.add_argument("--naive-models", type=int, default=None,
                        help="time the baseline on the first N of the models only (default: all)")
    add_arguments(parser)
    args = parser.parse_args()

    import logging

    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's quantiser warns on every call
    import torch

    from blox_lat import exporters as ex
    from blox_lat import space as sp
    from blox_lat.exporters._calib import calibration_inputs
    from blox_lat.exporters._compose import forget_reference_outputs

    archs = sp.sample(args.models, seed=args.seed)
    calib = calibration_inputs("random", 16, 1)
    report = {"models": len(archs), "seed": args.seed, "cpu_probe_s": cpu_probe_s(), "python": platform.python_version(),
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "formats": {}}
    root = Path(tempfile.mkdtemp(prefix="blox-export-bench-"))
    try:
        for fmt in args.formats.split(","):
            batch = args.ts_batch if fmt == "torchscript" else 1
            models = archs[: args.ts_models] if fmt == "torchscript" else archs
            work = root / f"naive-{fmt}"
            work.mkdir()
            n_naive = min(args.naive_models or len(models), len(models))
            t0 = time.perf_counter()
            for arch in models[:n_naive]:
                naive(arch, fmt, batch, work, calib)
            naive_s = time.perf_counter() - t0
            row = {"batch": batch, "models": len(models), "naive_models": n_naive, "naive_s": round(naive_s, 3),
                   "naive_models_per_s": round(n_naive / naive_s, 4)}
            pieces = None
            for phase in ("cold", "warm"):
                store_root = root / f"{fmt}-{phase}"
                store_root.mkdir()
                if phase == "warm" and pieces is not None and pieces.exists():
                    shutil.copytree(pieces, store_root / "pieces")
                store = ex.ArtifactStore(store_root)
                # warm = pieces on disk and piece modules built, as deep into a campaign; but no
                # PyTorch outputs remembered from the cold pass over these same models
                forget_reference_outputs()
                verified = []
                t0 = time.perf_counter()
                for arch in models:
                    art = ex.export(arch, fmt, batch=batch, store=store, verify=True)
                    verified.append(art.verification)
                fast_s = time.perf_counter() - t0
                pieces = store_root / "pieces"
                rate = len(models) / fast_s
                row[f"fast_{phase}_s"] = round(fast_s, 3)
                row[f"fast_{phase}_models_per_s"] = round(rate, 4)
                row[f"ratio_{phase}"] = round(rate / row["naive_models_per_s"], 2)
                row[f"verified_{phase}"] = len(verified)
                key = "top1_agreement" if fmt == "onnx-int8" else "max_rel_err"
                values = [v[key] for v in verified]
                row[f"{key}_{'min' if key == 'top1_agreement' else 'max'}"] = (
                    min(values) if key == "top1_agreement" else max(values))
            row["target_ratio"] = TARGETS.get(fmt)
            row["meets_target_warm"] = row["ratio_warm"] >= TARGETS.get(fmt, 0)
            row["meets_target_cold"] = row["ratio_cold"] >= TARGETS.get(fmt, 0)
            report["formats"][fmt] = row
            print(json.dumps({fmt: row}), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    save("export_speed", report, args)


if __name__ == "__main__":
    main()
