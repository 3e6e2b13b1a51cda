"""The PyTorch model of a Blox architecture, exactly as the reference builds it (SPEC 1).

Imported lazily (torch is heavy): use ``blox_lat.space.build_model``. Every convolution is
``Conv2d(bias=True)`` + BatchNorm2d + ReLU unless noted; dead operations (whose output cannot
reach the cell output) are not instantiated, so parameter counts equal the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from blox_lat.space._arch import Arch, resolve
from blox_lat.space._vector import OPS

STEM_CHANNELS = 32
INPUT_SHAPE = (3, 32, 32)


class ConvBnRelu(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=True),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=False),
        )


class SqueezeExcitation(nn.Module):
    """GAP -> 1x1 conv (ch->ch, bias) -> ReLU -> 1x1 conv -> sigmoid -> scale (no BN)."""

    def __init__(self, ch: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(ch, ch, 1, bias=True)
        self.relu = nn.ReLU(inplace=False)
        self.fc2 = nn.Conv2d(ch, ch, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_op(c: int) -> nn.Module:
    """Four 3x3 convolutions C -> C."""
    return nn.Sequential(*[ConvBnRelu(c, c, 3, padding=1) for _ in range(4)])


def mbconv_op(c: int) -> nn.Module:
    """Two residual repeats of [3x3 C->2C; SE(2C); 1x1 2C->C]."""
    return nn.Sequential(
        *[
            Residual(nn.Sequential(ConvBnRelu(c, 2 * c, 3, padding=1), SqueezeExcitation(2 * c), ConvBnRelu(2 * c, c, 1)))
            for _ in range(2)
        ]
    )


def bconv_op(c: int) -> nn.Module:
    """Six residual repeats of [1x1 C->w; depthwise 5x5 w->w; 1x1 w->C], w cycling C/2, C, 2C."""
    widths = [c // 2, c, 2 * c] * 2
    return nn.Sequential(
        *[
            Residual(nn.Sequential(ConvBnRelu(c, w, 1), ConvBnRelu(w, w, 5, padding=2, groups=w), ConvBnRelu(w, c, 1)))
            for w in widths
        ]
    )


OP_BUILDERS = {"conv": conv_op, "mbconv": mbconv_op, "bconv": bconv_op}


class Cell(nn.Module):
    """One stage's two-node cell (SPEC "Cell semantics"), dead operations omitted."""

    def __init__(self, digits: tuple[int, int, int, int, int], channels: int):
        super().__init__()
        op0, op1, prev, use_input, skip = digits
        self.prev, self.use_input, self.skip = bool(prev), bool(use_input), bool(skip)
        self.has_op1 = self.prev or self.use_input
        needs_a = self.prev or self.skip
        self.op0 = OP_BUILDERS[OPS[op0]](channels) if needs_a else None
        self.op1 = OP_BUILDERS[OPS[op1]](channels) if self.has_op1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.op0(x) if self.op0 is not None else x
        if self.op1 is None:
            return a
        if self.prev and self.use_input:
            z = a + x
        elif self.prev:
            z = a
        else:
            z = x
        b = self.op1(z)
        if self.skip:
            b = b + a
        return b


class Reduction(nn.Module):
    """3x3/2 then 3x3 main path plus a 2x2/2 projection; crop by one pixel if sizes differ.

    On an odd input size the main path is one pixel larger than the projection. With the input
    size known (``in_hw``) the crop is decided here, so traced and exported graphs carry no
    shape test; the 32x32 Blox input never needs it.
    """

    def __init__(self, cin: int, cout: int, in_hw: int):
        super().__init__()
        self.main = nn.Sequential(ConvBnRelu(cin, cout, 3, stride=2, padding=1), ConvBnRelu(cout, cout, 3, padding=1))
        self.proj = ConvBnRelu(cin, cout, 2, stride=2)
        self.out_hw = (in_hw - 2) // 2 + 1
        self.crop = (in_hw - 1) // 2 + 1 != self.out_hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.main(x)
        if self.crop:
            main = main[..., : self.out_hw, : self.out_hw]
        return main + self.proj(x)


class BloxNet(nn.Module):
    """Stem, three (cell, reduction) stages at 32/64/128 channels, GAP and a linear head."""

    def __init__(self, arch: Arch, num_classes: int = 100, input_hw: int = INPUT_SHAPE[1]):
        super().__init__()
        self.arch_hash = arch.hash
        self.stem = ConvBnRelu(INPUT_SHAPE[0], STEM_CHANNELS, 3, padding=1)
        stages = []
        c, hw = STEM_CHANNELS, input_hw
        for (op0,), (op1, prev, use_input, skip) in arch.vector:
            reduction = Reduction(c, 2 * c, hw)
            stages.append(nn.Sequential(Cell((op0, op1, prev, use_input, skip), c), reduction))
            c, hw = 2 * c, reduction.out_hw
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.classifier(torch.flatten(self.pool(x), 1))


def build_model(arch, num_classes: int = 100, input_hw: int = INPUT_SHAPE[1]) -> BloxNet:
    """A freshly initialised ``nn.Module`` for any model name (see ``resolve``)."""
    return BloxNet(resolve(arch), num_classes=num_classes, input_hw=input_hw)


def count_params(module: nn.Module) -> int:
    """Trainable parameters (the reference's count)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
