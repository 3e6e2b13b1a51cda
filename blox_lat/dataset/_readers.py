"""Reading build inputs into columns, in worker processes for full-size builds.

A full-size build reads 91,125 training records (2 GB of JSON). Turning each into Python row
dicts in the parent process was most of the build, so a worker parses a chunk of files and
hands back, for every plain ``normal`` training record, one row of a :class:`TrainingBlock`:
the six per-epoch metrics of the chunk's records stacked into one already-rounded float64
matrix, plus lists of the few scalars. The parent only files each record under its model index
(:class:`Ref`) and gathers whole matrices into the section tables.

A record takes this path only when :meth:`_Collector.add_record` would accept it without a
question and produce exactly these values; every other record (other settings, missing or odd
fields, anything that would raise) is handed back parsed as before and goes through
``add_record``, so errors, their wording and their order are unchanged.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from blox_lat.dataset._errors import InputError
from blox_lat.dataset._inputs import load_record
from blox_lat.dataset._schema import ACC_DECIMALS, LOSS_DECIMALS

__all__ = ["METRICS", "Ref", "TrainingBlock", "env_row", "read_json_files", "rounded"]

# per-epoch metrics in block order: base's val_top1, then ext's lists in their column order
METRICS = ("val_top1", "train_top1", "train_loss", "train_top5", "val_loss", "val_top5")
_DIGITS = tuple(LOSS_DECIMALS if "loss" in m else ACC_DECIMALS for m in METRICS)
# scalars of the base / ext / env rows, in the order add_record builds those rows
SCALARS = {"base": ("test_top1", "train_time_s"), "ext": ("test_loss", "test_top5"),
           "env": ("python", "torch", "gpu", "driver", "codebase", "seed")}


def rounded(value: Any, digits: int) -> float | None:
    """A scalar rounded like the Blox release (Python's correctly rounded ``round``); NaN -> None."""
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) else round(v, digits)


def env_row(env: dict, seed: Any) -> dict:
    def s(v: Any) -> str | None:
        return None if v is None else str(v)

    return {"python": s(env.get("python")), "torch": s(env.get("torch")), "gpu": s(env.get("gpu")),
            "driver": s(env.get("driver")), "codebase": s(env.get("codebase")),
            "seed": int(env["seed"]) if env.get("seed") is not None else (int(seed) if seed is not None else None)}


class TrainingBlock:
    """Plain ``normal`` training records with the same number of epochs, as columns.

    ``metrics[j, m]`` is metric ``METRICS[m]`` of record ``j`` over the epochs, rounded as
    ``add_record`` rounds it; ``scalars[name][j]`` the row values of ``SCALARS``.
    """

    __slots__ = ("epochs", "index", "seed", "metrics", "scalars")

    def __init__(self, epochs: int, index: list[int], seed: list[int], metrics: np.ndarray,
                 scalars: dict[str, list]) -> None:
        self.epochs, self.index, self.seed, self.metrics, self.scalars = epochs, index, seed, metrics, scalars

    def row(self, j: int, part: str) -> dict:
        """Record ``j``'s row of a ``base``, ``ext`` or ``env`` section, as ``add_record`` builds it."""
        out: dict[str, Any] = {}
        if part == "base":
            out["val_top1"] = self.metrics[j, 0]
        elif part == "ext":
            out.update((m, self.metrics[j, k]) for k, m in enumerate(METRICS) if k)
        out.update((name, self.scalars[name][j]) for name in SCALARS[part])
        return out


class Ref(NamedTuple):
    """Row ``j`` of a :class:`TrainingBlock`: what a section holds for a record read as columns."""

    block: TrainingBlock
    j: int


