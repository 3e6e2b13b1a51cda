"""CIFAR-100 from a local copy (read by :mod:`blox_lat._cifar`); fixed train/val/test split.

The source is ``cifar-100-binary.tar.gz`` / ``cifar-100-binary/`` (plain bytes, the default) or,
only with ``allow_pickle=True`` (``--allow-pickle``), the python version
``cifar-100-python.tar.gz`` / ``cifar-100-python/`` (pickles, read through a restricted
unpickler), given as a path or through ``$BLOX_LAT_CIFAR100``. Nothing is ever downloaded.

Split (as the Blox reference): validation is taken from the 50,000 training images, 45,000 /
5,000, by a permutation seeded with ``split_seed`` (default 0, shared by every model so all
models see the same split); the 10,000 test images are the official test set. A smaller copy
(test fixtures) keeps the same 9:1 ratio. Images stay uint8 ``(N, 3, 32, 32)`` tensors;
normalisation with :data:`CIFAR100_MEAN` / :data:`CIFAR100_STD` happens per batch, on the
training device (see :mod:`blox_lat.training._augment`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blox_lat import _cifar
from blox_lat.training._errors import DataError

__all__ = ["CIFAR100_MEAN", "CIFAR100_STD", "ENV_VAR", "CifarData", "find_cifar100", "load_cifar100", "subset_indices"]

ENV_VAR = "BLOX_LAT_CIFAR100"
#: the Blox reference's CIFAR-100 normalisation (per channel, on [0, 1] images)
CIFAR100_MEAN = (0.5070588235294118, 0.48666666666666664, 0.4407843137254902)
CIFAR100_STD = (0.26745098039215687, 0.2564705882352941, 0.27607843137254906)
FULL_TRAIN, FULL_VAL = 45000, 5000


def find_cifar100(path: str | os.PathLike[str] | None = None) -> Path:
    """The archive or folder to read: ``path``, else ``$BLOX_LAT_CIFAR100``; checked to exist."""
    try:
        return _cifar.find_cifar100(path, ENV_VAR)
    except _cifar.CifarDataError as exc:
        raise DataError(str(exc)) from None


@dataclass(frozen=True)
class CifarData:
    """The three splits as uint8 ``(N, 3, 32, 32)`` / int64 tensors (CPU), plus provenance."""

    train_x: "object"
    train_y: "object"
    val_x: "object"
    val_y: "object"
    test_x: "object"
    test_y: "object"
    classes: tuple[str, ...]
    source: str
    split_seed: int

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train_y), len(self.val_y), len(self.test_y)

    def limited(self, train: int | None = None, evaluation: int | None = None) -> "CifarData":
        """The first ``train`` training and ``evaluation`` val/test images (tests, smoke runs)."""
        t = slice(None, train)
        e = slice(None, evaluation)
        return CifarData(self.train_x[t], self.train_y[t], self.val_x[e], self.val_y[e], self.test_x[e], self.test_y[e],
                         self.classes, self.source, self.split_seed)


def load_cifar100(path: str | os.PathLike[str] | None = None, *, split_seed: int = 0,
                  allow_pickle: bool = False) -> CifarData:
    """Read CIFAR-100 (see the module docstring) and split it 45,000 / 5,000 / 10,000.

    ``allow_pickle`` lets the python (pickle) version be read; without it only the binary
    version is.
    """
    import torch

    p = find_cifar100(path)
    try:
        splits, classes = _cifar.read_cifar100(p, ("train", "test"), allow_pickle=allow_pickle)
    except _cifar.CifarDataError as exc:
        raise DataError(str(exc)) from None
    (tx, ty), (sx, sy) = splits["train"], splits["test"]
    n = len(ty)
    n_val = FULL_VAL if n == FULL_TRAIN + FULL_VAL else max(1, n // 10)
    if n <= n_val:
        raise DataError(f"{p}:train holds {n} images, too few to split off a validation set; {_cifar.EXPECTED}")
    perm = np.random.default_rng(split_seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])

    def t(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))

    return CifarData(t(tx[train_idx]), t(ty[train_idx]), t(tx[val_idx]), t(ty[val_idx]), t(sx), t(sy),
                     classes, str(p), split_seed)


def subset_indices(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A fixed subset of ``round(n * fraction)`` training indices (low-fidelity runs), sorted."""
    k = max(1, int(round(n * fraction)))
    return np.sort(np.random.default_rng(10_000 + seed).permutation(n)[:k])
