"""CIFAR-100 from a local copy of the official python-format archive; fixed train/val/test split.

The source is ``cifar-100-python.tar.gz`` or its extracted folder ``cifar-100-python/`` (files
``train``, ``test``, ``meta``), given as a path or through ``$BLOX_LAT_CIFAR100``. Nothing is
ever downloaded. The official files are pickles; they are read with a restricted unpickler that
can only rebuild numpy arrays (``_reconstruct``, ``ndarray``, ``dtype``) and Python 2 byte
strings (``_codecs.encode``), so a tampered file fails to load instead of running code. A tar
archive is read member by member in memory (nothing is extracted to disk).

Split (as the Blox reference): validation is taken from the 50,000 training images, 45,000 /
5,000, by a permutation seeded with ``split_seed`` (default 0, shared by every model so all
models see the same split); the 10,000 test images are the official test set. A smaller copy
(test fixtures) keeps the same 9:1 ratio. Images stay uint8 ``(N, 3, 32, 32)`` tensors;
normalisation with :data:`CIFAR100_MEAN` / :data:`CIFAR100_STD` happens per batch, on the
training device (see :mod:`blox_lat.training._augment`).
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blox_lat.training._errors import DataError

__all__ = ["CIFAR100_MEAN", "CIFAR100_STD", "ENV_VAR", "CifarData", "find_cifar100", "load_cifar100", "subset_indices"]

ENV_VAR = "BLOX_LAT_CIFAR100"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
FOLDER_NAME = "cifar-100-python"
FILES = ("train", "test", "meta")
#: the Blox reference's CIFAR-100 normalisation (per channel, on [0, 1] images)
CIFAR100_MEAN = (0.5070588235294118, 0.48666666666666664, 0.4407843137254902)
CIFAR100_STD = (0.26745098039215687, 0.2564705882352941, 0.27607843137254906)
FULL_TRAIN, FULL_VAL = 45000, 5000
_EXPECTED = (f"expected {ARCHIVE_NAME} or its folder {FOLDER_NAME}/ holding the files "
             f"{', '.join(FILES)} (the python version from https://www.cs.toronto.edu/~kriz/cifar.html)")


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only what the CIFAR files contain: dicts, lists, strings, ints and numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR-100 file)")


def _unpickle(data: bytes, label: str) -> dict:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any failure of a damaged or hostile file is the same user error
        raise DataError(f"{label} is damaged or not a CIFAR-100 python file ({type(exc).__name__}: {exc}); {_EXPECTED}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{label} does not hold a dict; {_EXPECTED}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def find_cifar100(path: str | os.PathLike[str] | None = None) -> Path:
    """The archive or folder to read: ``path``, else ``$BLOX_LAT_CIFAR100``; checked to exist."""
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise DataError(f"no CIFAR-100 data: pass --data PATH or set {ENV_VAR}; {_EXPECTED}")
    p = Path(path).expanduser()
    if p.is_dir() and not (p / "train").exists():
        for candidate in (p / FOLDER_NAME, p / ARCHIVE_NAME):
            if candidate.exists():
                return candidate
    if not p.exists():
        raise DataError(f"CIFAR-100 data {p} does not exist; {_EXPECTED}")
    return p


def _read_members(p: Path) -> dict[str, bytes]:
    if p.is_dir():
        missing = [f for f in FILES if not (p / f).is_file()]
        if missing:
            raise DataError(f"{p} lacks {', '.join(missing)}; {_EXPECTED}")
        return {f: (p / f).read_bytes() for f in FILES}
    try:
        with tarfile.open(p, "r:*") as tar:
            found: dict[str, bytes] = {}
            for member in tar.getmembers():
                name = member.name.rstrip("/").split("/")[-1]
                if member.isfile() and name in FILES and name not in found:
                    fh = tar.extractfile(member)
                    found[name] = fh.read() if fh is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{p} is not a readable tar.gz archive ({exc}); {_EXPECTED}") from None
    missing = [f for f in FILES if f not in found]
    if missing:
        raise DataError(f"{p} lacks {', '.join(missing)}; {_EXPECTED}")
    return found


def _images(d: dict, label: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = d.get("data"), d.get("fine_labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{label}: 'data' must be a uint8 array of shape (N, 3072); {_EXPECTED}")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() > 99)):
        raise DataError(f"{label}: 'fine_labels' must hold one label 0..99 per image; {_EXPECTED}")
    return data.reshape(-1, 3, 32, 32), y


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


def load_cifar100(path: str | os.PathLike[str] | None = None, *, split_seed: int = 0) -> CifarData:
    """Read CIFAR-100 (see the module docstring) and split it 45,000 / 5,000 / 10,000."""
    import torch

    p = find_cifar100(path)
    members = _read_members(p)
    train = _unpickle(members["train"], f"{p}:train")
    test = _unpickle(members["test"], f"{p}:test")
    meta = _unpickle(members["meta"], f"{p}:meta")
    tx, ty = _images(train, f"{p}:train")
    sx, sy = _images(test, f"{p}:test")
    names = meta.get("fine_label_names") or []
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    n = len(ty)
    n_val = FULL_VAL if n == FULL_TRAIN + FULL_VAL else max(1, n // 10)
    if n <= n_val:
        raise DataError(f"{p}:train holds {n} images, too few to split off a validation set; {_EXPECTED}")
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
