"""The three runs: ``normal``, ``distill`` and ``finetune`` (plus low-fidelity ``--fraction``).

Output folder layout (``out``)::

    normal/<hash>-<seed>.json                  record (kind training, setting normal)
    normal/weights/<hash>-<seed>.pt            final weights: the teacher file for distill/finetune
    finetune-<t8>-<E>/<hash>-<seed>.json       record (kind training, setting finetune)
    distill-<t8>-<E>[-remap]/s<S>-b<B>.json    record (kind distill-block)
    distill-<t8>-<E>[-remap]/blocks/s<S>-b<B>.pt   the block library
    lowfi-<setting>-<1in27|1in9|1in3>/...      --fraction runs (kind training-lowfi)
    */checkpoints/*.pt                         per-epoch checkpoints (deleted when a model is done)

``<t8>`` is the first 8 hex digits of the teacher's hash. A model (or block) whose record
exists is skipped; a record made with other settings is an error (use another ``--out``).
A diverged model (non-finite loss) gets ``<name>.failed.json`` (kind ``training-failed``,
ignored by the dataset builder) and is skipped by reruns until that file is deleted.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from blox_lat.training._data import CifarData, subset_indices
from blox_lat.training._errors import CheckpointError, TrainingError
from blox_lat.training._loop import (
    EpochLoop,
    TrainConfig,
    batch_order,
    evaluate,
    kd_loss,
    make_optimizer,
    make_scheduler,
    parse_fraction,
    topk_correct,
)
from blox_lat.training._records import TRAINING_RECORD_SCHEMA, atomic_write_json, environment, read_json, save_torch

__all__ = ["RunResult", "candidate_blocks", "distill_blocks", "train_models"]

ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class RunResult:
    """What happened to one model or block: ``status`` is done, skipped or failed."""

    name: str
    status: str
    record: str
    reason: str | None = None
    summary: dict | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "record": self.record, "reason": self.reason,
                "summary": self.summary}


class _Diverged(Exception):
    pass


def _noop(event: dict) -> None:
    pass


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


def _data_info(data: CifarData, cfg: TrainConfig, n_train: int) -> dict:
    return {"source": data.source, "split_seed": data.split_seed, "train_images": n_train,
            "val_images": len(data.val_y), "test_images": len(data.test_y)}


def _train_subset(data: CifarData, cfg: TrainConfig):
    x, y = data.train_x, data.train_y
    if cfg.fraction is not None:
        import torch

        idx = torch.from_numpy(subset_indices(len(y), parse_fraction(cfg.fraction), cfg.split_seed))
        x, y = x[idx], y[idx]
    return x, y


def _folder(out: Path, cfg: TrainConfig, teacher_hash: str | None) -> Path:
    if cfg.setting == "normal":
        name = "normal"
    elif cfg.setting == "finetune":
        name = f"finetune-{teacher_hash[:8]}-{cfg.epochs}"
    else:
        name = f"distill-{teacher_hash[:8]}-{cfg.epochs}" + ("-remap" if cfg.init == "remap" else "")
    if cfg.fraction is not None:
        name = f"lowfi-{name}-{cfg.fraction.replace('/', 'in')}"
    return out / name


def _existing(record_path: Path, cfg: TrainConfig) -> dict | None:
    for path in (record_path, record_path.with_suffix(".failed.json")):
        rec = read_json(path)
        if rec is not None:
            if rec.get("config") != cfg.to_dict():
                raise CheckpointError(f"{path} was made with other settings ({_diff(rec.get('config'), cfg.to_dict())}); "
                                      "use another --out or delete it")
            return rec
    return None


def _diff(old: Any, new: dict) -> str:
    if not isinstance(old, dict):
        return "no config"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} vs {new.get(k)!r}" for k in keys) or "?"


# -- normal / finetune --------------------------------------------------------------------

def train_models(setting: str, archs: list, data: CifarData, out: str | Path, cfg: TrainConfig, *, device: str = "cpu",
                 teacher=None, library: str | Path | None = None, progress: ProgressFn | None = None) -> list[RunResult]:
    """Train every model of ``archs`` (``normal`` or ``finetune``), skipping finished ones.

    ``finetune`` needs ``teacher`` (:func:`load_teacher`) and ``library`` (a distill folder);
    ``normal`` with ``cfg.fraction`` needs ``teacher`` (the low-fidelity KD loss).
    """
    if setting not in ("normal", "finetune") or cfg.setting != setting:
        raise TrainingError(f"train_models runs normal or finetune, not {setting!r}")
    if cfg.loss == "kd" and teacher is None:
        raise TrainingError(f"{setting} with a KD loss needs a teacher: pass --teacher normal/weights/<hash>-<seed>.pt")
    if setting == "finetune" and library is None:
        raise TrainingError("finetune needs --library DIR, the distill folder (distill-<t8>-<E>) holding blocks/")
    data = data.limited(cfg.limit_train, cfg.limit_eval)
    folder = _folder(Path(out), cfg, teacher.model_hash if teacher is not None else None)
    results = []
    for arch in archs:
        results.append(_train_one(arch, data, cfg, folder, device, teacher, library, progress or _noop))
    return results


def _done_before(record_path: Path, cfg: TrainConfig, stem: str, progress) -> RunResult | None:
    """The result of a run whose record (or failure record) exists already, else ``None``."""
    old = _existing(record_path, cfg)
    if old is None:
        return None
    status = "failed" if old.get("kind") == "training-failed" else "skipped"
    progress({"event": "skip", "name": stem, "status": status})
    return RunResult(stem, status, str(record_path if status == "skipped" else record_path.with_suffix(".failed.json")),
                     old.get("reason"))


@dataclass(frozen=True)
class _Trainee:
    """What a training step runs: the model and its optimizer, the augmentation (``None``:
    normalise only) and the KD teacher's model (``None``: plain cross-entropy)."""

    model: Any
    optimizer: Any
    augment: Any = None
    teacher: Any = None