def _plain_normal(record: dict, matrix: np.ndarray | None) -> tuple | None:
    """(index, seed, epochs, scalars) when ``add_record`` takes ``record`` as is.

    ``matrix``: the record's ``METRICS`` lists as from :func:`_parse` (all of them, one length).

    ``None`` for anything else: ``add_record`` then sees the record itself (and raises where
    it should). The checks mirror ``add_record``, ``_model_index``, ``_need`` and ``_rlist``.
    """
    from blox_lat.space._table import space_table

    if record.get("kind") != "training" or record.get("setting") != "normal":
        return None
    h = record.get("model_hash")
    index = space_table().index_of_hash.get(h) if isinstance(h, str) else None
    if index is None:
        return None
    given = record.get("model_index")
    if given is not None and given != index:
        return None
    seed, epochs, metrics = record.get("seed"), record.get("epochs"), record.get("metrics")
    if type(seed) is not int or type(epochs) is not int or epochs < 1 or not isinstance(metrics, dict):
        return None
    if matrix is None or matrix.shape != (len(METRICS), epochs):
        return None
    test = record.get("test") or {}
    env = record.get("environment") or {}
    if not isinstance(test, dict) or not isinstance(env, dict):
        return None
    try:
        t = record.get("train_time_s")
        scalars = (rounded(test.get("top1"), ACC_DECIMALS), None if t is None else int(round(float(t))),
                   rounded(test.get("loss"), LOSS_DECIMALS), rounded(test.get("top5"), ACC_DECIMALS),
                   *env_row(env, seed).values())
    except Exception:  # noqa: BLE001 - add_record raises it, in input order
        return None
    return index, seed, epochs, scalars


def _parse(path: str, label: str) -> tuple[bytes, dict | None, np.ndarray | None]:
    """The file's bytes, its record (or ``None``) with every metrics list as a float64 array,
    and, when all of ``METRICS`` are among those lists, their (6, epochs) matrix."""
    with open(path, "rb") as fh:
        data = fh.read()
    record = load_record(data, label)
    if record is None or not isinstance(record.get("metrics"), dict):
        return data, record, None
    metrics = record["metrics"]
    lists = tuple(k for k, v in metrics.items() if isinstance(v, list))
    try:  # usually six lists of one length: one conversion for all (the same values)
        stacked = np.array([metrics[k] for k in lists], dtype=np.float64)
    except (TypeError, ValueError):
        stacked = None
    if stacked is not None and stacked.ndim == 2:
        metrics.update(zip(lists, stacked))
        order = _order(lists)
        return data, record, None if order is None else stacked[order]
    for k in lists:
        try:
            metrics[k] = np.asarray(metrics[k], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{label}: metrics.{k} holds a non-number") from None
    return data, record, None


@lru_cache(maxsize=64)
def _order(lists: tuple[str, ...]) -> list[int] | None:
    """Positions of ``METRICS`` among ``lists``, or ``None`` if one is missing."""
    return [lists.index(m) for m in METRICS] if set(METRICS) <= set(lists) else None


def read_json_files(items: list[tuple[str, str]], columns: bool = True) -> list[tuple[str, str, dict | None, Ref | None]]:
    """(path, label) -> (label, sha256, record, ref) in input order.

    ``ref`` points into a :class:`TrainingBlock` for plain ``normal`` records (``record`` is
    then ``None``); otherwise ``record`` is the parsed record (metrics lists as float64
    arrays) or ``None`` for JSON that is not a record. ``columns=False`` hands back every
    record parsed. Runs in worker processes for large inputs.
    """
    out: list[list] = []
    pending: dict[int, list[tuple[int, tuple]]] = {}  # epochs -> (position in out, plain fields)
    for path, label in items:
        data, record, matrix = _parse(path, label)
        plain = _plain_normal(record, matrix) if columns and record is not None else None
        if plain is not None:
            pending.setdefault(plain[2], []).append((len(out), plain, matrix))
            record = None
        out.append([label, hashlib.sha256(data).hexdigest(), record, None])
    names = [n for part in ("base", "ext", "env") for n in SCALARS[part]]
    for epochs, rows in pending.items():
        metrics = np.stack([m for _, _, m in rows])  # (k, 6, epochs)
        for m, digits in enumerate(_DIGITS):
            metrics[:, m] = np.round(metrics[:, m], digits)
        scalars = {name: [p[3][k] for _, p, _m in rows] for k, name in enumerate(names)}
        block = TrainingBlock(epochs, [p[0] for _, p, _m in rows], [p[1] for _, p, _m in rows], metrics, scalars)
        for j, (pos, _p, _m) in enumerate(rows):
            out[pos][3] = Ref(block, j)
    return [tuple(e) for e in out]
