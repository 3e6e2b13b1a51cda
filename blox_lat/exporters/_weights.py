"""Deterministic weights: every export of a model carries the same, seeded, fresh weights.

Latency does not depend on weights, but fixed weights make artifacts content-addressable and
reproducible. A model is stem + three (cell, reduction) stages + head; each *piece* is
initialised from its own seed, derived from what the piece is (``stem``, ``cell/<stage>/<block
id>``, ``reduction/<stage>``, ``head``): ``reset_parameters()`` of its submodules in module
order under ``torch.manual_seed(seed)``, then BatchNorm affine parameters and running
statistics drawn from the same generator (so exports exercise BatchNorm folding). Hence a model's
weights are a pure function of its hash, and two models that share a block at a stage share
that block's weights, which is what lets the fast exporters build pieces once.
"""

from __future__ import annotations

import hashlib

from blox_lat.space import Arch

WEIGHTS_SCHEME = "pieces-v1"


def piece_seed(piece: str) -> int:
    return int.from_bytes(hashlib.sha256(f"blox-lat/{WEIGHTS_SCHEME}/{piece}".encode()).digest()[:7], "big")


def init_piece(module, piece: str):
    """Re-initialise ``module`` in place from the seed of ``piece``; returns it in eval mode."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(piece_seed(piece))
        with torch.no_grad():
            for sub in module.modules():
                if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    sub.weight.uniform_(0.5, 1.5)
                    sub.bias.normal_(0.0, 0.1)
                    sub.running_mean.normal_(0.0, 0.1)
                    sub.running_var.uniform_(0.5, 1.5)
                elif hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
    return module.eval()


def piece_names(arch: Arch) -> list[str]:
    """Names of the pieces of a model, in data-flow order."""
    names = ["stem"]
    for stage, block in enumerate(arch.blocks):
        names += [f"cell/{stage}/{block}", f"reduction/{stage}"]
    return names + ["head"]


def seeded_model(arch: Arch):
    """The model built directly (``space.build_model``) with the deterministic weights above."""
    from blox_lat.space import build_model

    model = build_model(arch)
    init_piece(model.stem, "stem")
    for stage, block in enumerate(arch.blocks):
        init_piece(model.stages[stage][0], f"cell/{stage}/{block}")
        init_piece(model.stages[stage][1], f"reduction/{stage}")
    init_piece(model.classifier, "head")
    return model.eval()
