"""Analytic cost of a model (MACs, FLOPs, parameters) without building it or importing torch.

Convention (the one thop/fvcore use and the NAS literature calls "FLOPs"): ``macs`` counts the
multiply-accumulates of every Conv2d and Linear layer (batch 1, 3x32x32 input), including the
squeeze-excitation 1x1 convolutions; biases, BatchNorm, activations, pooling, residual additions
and the SE multiply are not counted. ``flops = 2 * macs``. A test checks these numbers
against forward hooks on the built PyTorch model.
"""

from __future__ import annotations

from functools import lru_cache

from blox_lat.space._arch import Arch, resolve
from blox_lat.space._vector import OPS

INPUT_HW = 32
STEM_CHANNELS = 32
NUM_CLASSES = 100


def _conv(cin: int, cout: int, k: int, hw_out: int, groups: int = 1) -> int:
    return cout * hw_out * hw_out * (cin // groups) * k * k


def op_macs(op: str, c: int, hw: int) -> int:
    """MACs of one operation at ``c`` channels on an ``hw`` x ``hw`` map."""
    if op == "conv":
        return 4 * _conv(c, c, 3, hw)
    if op == "mbconv":
        se = 2 * _conv(2 * c, 2 * c, 1, 1)
        return 2 * (_conv(c, 2 * c, 3, hw) + se + _conv(2 * c, c, 1, hw))
    if op == "bconv":
        return sum(
            _conv(c, w, 1, hw) + _conv(w, w, 5, hw, groups=w) + _conv(w, c, 1, hw) for w in [c // 2, c, 2 * c] * 2
        )
    raise ValueError(f"unknown op {op!r}")


def _reduction(cin: int, cout: int, hw_in: int) -> int:
    hw = (hw_in + 2 - 3) // 2 + 1
    return _conv(cin, cout, 3, hw) + _conv(cout, cout, 3, hw) + _conv(cin, cout, 2, (hw_in - 2) // 2 + 1)


@lru_cache(maxsize=None)
def _macs_of_blocks(blocks: tuple[int, int, int]) -> int:
    from blox_lat.space._blocks import list_blocks

    total = _conv(3, STEM_CHANNELS, 3, INPUT_HW)
    c, hw = STEM_CHANNELS, INPUT_HW
    for b in blocks:
        block = list_blocks()[b]
        op0, op1, prev, use_input, skip = block.digits
        if prev or skip:
            total += op_macs(OPS[op0], c, hw)
        if prev or use_input:
            total += op_macs(OPS[op1], c, hw)
        total += _reduction(c, 2 * c, hw)
        c, hw = 2 * c, (hw + 1) // 2
    return total + c * NUM_CLASSES


def macs(arch) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (see module docstring)."""
    a: Arch = resolve(arch)
    return _macs_of_blocks(a.blocks)


def flops(arch) -> int:
    """``2 * macs(arch)``."""
    return 2 * macs(arch)


def _conv_params(cin: int, cout: int, k: int, groups: int = 1, bn: bool = True) -> int:
    return (cin // groups) * cout * k * k + cout + (2 * cout if bn else 0)


def op_params(op: str, c: int) -> int:
    """Trainable parameters of one operation at ``c`` channels (conv bias + BN affine)."""
    if op == "conv":
        return 4 * _conv_params(c, c, 3)
    if op == "mbconv":
        se = 2 * _conv_params(2 * c, 2 * c, 1, bn=False)
        return 2 * (_conv_params(c, 2 * c, 3) + se + _conv_params(2 * c, c, 1))
    if op == "bconv":
        return sum(
            _conv_params(c, w, 1) + _conv_params(w, w, 5, groups=w) + _conv_params(w, c, 1) for w in [c // 2, c, 2 * c] * 2
        )
    raise ValueError(f"unknown op {op!r}")


@lru_cache(maxsize=None)
def _params_of_blocks(blocks: tuple[int, int, int], num_classes: int) -> int:
    from blox_lat.space._blocks import list_blocks

    total = _conv_params(3, STEM_CHANNELS, 3)
    c = STEM_CHANNELS
    for b in blocks:
        op0, op1, prev, use_input, skip = list_blocks()[b].digits
        if prev or skip:
            total += op_params(OPS[op0], c)
        if prev or use_input:
            total += op_params(OPS[op1], c)
        total += _conv_params(c, 2 * c, 3) + _conv_params(2 * c, 2 * c, 3) + _conv_params(c, 2 * c, 2)
        c *= 2
    return total + c * num_classes + num_classes


def params(arch, num_classes: int = NUM_CLASSES) -> int:
    """Trainable parameters of the reference PyTorch model (equal to ``count_params``)."""
    return _params_of_blocks(resolve(arch).blocks, num_classes)
