"""Blocks of a trained model: stage inputs/outputs, candidate cells, parameter remapping, the
block library and students assembled from it.

A "block" is the cell of one stage (one of the 45 blocks of ``blox_lat.space.list_blocks()``)
at that stage's width (32, 64, 128 channels). Distillation and fine-tuning replace only cells:
the stem, the three reductions and the classifier are always the teacher's (trained) ones.

Teacher files are the weights a ``normal`` run saves (``normal/weights/<hash>-<seed>.pt``):
``{"model_hash", "seed", "state_dict"}``. Library files are
``<distill dir>/blocks/s<stage>-b<block_id>.pt``: ``{"teacher", "stage", "block_id",
"block_name", "epochs", "state_dict"}``. All are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blox_lat.training._errors import CheckpointError
from blox_lat.training._records import load_torch

__all__ = ["Teacher", "assemble_student", "load_library_block", "load_teacher", "make_cell", "remap_into", "stage_io"]

STAGE_CHANNELS = (32, 64, 128)


@dataclass
class Teacher:
    model: Any  # BloxNet in eval mode
    model_hash: str
    seed: int | None
    path: str


def load_teacher(path: str | Path, device: str = "cpu") -> Teacher:
    """A teacher saved by a ``normal`` run (weights file), rebuilt and loaded, in eval mode."""
    from blox_lat import space as sp

    obj = load_torch(path, "teacher")
    h, state = obj.get("model_hash"), obj.get("state_dict")
    if not isinstance(h, str) or not isinstance(state, dict):
        raise CheckpointError(f"teacher {path} is not a weights file of `blox-lat train normal` (normal/weights/*.pt)")
    try:
        model = sp.build_model(h)
    except Exception as exc:  # an unknown hash is a BloxLatError too
        raise CheckpointError(f"teacher {path}: {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"teacher {path}: weights do not fit model {h} ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(model, h, obj.get("seed"), str(path))


def stage_io(model, x, upto: int = 2) -> list[tuple[Any, Any]]:
    """``[(cell input, cell output)]`` of stages ``0..upto`` for a normalised batch ``x``."""
    out = []
    h = model.stem(x)
    for s in range(upto + 1):
        cell, reduction = model.stages[s][0], model.stages[s][1]
        y = cell(h)
        out.append((h, y))
        if s < upto:
            h = reduction(y)
    return out


def make_cell(block_id: int, stage: int):
    """A freshly initialised cell of block ``block_id`` at stage ``stage``'s width."""
    from blox_lat import space as sp
    from blox_lat.space import Cell

    return Cell(sp.list_blocks()[block_id].digits, STAGE_CHANNELS[stage])


def _layers(module) -> list[tuple[str, Any, Any]]:
    """(kind, conv, following BN or None) in definition order; kind: dense / depthwise / se."""
    from torch import nn

    mods = list(module.modules())
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d) else None
            kind = "se" if bn is None else ("depthwise" if m.groups > 1 else "dense")
            out.append((kind, m, bn))
    return out


def _copy_prefix(dst, src) -> None:
    """Copy the leading slice of ``src`` into ``dst`` on every dim; kernels (dims 2, 3) centred."""
    import torch

    if dst.dim() != src.dim():
        return
    dslices, sslices = [], []
    for d, (a, b) in enumerate(zip(dst.shape, src.shape)):
        n = min(a, b)
        if d >= 2:  # spatial: align centres (3x3 <- 5x5 takes the middle, 5x5 <- 3x3 fills it)
            dslices.append(slice((a - n) // 2, (a - n) // 2 + n))
            sslices.append(slice((b - n) // 2, (b - n) // 2 + n))
        else:
            dslices.append(slice(0, n))
            sslices.append(slice(0, n))
    with torch.no_grad():
        dst[tuple(dslices)].copy_(src[tuple(sslices)])


def remap_into(candidate, reference) -> int:
    """Parameter remapping of a trained ``reference`` cell into ``candidate`` (in place).

    Layer-wise, then channel-wise, as in parameter-remapping NAS work (FNA, and the remapping
    before few-batch distillation): the k-th convolution of a kind (dense, depthwise,
    squeeze-excitation) in the candidate takes the k-th of that kind in the reference, or its
    last one when the reference has fewer; within a layer the leading output/input channels
    are copied (prefix) and kernels are aligned at their centres; a BatchNorm after a
    convolution follows it (weight, bias, running statistics). Layers of a kind the
    reference lacks keep their fresh initialisation. Returns the number of layers remapped.
    """
    src = _layers(reference)
    by_kind: dict[str, list] = {}
    for kind, conv, bn in src:
        by_kind.setdefault(kind, []).append((conv, bn))
    seen: dict[str, int] = {}
    done = 0
    for kind, conv, bn in _layers(candidate):
        pool = by_kind.get(kind)
        k = seen.get(kind, 0)
        seen[kind] = k + 1
        if not pool:
            continue
        sconv, sbn = pool[min(k, len(pool) - 1)]
        _copy_prefix(conv.weight, sconv.weight)
        if conv.bias is not None and sconv.bias is not None:
            _copy_prefix(conv.bias, sconv.bias)
        if bn is not None and sbn is not None:
            for name in ("weight", "bias", "running_mean", "running_var"):
                _copy_prefix(getattr(bn, name), getattr(sbn, name))
        done += 1
    return done


def load_library_block(library: Path, stage: int, block_id: int, teacher_hash: str) -> dict:
    """The state dict of one distilled block; a clear error when it is missing or foreign."""
    path = Path(library) / "blocks" / f"s{stage}-b{block_id}.pt"
    if not path.exists():
        from blox_lat import space as sp

        raise CheckpointError(f"block library {library} lacks stage {stage} block {block_id} "
                              f"({sp.list_blocks()[block_id].name}); distill it first (`blox-lat train distill`)")
    obj = load_torch(path, "library block")
    if obj.get("teacher") != teacher_hash:
        raise CheckpointError(f"{path} was distilled from teacher {obj.get('teacher')}, not {teacher_hash}")
    if not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError(f"{path} holds no state_dict; delete it and distill that block again")
    return obj["state_dict"]


def assemble_student(arch, teacher: Teacher, library: Path):
    """The model ``arch`` with the teacher's stem, reductions and head and distilled cells."""
    import copy

    from blox_lat import space as sp

    arch = sp.resolve(arch)
    student = sp.build_model(arch)
    t = teacher.model
    student.stem.load_state_dict(t.stem.state_dict())
    student.classifier.load_state_dict(t.classifier.state_dict())
    for s in range(3):
        student.stages[s][1].load_state_dict(t.stages[s][1].state_dict())
        student.stages[s][0].load_state_dict(load_library_block(library, s, arch.blocks[s], teacher.model_hash))
    student = copy.deepcopy(student)  # fresh parameters (requires_grad on), no ties to the teacher
    for p in student.parameters():
        p.requires_grad_(True)
    return student
