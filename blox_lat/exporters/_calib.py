"""Calibration (and int8 agreement) inputs: seeded random tensors, or real CIFAR-100 images.

CIFAR-100's python-format release (``cifar-100-python.tar.gz``, or the folder it extracts to
with the ``train``/``test`` files) stores its arrays as Python pickles. Unpickling can run
arbitrary code, so it happens ONLY when the user explicitly names that path (the
``calibration=<path>`` option); it is read through ``numpy.load(allow_pickle=True)`` from the
named file, and nothing is ever unpickled by default.
"""

from __future__ import annotations

import io
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from blox_lat.exporters._errors import ExportError

CIFAR_MEAN = np.array([0.5071, 0.4865, 0.4409], dtype=np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2673, 0.2564, 0.2762], dtype=np.float32).reshape(1, 3, 1, 1)
_PREFIX = "cifar100:"


def calibration_identity(value: str) -> str:
    """Canonical option text for a calibration path (checked now, so errors come early)."""
    text = value[len(_PREFIX):] if value.startswith(_PREFIX) else value
    path = Path(text).expanduser()
    if not path.exists():
        raise ExportError(
            f"calibration path {text!r} does not exist; give 'random' or the path of "
            "cifar-100-python.tar.gz (or its extracted cifar-100-python folder)"
        )
    if path.is_dir():
        if not (path / "test").is_file() and not (path / "train").is_file():
            raise ExportError(f"{text!r} holds no CIFAR-100 'test' or 'train' file; point at the cifar-100-python folder")
    elif not path.name.endswith((".tar.gz", ".tgz")):
        raise ExportError(f"{text!r} is not a CIFAR-100 python archive (cifar-100-python.tar.gz) or folder")
    return _PREFIX + str(path.resolve())


def calibration_inputs(source: str, count: int, batch: int, *, seed: int = 0) -> list[np.ndarray]:
    """``count`` float32 inputs of shape (batch, 3, 32, 32) from ``random`` or a CIFAR-100 path."""
    if source == "random":
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((batch, 3, 32, 32), dtype=np.float32) for _ in range(count)]
    images = cifar100_images(calibration_identity(source)[len(_PREFIX):])
    need = count * batch
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=need, replace=need > len(images))
    data = (images[picks].astype(np.float32) / 255.0 - CIFAR_MEAN) / CIFAR_STD
    return [np.ascontiguousarray(data[i * batch:(i + 1) * batch]) for i in range(count)]


@lru_cache(maxsize=2)
def cifar100_images(path: str) -> np.ndarray:
    """uint8 images (N, 3, 32, 32) of the CIFAR-100 test split (train if test is absent).

    Unpickles the user-named file (see the module docstring); never called by default.
    """
    root = Path(path)
    if root.is_dir():
        for split in ("test", "train"):
            if (root / split).is_file():
                with open(root / split, "rb") as fh:
                    return _decode(fh.read(), str(root / split))
        raise ExportError(f"{path!r} holds no CIFAR-100 'test' or 'train' file")
    try:
        with tarfile.open(root, "r:gz") as tar:
            for split in ("test", "train"):
                member = next((m for m in tar.getmembers() if m.name.endswith(f"cifar-100-python/{split}")), None)
                if member is not None:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        return _decode(fh.read(), f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ExportError(f"cannot read CIFAR-100 archive {path!r}: {exc}; re-download cifar-100-python.tar.gz") from exc
    raise ExportError(f"{path!r} has no cifar-100-python/test or /train member; is it the python-format archive?")


def _decode(raw: bytes, where: str) -> np.ndarray:
    try:
        obj = np.load(io.BytesIO(raw), allow_pickle=True, encoding="bytes")  # user-named file only
        data = obj[b"data"] if b"data" in obj else obj["data"]
    except Exception as exc:  # any unpickling/format problem is a bad user file
        raise ExportError(f"{where} is not a CIFAR-100 python-format split ({exc.__class__.__name__}: {exc})") from exc
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ExportError(f"{where}: expected an (N, 3072) 'data' array, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32)
