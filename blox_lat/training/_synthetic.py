"""A tiny CIFAR-100 copy in an official layout (tests, smoke runs, benchmarks).

Images of class ``c`` (``c < classes``) are a class colour plus a class-dependent stripe
pattern and noise, so a model learns them in a few epochs. ``version="binary"`` writes the
binary release (``train.bin`` / ``test.bin`` records, ``fine_label_names.txt``);
``version="python"`` writes real pickles of dicts with ``b'data'`` / ``b'fine_labels'`` like the
official ``train`` / ``test`` / ``meta``.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

__all__ = ["synthetic_images", "write_synthetic_cifar100", "write_tar"]


def synthetic_images(n: int, classes: int, rng: np.random.Generator, noise: float = 20.0) -> tuple[np.ndarray, list[int]]:
    palette = np.random.default_rng(1234).integers(30, 226, size=(classes, 3))
    labels = rng.integers(0, classes, size=n)
    img = np.empty((n, 3, 32, 32), dtype=np.float64)
    img[:] = palette[labels][:, :, None, None]
    rows = np.arange(32)[None, :, None]
    period = 2 + labels % 5
    stripes = ((rows // period[:, None, None]) % 2) * 30.0  # horizontal stripes of a class period
    img += stripes[:, None, :, :]
    img += rng.normal(0, noise, size=img.shape)
    data = np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)
    return data, [int(v) for v in labels]


def _dump(obj: dict) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _binary(data: np.ndarray, labels: list[int]) -> bytes:
    """Binary-release records: coarse label, fine label, 3,072 pixel bytes."""
    fine = np.asarray(labels, dtype=np.uint8)[:, None]
    return np.hstack([fine // 5, fine, data]).astype(np.uint8).tobytes()


def write_synthetic_cifar100(path: str | os.PathLike[str], *, n_train: int = 500, n_test: int = 100, classes: int = 10,
                             seed: int = 0, fmt: str = "tar", version: str = "binary") -> Path:
    """Write ``cifar-100-<version>.tar.gz`` (``fmt="tar"``) or its folder into ``path``."""
    if version not in ("binary", "python"):
        raise ValueError(f"version must be 'binary' or 'python', got {version!r}")
    rng = np.random.default_rng(seed)
    files = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data, labels = synthetic_images(n, classes, rng)
        if version == "binary":
            files[f"{name}.bin"] = _binary(data, labels)
        else:
            files[name] = _dump({b"filenames": [f"img{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
                                 b"fine_labels": labels, b"coarse_labels": [v // 5 for v in labels], b"data": data})
    if version == "binary":
        files["fine_label_names.txt"] = "".join(f"class{i}\n" for i in range(100)).encode()
    else:
        files["meta"] = _dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                               b"coarse_label_names": [f"super{i}".encode() for i in range(20)]})
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    stem = f"cifar-100-{version}"
    if fmt == "folder":
        folder = root / stem
        folder.mkdir(exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return folder
    return write_tar(root / f"{stem}.tar.gz", stem, files)


def write_tar(archive: Path, stem: str, files: dict[str, bytes]) -> Path:
    """A ``.tar.gz`` holding ``stem/<name>`` for every file (the official archives' layout)."""
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive
