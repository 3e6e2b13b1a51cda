"""Records, checkpoints and library files: atomic writes, safe loads, the environment.

Record format (schema 1; read by :func:`blox_lat.dataset.build`)::

    kind "training" (settings normal / finetune), one file <model_hash>-<seed>.json:
      schema, kind, setting, model_hash, model_index, model_name, seed, teacher (hash or null),
      epochs, metrics {train_top1, train_top5, train_loss, val_top1, val_top5, val_loss: one
      value per epoch}, test {top1, top5, loss}, train_time_s, environment {python, torch,
      gpu, driver, codebase, seed, ...}, config {the hyperparameters}, data {source, sizes,
      split_seed}, resumed_from_epoch
    kind "distill-block", one file s<stage>-b<block_id>.json:
      schema, kind, teacher, teacher_seed, epochs, seed, stage, block_id, block_name, init,
      distill_loss (MSE of the last epoch, the DONNA signal), distill_loss_initial, val_acc_delta
      (teacher val top-1 with the block swapped in minus without, percentage points: LANA),
      teacher_val_top1, swapped_val_top1, metrics {distill_loss per epoch}, train_time_s,
      environment, config, data
    kind "training-lowfi": a "training" record of a --fraction run (fraction added); the
      dataset builder ignores this kind (low-fidelity scores have no release section yet).

Accuracies are percentages, losses are means over the images. Every file is written to a
temporary sibling and renamed into place. Checkpoints are ``torch.save`` files holding only
tensors, plain containers and a JSON string, and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from blox_lat._fs import atomic_write
from blox_lat.training._errors import CheckpointError

__all__ = ["TRAINING_RECORD_SCHEMA", "atomic_write_json", "environment", "load_torch", "read_json", "save_torch"]

TRAINING_RECORD_SCHEMA = 1


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    data = (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()
    atomic_write(path, data)


def read_json(path: str | os.PathLike[str]) -> dict | None:
    """A JSON object, or ``None`` if the file is absent; a damaged file is an error."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        obj = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{p} is unreadable ({exc}); delete it to redo that model") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p} is not a JSON object; delete it to redo that model")
    return obj


def save_torch(path: str | os.PathLike[str], obj: dict) -> None:
    """``torch.save`` atomically; ``obj`` holds tensors, numbers, strings, lists and dicts only."""
    import torch

    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: str | os.PathLike[str], what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)``: never runs code from the file."""
    import pickle

    import torch

    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {p} does not exist") from None
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{what} {p} is damaged or not a blox-lat file ({_first_line(exc)}); delete or replace it") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {p} is not a blox-lat file (no dict inside)")
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@lru_cache(maxsize=1)
def _codebase() -> str:
    from blox_lat import __version__

    root = Path(__file__).resolve().parents[2]
    commit = None
    if (root / ".git").exists():
        try:
            res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                 text=True, timeout=10)
            commit = res.stdout.strip() if res.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return f"blox-lat {__version__}" + (f" ({commit})" if commit else "")


@lru_cache(maxsize=4)
def _gpu_facts(device: str) -> tuple[str | None, str | None]:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None, None
    name = torch.cuda.get_device_name(torch.device(device))
    driver = None
    try:
        res = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        if res.returncode == 0 and res.stdout.strip():
            driver = res.stdout.strip().splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return name, driver


def environment(device: str, seed: int) -> dict:
    """The ``environment`` of a record (what ``env/<seed>`` stores, plus a few facts)."""
    import torch

    gpu, driver = _gpu_facts(device)
    return {"python": platform.python_version(), "torch": torch.__version__, "gpu": gpu, "driver": driver,
            "cuda": torch.version.cuda if gpu else None, "codebase": _codebase(), "seed": seed, "device": device,
            "cpu": platform.processor() or platform.machine()}
