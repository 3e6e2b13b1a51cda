"""Synthetic inputs in the exact on-disk formats (for tests and ``benchmarks/dataset_speed.py``).

Training records and distill-block records as the training pipeline writes them, and
measurement journals as ``blox-lat measure`` writes them. Values are random but seeded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["write_distill_records", "write_journal", "write_training_records"]

ENV = {"python": "3.11.7", "torch": "2.13.0", "gpu": "NVIDIA GeForce GTX 1080 Ti", "driver": "535.54", "codebase": "abc1234"}


def training_record(index: int, seed: int, epochs: int, rng: np.random.Generator, setting: str = "normal",
                    teacher: str | None = None) -> dict:
    from blox_lat.space import space_table

    h = space_table().hashes[index]
    curve = np.linspace(5, 60 + 10 * rng.random(), epochs)

    def acc(offset: float) -> list[float]:
        return [float(v) for v in np.clip(curve + offset + rng.normal(0, 0.5, epochs), 0, 100)]

    def loss() -> list[float]:
        return [float(v) for v in np.linspace(4.6, 1.0, epochs) + rng.random(epochs) * 0.01]

    return {
        "schema": 1, "kind": "training", "setting": setting, "model_hash": h, "model_index": index, "seed": seed,
        "teacher": teacher, "epochs": epochs,
        "metrics": {"train_top1": acc(5), "train_top5": acc(20), "train_loss": loss(),
                    "val_top1": acc(0), "val_top5": acc(18), "val_loss": loss()},
        "test": {"top1": float(curve[-1] - 1), "top5": float(curve[-1] + 15), "loss": float(1.2 + rng.random())},
        "train_time_s": float(3000 + 100 * rng.random()),
        "environment": {**ENV, "seed": seed},
    }


def write_training_records(out: str | os.PathLike[str], indices, *, seed: int = 0, epochs: int = 5,
                           setting: str = "normal", teacher: str | None = None, rng_seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(rng_seed)
    folder = Path(out) / "records" / (setting if teacher is None else f"{setting}-{teacher[:8]}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in indices:
        rec = training_record(int(i), seed, epochs, rng, setting, teacher)
        p = folder / f"{rec['model_hash']}-{seed}.json"
        p.write_text(json.dumps(rec))
        paths.append(p)
    return paths


def write_distill_records(out: str | os.PathLike[str], teacher: str, epochs: int, *, blocks=None,
                          seed: int = 0, rng_seed: int = 0, with_delta: bool = True) -> list[Path]:
    from blox_lat import space as sp

    rng = np.random.default_rng(rng_seed)
    folder = Path(out) / "records" / f"distill-{teacher[:8]}-{epochs}"
    folder.mkdir(parents=True, exist_ok=True)
    names = [b.name for b in sp.list_blocks()]
    paths = []
    for stage in range(3):
        for block in (range(45) if blocks is None else blocks):
            rec = {"schema": 1, "kind": "distill-block", "teacher": teacher, "epochs": epochs, "seed": seed,
                   "stage": stage, "block_id": block, "block_name": names[block],
                   "distill_loss": float(rng.random()), "val_acc_delta": float(rng.normal()) if with_delta else None,
                   "environment": {**ENV, "seed": seed}}
            p = folder / f"s{stage}-b{block}.json"
            p.write_text(json.dumps(rec))
            paths.append(p)
    return paths


def write_journal(out: str | os.PathLike[str], device: str, indices, *, samples: int = 20, rng_seed: int = 0,
                  fail: tuple[int, ...] = (), precision: str = "fp32", campaign: str = "c0") -> Path:
    from blox_lat.space import space_table

    rng = np.random.default_rng(rng_seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    hashes = space_table().hashes
    profile = {"name": device, "transport": "local", "runtime": "onnxruntime", "format": "onnx", "batch": 1,
               "input_size": 32, "precision": precision, "options": {"threads": 1}}
    env_id = f"env-{device}-{campaign}"
    lines = [json.dumps({"schema": 1, "kind": "environment", "env_id": env_id, "campaign_id": campaign,
                         "recorded_at": "2026-01-01T00:00:00+00:00", "host": "synthetic", "cpu": {"model": "x"},
                         "versions": {"python": "3.11"}, "device": device, "device_facts": {}})]
    groups = max(1, samples // 10)
    for n, i in enumerate(indices):
        base = {"schema": 1, "kind": "measurement", "model_hash": hashes[i], "model_index": int(i), "device": device,
                "profile": profile, "env_id": env_id, "campaign_id": campaign,
                "recorded_at": f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}+00:00", "attempts": 1, "artifact": {}}
        if i in fail:
            lines.append(json.dumps({**base, "status": "failed", "reason": "synthetic failure", "measurement": None}))
            continue
        s = (1.0 + i % 7 + rng.random(samples) * 0.1).round(6)
        gm = s[: groups * 10].reshape(groups, -1).mean(axis=1) if samples >= 10 else s
        m = {"latency_ms": float(np.mean(s)), "median_ms": float(np.median(s)), "mean_ms": float(s.mean()),
             "min_ms": float(s.min()), "std_ms": float(s.std()), "iqr_ms": float(np.subtract(*np.percentile(s, [75, 25]))),
             "cv": float(s.std() / s.mean()), "rel_iqr": 0.01, "groups": groups, "runs_per_group": 10, "warmup_runs": 10,
             "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:01+00:00",
             "noisy": False, "flags": [], "group_means_ms": [float(v) for v in gm], "samples_ms": [float(v) for v in s]}
        lines.append(json.dumps({**base, "status": "ok", "reason": None, "measurement": m}))
    path = folder / "journal.jsonl"
    with open(path, "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