def _epoch_fn(trainee: _Trainee, data: CifarData, x, y, cfg: TrainConfig, device: str, stem: str,
              progress) -> Callable[[int], tuple[dict, float]]:
    """One training epoch over ``(x, y)`` for :class:`EpochLoop`: its metrics and seconds."""
    import torch
    import torch.nn.functional as F

    from blox_lat.training._augment import normalize

    model, optimizer, augment, tmodel = trainee.model, trainee.optimizer, trainee.augment, trainee.teacher
    n, bs = len(y), cfg.batch_size
    batches = math.ceil(n / bs)

    def epoch_fn(epoch: int) -> tuple[dict, float]:
        model.train()
        order = batch_order(n, cfg.seed, epoch).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        c1 = c5 = 0
        start = time.perf_counter()
        for b in range(batches):
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = x[idx], y[idx]
            xb = augment(xb) if augment is not None else normalize(xb)
            logits = model(xb)
            if tmodel is not None:
                with torch.no_grad():
                    tlogits = tmodel(xb)
                loss = kd_loss(logits, yb, tlogits, cfg.alpha, cfg.temperature)
            else:
                loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(yb)
            a, f = topk_correct(logits.detach(), yb)
            c1, c5 = c1 + a, c5 + f
            seen = min(n, (b + 1) * bs)
            avg = float(loss_sum) / seen
            if not math.isfinite(avg):
                raise _Diverged(f"loss became {avg} in epoch {epoch + 1}")
            progress({"event": "batch", "name": stem, "epoch": epoch, "batch": b + 1, "batches": batches,
                      "loss": avg, "acc": 100.0 * c1 / seen})
        _sync(device)
        seconds = time.perf_counter() - start
        val = evaluate(model, data.val_x, data.val_y, device=device)
        values = {"train_top1": 100.0 * c1 / n, "train_top5": 100.0 * c5 / n, "train_loss": float(loss_sum) / n,
                  "val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]}
        progress({"event": "epoch", "name": stem, "epoch": epoch, "epochs": cfg.epochs, **values})
        return values, seconds

    return epoch_fn


def _train_one(arch, data: CifarData, cfg: TrainConfig, folder: Path, device: str, teacher, library, progress) -> RunResult:
    import torch

    from blox_lat import space as sp
    from blox_lat.training._augment import TrainAugment
    from blox_lat.training._blocks import assemble_student

    arch = sp.resolve(arch)
    stem = f"{arch.hash}-{cfg.seed}"
    record_path = folder / f"{stem}.json"
    done = _done_before(record_path, cfg, stem, progress)
    if done is not None:
        return done

    torch.manual_seed(cfg.seed)
    if cfg.setting == "finetune":
        model = assemble_student(arch, teacher, Path(library))
    else:
        model = sp.build_model(arch)
    model.to(device)
    optimizer = make_optimizer(model.parameters(), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    loop = EpochLoop(folder / "checkpoints" / f"{stem}.pt", modules={"model": model}, optimizer=optimizer,
                     scheduler=scheduler, fingerprint=cfg.fingerprint(), device=device)
    loop.restore()
    x_cpu, y_cpu = _train_subset(data, cfg)
    x, y = x_cpu.to(device), y_cpu.to(device)
    n = len(y)
    batches = math.ceil(n / cfg.batch_size)
    augment = TrainAugment().to(device) if cfg.augment else None
    tmodel = teacher.model if teacher is not None and cfg.loss == "kd" else None
    progress({"event": "start", "name": stem, "model": str(arch), "epochs": cfg.epochs, "batches": batches,
              "start_epoch": loop.epoch})

    epoch_fn = _epoch_fn(_Trainee(model, optimizer, augment, tmodel), data, x, y, cfg, device, stem, progress)

    kind = "training-lowfi" if cfg.fraction is not None else "training"
    base = {"schema": TRAINING_RECORD_SCHEMA, "setting": cfg.setting, "model_hash": arch.hash, "model_index": arch.index,
            "model_name": arch.name, "seed": cfg.seed, "teacher": teacher.model_hash if teacher is not None else None,
            "teacher_seed": teacher.seed if teacher is not None else None, "epochs": cfg.epochs,
            "fraction": cfg.fraction, "config": cfg.to_dict(), "data": _data_info(data, cfg, n),
            "environment": environment(device, cfg.seed)}
    try:
        loop.run(cfg.epochs, epoch_fn)
    except _Diverged as exc:
        reason = f"diverged: {exc}"
        atomic_write_json(record_path.with_suffix(".failed.json"), {**base, "kind": "training-failed", "reason": reason,
                                                                     "metrics": loop.metrics, "epochs_done": loop.epoch})
        loop.discard()
        progress({"event": "failed", "name": stem, "reason": reason})
        return RunResult(stem, "failed", str(record_path.with_suffix(".failed.json")), reason)
    test = evaluate(model, data.test_x, data.test_y, device=device)
    save_torch(folder / "weights" / f"{stem}.pt", {"model_hash": arch.hash, "seed": cfg.seed, "setting": cfg.setting,
                                                   "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})
    record = {**base, "kind": kind, "metrics": loop.metrics, "test": test, "train_time_s": loop.train_time_s,
              "resumed_from_epoch": loop.resumed_from}
    atomic_write_json(record_path, record)
    loop.discard()
    summary = {"val_top1": loop.metrics["val_top1"][-1], "test_top1": test["top1"], "train_time_s": loop.train_time_s}
    progress({"event": "done", "name": stem, **summary})
    return RunResult(stem, "done", str(record_path), None, summary)


# -- blockwise distillation ---------------------------------------------------------------

def candidate_blocks(archs: list) -> list[tuple[int, int]]:
    """``(stage, block_id)`` pairs the models use, sorted: the blocks to distil for them."""
    return sorted({(s, a.blocks[s]) for a in archs for s in range(3)})


def distill_blocks(blocks: list[tuple[int, int]], data: CifarData, out: str | Path, cfg: TrainConfig, *, teacher,
                   device: str = "cpu", progress: ProgressFn | None = None) -> list[RunResult]:
    """Distil each ``(stage, block_id)`` from ``teacher``; writes records and the block library."""
    if cfg.setting != "distill":
        raise TrainingError("distill_blocks needs a distill config (default_config('distill'))")
    if cfg.fraction is not None:
        raise TrainingError("--fraction applies to normal and finetune runs (a KD loss on a data subset), not to distill")
    if teacher is None:
        raise TrainingError("distill needs --teacher normal/weights/<hash>-<seed>.pt (a normally trained model)")
    data = data.limited(cfg.limit_train, cfg.limit_eval)
    folder = _folder(Path(out), cfg, teacher.model_hash)
    progress = progress or _noop
    cache: dict = {}
    return [_distill_one(stage, block, data, cfg, folder, device, teacher, progress, cache) for stage, block in blocks]


def _stage_mse(model_cell, teacher_model, x, stage: int, device: str, batch_size: int = 500) -> float:
    import torch
    import torch.nn.functional as F

    from blox_lat.training._augment import normalize
    from blox_lat.training._blocks import stage_io

    model_cell.eval()
    total, n = 0.0, len(x)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            xb = normalize(x[start:start + batch_size].to(device))
            tin, tout = stage_io(teacher_model, xb, stage)[stage]
            total += float(F.mse_loss(model_cell(tin), tout, reduction="mean")) * len(xb)
    return total / n


def _distill_epoch_fn(cell, tmodel, optimizer, data: CifarData, x, stage: int, cfg: TrainConfig, device: str,
                      stem: str, progress) -> Callable[[int], tuple[dict, float]]:
    """One distillation epoch of ``cell`` against the teacher's stage for :class:`EpochLoop`."""
    import torch
    import torch.nn.functional as F

    from blox_lat.training._augment import normalize
    from blox_lat.training._blocks import stage_io

    n, bs = len(x), cfg.batch_size
    batches = math.ceil(n / bs)

    def epoch_fn(epoch: int) -> tuple[dict, float]:
        cell.train()
        order = batch_order(n, cfg.seed, epoch).to(device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        start = time.perf_counter()
        for b in range(batches):
            xb = normalize(x[order[b * bs:(b + 1) * bs]])
            with torch.no_grad():
                tin, tout = stage_io(tmodel, xb, stage)[stage]
            loss = F.mse_loss(cell(tin), tout)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(xb)
            avg = float(loss_sum) / min(n, (b + 1) * bs)
            progress({"event": "batch", "name": stem, "epoch": epoch, "batch": b + 1, "batches": batches, "loss": avg,
                      "acc": None})
        _sync(device)
        seconds = time.perf_counter() - start
        values = {"distill_loss": float(loss_sum) / n, "val_mse": _stage_mse(cell, tmodel, data.val_x, stage, device)}
        progress({"event": "epoch", "name": stem, "epoch": epoch, "epochs": cfg.epochs, **values})
        return values, seconds

    return epoch_fn


def _distill_one(stage: int, block: int, data: CifarData, cfg: TrainConfig, folder: Path, device: str, teacher,
                 progress, cache: dict) -> RunResult:
    import torch

    from blox_lat import space as sp
    from blox_lat.training._blocks import make_cell, remap_into

    info = sp.list_blocks()[block]
    stem = f"s{stage}-b{block}"
    record_path = folder / f"{stem}.json"
    if _existing(record_path, cfg) is not None:
        progress({"event": "skip", "name": stem, "status": "skipped"})
        return RunResult(stem, "skipped", str(record_path))

    tmodel = teacher.model
    torch.manual_seed(cfg.seed * 1000 + stage * 45 + block)
    cell = make_cell(block, stage)
    if cfg.init == "remap":
        remap_into(cell, tmodel.stages[stage][0])
    cell.to(device)
    optimizer = make_optimizer(cell.parameters(), cfg)
    scheduler = make_scheduler(optimizer, cfg)
    loop = EpochLoop(folder / "checkpoints" / f"{stem}.pt", modules={"cell": cell}, optimizer=optimizer,
                     scheduler=scheduler, fingerprint=cfg.fingerprint(), device=device)
    if not loop.restore():
        loop.metrics["val_mse_initial"] = [_stage_mse(cell, tmodel, data.val_x, stage, device)]
    x_cpu, _ = _train_subset(data, cfg)
    x = x_cpu.to(device)
    n = len(x)
    batches = math.ceil(n / cfg.batch_size)
    progress({"event": "start", "name": stem, "model": f"stage {stage} {info.name}", "epochs": cfg.epochs,
              "batches": batches, "start_epoch": loop.epoch})

    epoch_fn = _distill_epoch_fn(cell, tmodel, optimizer, data, x, stage, cfg, device, stem, progress)
    loop.run(cfg.epochs, epoch_fn)
    if "teacher_val" not in cache:
        cache["teacher_val"] = evaluate(tmodel, data.val_x, data.val_y, device=device)["top1"]
    swapped = copy.deepcopy(tmodel)
    swapped.stages[stage][0] = cell
    swapped_val = evaluate(swapped, data.val_x, data.val_y, device=device)["top1"]
    cell.eval()
    save_torch(folder / "blocks" / f"{stem}.pt", {"teacher": teacher.model_hash, "stage": stage, "block_id": block,
                                                  "block_name": info.name, "epochs": cfg.epochs, "init": cfg.init,
                                                  "state_dict": {k: v.detach().cpu() for k, v in cell.state_dict().items()}})
    metrics = dict(loop.metrics)
    initial = metrics.pop("val_mse_initial", [None])[0]
    record = {"schema": TRAINING_RECORD_SCHEMA, "kind": "distill-block", "teacher": teacher.model_hash, "teacher_seed": teacher.seed,
              "epochs": cfg.epochs, "seed": cfg.seed, "stage": stage, "block_id": block, "block_name": info.name,
              "init": cfg.init, "fraction": cfg.fraction,
              "distill_loss": metrics["distill_loss"][-1], "val_mse_initial": initial, "val_mse": metrics["val_mse"][-1],
              "val_acc_delta": swapped_val - cache["teacher_val"], "teacher_val_top1": cache["teacher_val"],
              "swapped_val_top1": swapped_val, "metrics": metrics, "train_time_s": loop.train_time_s,
              "resumed_from_epoch": loop.resumed_from, "config": cfg.to_dict(),
              "data": _data_info(data, cfg, n), "environment": environment(device, cfg.seed)}
    atomic_write_json(record_path, record)
    loop.discard()
    summary = {"distill_loss": record["distill_loss"], "val_mse_initial": initial, "val_mse": record["val_mse"],
               "val_acc_delta": record["val_acc_delta"]}
    progress({"event": "done", "name": stem, **summary})
    return RunResult(stem, "done", str(record_path), None, summary)
