"""Calibration (and int8 agreement) inputs: seeded random tensors, or real CIFAR-100 images.

A calibration path is read with :mod:`blox_lat._cifar`: the binary release
(``cifar-100-binary.tar.gz`` or its folder) by default; the python release (pickles) only when
the export opts in with ``-O allow_pickle=yes``, and then through a restricted unpickler.
Nothing is ever unpickled by default. The test split is used (train if test is absent).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from blox_lat import _cifar
from blox_lat.exporters._errors import ExportError

CIFAR_MEAN = np.array([0.5071, 0.4865, 0.4409], dtype=np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2673, 0.2564, 0.2762], dtype=np.float32).reshape(1, 3, 1, 1)
_PREFIX = "cifar100:"


def calibration_identity(value: str, allow_pickle: bool = False) -> str:
    """Canonical option text for a calibration path (read now, so errors come early)."""
    text = value[len(_PREFIX):] if value.startswith(_PREFIX) else value
    path = Path(text).expanduser()
    if not path.exists():
        raise ExportError(
            f"calibration path {text!r} does not exist; give 'random' or the path of "
            "cifar-100-binary.tar.gz (or its folder)"
        )
    cifar100_images(str(path.resolve()), allow_pickle)
    return _PREFIX + str(path.resolve())


def calibration_inputs(source: str, count: int, batch: int, *, seed: int = 0,
                       allow_pickle: bool = False) -> list[np.ndarray]:
    """``count`` float32 inputs of shape (batch, 3, 32, 32) from ``random`` or a CIFAR-100 path."""
    if source == "random":
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((batch, 3, 32, 32), dtype=np.float32) for _ in range(count)]
    images = cifar100_images(calibration_identity(source, allow_pickle)[len(_PREFIX):], allow_pickle)
    need = count * batch
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=need, replace=need > len(images))
    data = (images[picks].astype(np.float32) / 255.0 - CIFAR_MEAN) / CIFAR_STD
    return [np.ascontiguousarray(data[i * batch:(i + 1) * batch]) for i in range(count)]


@lru_cache(maxsize=4)
def cifar100_images(path: str, allow_pickle: bool = False) -> np.ndarray:
    """uint8 images (N, 3, 32, 32) of the CIFAR-100 test split (train if test is absent)."""
    root = Path(path)
    last: _cifar.CifarDataError | None = None
    for split in ("test", "train"):
        try:
            splits, _names = _cifar.read_cifar100(root, (split,), allow_pickle=allow_pickle)
            return splits[split][0]
        except _cifar.CifarDataError as exc:
            if "lacks" not in str(exc):
                raise ExportError(f"calibration data: {exc}".replace("--allow-pickle", "-O allow_pickle=yes")) from None
            last = exc
    raise ExportError(f"calibration data: {last}".replace("--allow-pickle", "-O allow_pickle=yes"))
