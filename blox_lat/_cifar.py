"""Reading a local CIFAR-100 copy, shared by training (all splits) and int8 calibration (images).

Two official releases exist (https://www.cs.toronto.edu/~kriz/cifar.html):

- the **binary** version, ``cifar-100-binary.tar.gz`` or its folder ``cifar-100-binary/``
  (``train.bin``, ``test.bin``: records of 1 coarse-label byte, 1 fine-label byte and 3,072
  pixel bytes; ``fine_label_names.txt``). Plain bytes: read by default.
- the **python** version, ``cifar-100-python.tar.gz`` or ``cifar-100-python/`` (``train``,
  ``test``, ``meta``): Python pickles. Unpickling can run code, so it is read only when the
  caller opts in (``allow_pickle=True``; ``--allow-pickle`` on the CLI), and then through a
  restricted unpickler that can only rebuild numpy arrays and byte strings.

Nothing is ever downloaded; a tar archive is read in memory (nothing is extracted to disk).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from blox_lat._unpickle import NUMPY_ARRAYS, restricted_loads
from blox_lat.errors import BloxLatError

__all__ = ["CifarDataError", "EXPECTED", "find_cifar100", "read_cifar100"]

BINARY_FILES = ("train.bin", "test.bin", "fine_label_names.txt")
PYTHON_FILES = ("train", "test", "meta")
CANDIDATES = ("cifar-100-binary", "cifar-100-binary.tar.gz", "cifar-100-python", "cifar-100-python.tar.gz")
EXPECTED = ("expected cifar-100-binary.tar.gz or its folder cifar-100-binary/ (train.bin, test.bin), or, "
            "with --allow-pickle, cifar-100-python.tar.gz or its folder cifar-100-python/ holding the files "
            "train, test, meta (https://www.cs.toronto.edu/~kriz/cifar.html)")
_RECORD = 2 + 3072


class CifarDataError(BloxLatError):
    """The CIFAR-100 copy is missing, incomplete, damaged, or a pickle the caller did not allow."""


def _unpickle(data: bytes, label: str) -> dict:
    try:
        obj = restricted_loads(data, NUMPY_ARRAYS, encoding="bytes")  # arrays, dicts, lists, strings, ints
    except Exception as exc:  # any failure of a damaged or hostile file is the same user error
        raise CifarDataError(f"{label} is damaged or not a CIFAR-100 python file ({type(exc).__name__}: {exc}); {EXPECTED}") from None
    if not isinstance(obj, dict):
        raise CifarDataError(f"{label} does not hold a dict; {EXPECTED}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def find_cifar100(path: str | os.PathLike[str] | None, env_var: str) -> Path:
    """The archive or folder to read: ``path``, else ``$env_var``; checked to exist."""
    if path is None:
        path = os.environ.get(env_var)
        if not path:
            raise CifarDataError(f"no CIFAR-100 data: pass --data PATH or set {env_var}; {EXPECTED}")
    p = Path(path).expanduser()
    if p.is_dir() and not any((p / f).exists() for f in ("train", "train.bin")):
        for candidate in CANDIDATES:
            if (p / candidate).exists():
                return p / candidate
    if not p.exists():
        raise CifarDataError(f"CIFAR-100 data {p} does not exist; {EXPECTED}")
    return p


def _members(p: Path) -> dict[str, bytes]:
    """Every CIFAR file present in the folder or archive, by base name."""
    wanted = set(BINARY_FILES) | set(PYTHON_FILES)
    if p.is_dir():
        return {f: (p / f).read_bytes() for f in sorted(wanted) if (p / f).is_file()}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(p, "r:*") as tar:
            for member in tar.getmembers():
                name = member.name.rstrip("/").split("/")[-1]
                if member.isfile() and name in wanted and name not in found:
                    fh = tar.extractfile(member)
                    found[name] = fh.read() if fh is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CifarDataError(f"{p} is not a readable tar.gz archive ({exc}); {EXPECTED}") from None
    return found


def _check_images(data: object, labels: object, label: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CifarDataError(f"{label}: 'data' must be a uint8 array of shape (N, 3072); {EXPECTED}")
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() > 99)):
        raise CifarDataError(f"{label}: 'fine_labels' must hold one label 0..99 per image; {EXPECTED}")
    return data.reshape(-1, 3, 32, 32), y


def _binary_split(blob: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    if not blob or len(blob) % _RECORD:
        raise CifarDataError(f"{label} is damaged: {len(blob)} bytes is not a whole number of "
                             f"{_RECORD}-byte CIFAR-100 records; {EXPECTED}")
    rows = np.frombuffer(blob, dtype=np.uint8).reshape(-1, _RECORD)
    return _check_images(np.ascontiguousarray(rows[:, 2:]), rows[:, 1], label)


def read_cifar100(p: Path, splits: tuple[str, ...] = ("train", "test"), *,
                  allow_pickle: bool = False) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """``{split: (uint8 images (N, 3, 32, 32), int64 fine labels)}`` and the 100 class names."""
    members = _members(p)
    if any(f"{s}.bin" in members for s in splits) or "fine_label_names.txt" in members:
        missing = [f"{s}.bin" for s in splits if f"{s}.bin" not in members]
        if missing:
            raise CifarDataError(f"{p} lacks {', '.join(missing)}; {EXPECTED}")
        names = members.get("fine_label_names.txt", b"").decode("utf-8", "replace").split()
        return {s: _binary_split(members[f"{s}.bin"], f"{p}:{s}.bin") for s in splits}, tuple(names)
    if not allow_pickle:
        kind = "is" if any(s in members for s in PYTHON_FILES) else "is not a CIFAR-100 copy, nor"
        raise CifarDataError(
            f"{p} {kind} the python (pickle) version of CIFAR-100: unpickling can run code, so it is read only "
            "with --allow-pickle (through a restricted unpickler); or use cifar-100-binary.tar.gz, read without "
            "unpickling"
        )
    needed = [*splits, "meta"]
    missing = [f for f in needed if f not in members]
    if missing:
        raise CifarDataError(f"{p} lacks {', '.join(missing)}; {EXPECTED}")
    out = {}
    for s in splits:
        d = _unpickle(members[s], f"{p}:{s}")
        out[s] = _check_images(d.get("data"), d.get("fine_labels"), f"{p}:{s}")
    meta = _unpickle(members["meta"], f"{p}:meta")
    names = meta.get("fine_label_names") or []
    return out, tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
