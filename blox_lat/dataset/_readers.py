"""Reading build inputs into columns, in worker processes for full-size builds.

A full-size build reads 91,125 training records (2 GB of JSON). Turning each into Python row
dicts in the parent process was most of the build, so a worker parses a chunk of files and
hands back, for every plain ``normal`` training record, one row of a :class:`TrainingBlock`:
the six per-epoch metrics of the chunk's records stacked into one already-rounded float64
matrix, plus lists of the few scalars. The parent only files each record under its model index
(:class:`Ref`) and gathers whole matrices into the section tables.

A record takes this path only when :meth:`._collect.Collector.add_record` would accept it without a
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
from blox_lat.dataset._inputs import load_record, sha256_file
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


def model_index(record: dict, label: str) -> tuple[str, int]:
    from blox_lat.space import space_table

    h = record.get("model_hash")
    index = space_table().index_of_hash.get(h) if isinstance(h, str) else None
    if index is None:
        raise InputError(f"{label}: {h!r} is not a Blox model hash")
    given = record.get("model_index")
    if given is not None and given != index:
        raise InputError(f"{label}: model_index {given} does not match hash {h} (index {index})")
    return h, index


def need(record: dict, key: str, types: type | tuple, label: str) -> Any:
    value = record.get(key)
    if not isinstance(value, types) or (isinstance(value, bool) and types is int):
        raise InputError(f"{label}: field {key!r} is missing or has the wrong type ({value!r})")
    return value


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

    ``matrix``: the record's ``METRICS`` rows from :func:`_parse` (all of them, one length).

    ``None`` for anything else: ``add_record`` then sees the record itself (and raises where
    it should). The checks mirror ``add_record``, ``_model_index``, ``_need`` and ``_rlist``.
    """
    if record.get("kind") != "training" or record.get("setting") != "normal":
        return None
    h = record.get("model_hash")
    index = _index_of_hash().get(h) if isinstance(h, str) else None
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


@lru_cache(maxsize=1)
def _index_of_hash() -> dict[str, int]:
    from blox_lat.space import space_table

    return space_table().index_of_hash


def _parse(path: str, label: str) -> tuple[bytes, dict | None, np.ndarray | None, np.ndarray | None, tuple]:
    """The file's bytes and its record (or ``None``), plus, when its metrics lists convert to
    one float64 matrix, that matrix, its ``METRICS`` rows (or ``None`` if one is missing) and
    the list names of its rows, for :func:`_arrays_in` to put back into the record.

    Lists that do not make one matrix are converted one by one here (the old error for a
    non-number).
    """
    with open(path, "rb") as fh:
        data = fh.read()
    record = load_record(data, label)
    if record is None or not isinstance(record.get("metrics"), dict):
        return data, record, None, None, ()
    metrics = record["metrics"]
    lists = tuple(k for k, v in metrics.items() if isinstance(v, list))
    try:  # usually six lists of one length: one conversion for all (the same values)
        stacked = np.array([metrics[k] for k in lists], dtype=np.float64)
    except (TypeError, ValueError):
        stacked = None
    if stacked is not None and stacked.ndim == 2:
        order = _order(lists)
        return data, record, stacked, None if order is None else stacked[order], lists
    for k in lists:
        try:
            metrics[k] = np.asarray(metrics[k], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{label}: metrics.{k} holds a non-number") from None
    return data, record, None, None, ()


def _arrays_in(record: dict, stacked: np.ndarray | None, lists: tuple) -> dict:
    """``record`` with its metrics lists as float64 arrays (rows of ``stacked``: views, no copies)."""
    if stacked is not None:
        record["metrics"].update(zip(lists, stacked))
    return record


@lru_cache(maxsize=64)
def _order(lists: tuple[str, ...]) -> list[int] | None:
    """Positions of ``METRICS`` among ``lists``, or ``None`` if one is missing."""
    return [lists.index(m) for m in METRICS] if set(METRICS) <= set(lists) else None


def read_json_files(items: list[tuple[str, str]]) -> list[tuple[str, str, dict | None, Ref | None]]:
    """(path, label) -> (label, sha256, record, ref) in input order.

    ``ref`` points into a :class:`TrainingBlock` for plain ``normal`` records (``record`` is
    then ``None``); otherwise ``record`` is the parsed record (metrics lists as float64
    arrays) or ``None`` for JSON that is not a record. Runs in worker processes for large inputs.
    """
    out: list[list] = []
    pending: dict[int, list[tuple[int, tuple]]] = {}  # epochs -> (position in out, plain fields)
    for path, label in items:
        data, record, stacked, matrix, lists = _parse(path, label)
        plain = _plain_normal(record, matrix) if record is not None else None
        if plain is not None:
            pending.setdefault(plain[2], []).append((len(out), plain, matrix))
            record = None
        elif record is not None:
            record = _arrays_in(record, stacked, lists)
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


# -- measurement journals ---------------------------------------------------------------------

BENCH_STATS = ("latency_ms", "median_ms", "mean_ms", "min_ms", "std_ms", "iqr_ms", "cv", "rel_iqr", "group_cv")
# bench columns that depend on one record alone (model_hash, model_index and records are the parent's)
_OWN = ("model_hash", "model_index", "records")
# ``level``, ``latency_corrected_ms`` and ``latency_corrected_se_ms`` are the journal's here (the
# corrected SE null); the parent puts them on the device's reference (``stand``)
BENCH_OWN = (*BENCH_STATS, "runs", "groups", "runs_per_group", "warmup_runs", "noisy", "flags", "status", "reason",
             "attempts", "env_id", "campaign_id", "recorded_at", "level", "latency_corrected_ms", "latency_se_ms",
             "latency_corrected_se_ms")
_NO_STATS = (None,) * (len(BENCH_STATS) + 6)


def _level(rec: Any) -> tuple:
    """(level, corrected latency) of an ok record timed with anchors; nulls otherwise (never invented)."""
    if not rec.ok or rec.level is None or rec.latency_corrected_ms is None:
        return (None, None)
    return (float(rec.level), float(rec.latency_corrected_ms))


def _typed(line: Any) -> Any:
    """The :class:`~blox_lat.harness.MeasurementRecord` of a journal line (or the record itself)."""
    from blox_lat.harness import MeasurementRecord

    return line if isinstance(line, MeasurementRecord) else MeasurementRecord.from_dict(line)


def bench_values(line: Any) -> tuple:
    """The ``bench/<device>`` row of journal ``line`` (a dict or its typed record) as the model's
    chosen record, in ``BENCH_OWN`` order."""
    rec = _typed(line)
    m = rec.measurement or {}
    get = m.get
    g, rpg = get("groups"), get("runs_per_group")
    own = (rec.status, rec.reason, rec.attempts, rec.env_id, rec.campaign_id, rec.recorded_at)
    if rec.ok:
        stats = [None if get(k) is None else float(m[k]) for k in BENCH_STATS]
        flags = list(get("flags") or [])
        return (*stats, g * rpg if isinstance(g, int) and isinstance(rpg, int) else None, g, rpg,
                get("warmup_runs"), get("noisy"), flags, *own, *_level(rec), rec.measurement.se_ms, None)
    return (*_NO_STATS, *own, None, None, None, None)


def bench_row(rec: Any) -> dict:
    """:func:`bench_values` by column name."""
    return dict(zip(BENCH_OWN, bench_values(rec)))


def raw_row(line: Any) -> dict | None:
    """The ``bench-raw/<device>`` row of journal ``line`` (a dict or its typed record) as the
    chosen record (less the key), or ``None``."""
    rec = _typed(line)
    m = rec.measurement or {}
    if rec.ok and m.get("samples_ms") is not None:
        return {"samples_ms": m.get("samples_ms"), "group_means_ms": m.get("group_means_ms")}
    return None


def leveled(rec: Any) -> Any:
    """An ok record timed with anchors, without what :func:`~blox_lat.harness.stand` does not
    read (samples, artifact, attempt log), so that it travels back from a worker cheaply;
    ``None`` for any other record (its level is null wherever it is read)."""
    import dataclasses

    if not rec.ok or rec.level is None or rec.measurement is None:
        return None
    m = dataclasses.replace(rec.measurement, samples_ms=None, line={}, group_means_ms=None)
    return dataclasses.replace(rec, measurement=m, artifact=None, attempt_log=[], profile={}, protocol={})


class MeasRef(NamedTuple):
    """Measurement ``i`` of a :class:`JournalPart`."""

    part: JournalPart
    i: int


class JournalPart:
    """One journal, read (in a worker process for large builds) as the collector needs it.

    ``count``: records read (each takes one step of the collector's input order);
    ``envs``: (device, env_id, record) of environment records; ``settings``: (device, device
    setting) in first-seen order; ``meas``: (device, hash, index, key) of each measurement,
    ``key`` its :func:`~blox_lat.harness.standing_key` with its 1-based position in the journal;
    ``sha256``: the file's digest. A measurement ``i`` is either ``records[i]`` (the record
    itself, with ``_index``) or row ``rows[i]`` of the Arrow ``columns`` (its :func:`bench_row`)
    and, unless ``raws[i]`` is -1, that row of ``raw_columns`` (its :func:`raw_row`), with
    ``protocols[i]``. ``anchors``: (device, :class:`~blox_lat.harness.AnchorsRecord`) of every
    anchors line; ``leveled[i]``: measurement ``i`` as :func:`leveled` gives it, where it has a level.
    """

    __slots__ = ("label", "sha256", "count", "envs", "settings", "meas", "digests", "records", "rows", "columns", "raws",
                 "raw_columns", "protocols", "anchors", "leveled")

    def __init__(self, label: str) -> None:
        self.label, self.sha256, self.count = label, "", 0
        self.envs: list[tuple[str, str, dict]] = []
        self.settings: list[tuple[str, str]] = []
        self.meas: list[tuple[str, str, int, tuple]] = []
        self.digests: list[str] = []  # sha256 of each measurement's canonical JSON, for provenance
        self.records: dict[int, dict] = {}
        self.rows: list[int] = []
        self.columns: dict[str, Any] = {}
        self.raws: list[int] = []
        self.raw_columns: dict[str, Any] = {}
        self.anchors: list[tuple[str, Any]] = []
        self.leveled: dict[int, Any] = {}
        self.protocols: list[Any] = []

    def record(self, i: int) -> dict | MeasRef:
        rec = self.records.get(i)
        return MeasRef(self, i) if rec is None else rec


#: what a refused journal line's message ends with (as :func:`~blox_lat.harness.read_records` says it)
_FIX = "restore the file from a backup or remove that line"


def _check_set_ids(typed: list[Any], set_ids: set[str]) -> None:
    """Every level names an anchors line of its journal (what ``read_records`` checks)."""
    from blox_lat.harness import JournalError

    for rec in typed:
        if rec.level is not None and rec.set_id not in set_ids:
            raise JournalError(f"{rec.origin}: level {rec.level} names set_id {rec.set_id!r}, which no anchors "
                               f"line of the journal has; {_FIX}")


class _Settings:
    """Each (device, device setting) of a journal once, in first-seen order, into ``part.settings``
    (journals repeat one profile: it is encoded once)."""

    def __init__(self, part: JournalPart) -> None:
        self.part, self.seen = part, set()
        self.last_profile: dict | None = None
        self.last_setting = ""

    def note(self, device: str, profile: Any) -> None:
        import json

        if not isinstance(profile, dict):
            return
        if profile != self.last_profile:
            self.last_profile = profile
            self.last_setting = json.dumps({k: v for k, v in profile.items() if k != "name"}, sort_keys=True)
        if (device, self.last_setting) not in self.seen:
            self.seen.add((device, self.last_setting))
            self.part.settings.append((device, self.last_setting))


def read_journal_part(path: str, label: str) -> JournalPart:
    """Read a measurement journal, judging each line as :func:`~blox_lat.harness.read_records`
    does: every measurement and anchors line becomes its typed, checked record
    (``from_dict(line, origin).check()``), and a line that cannot stand (a NaN, zero, negative
    or text latency, counts that do not add up, a level whose ``set_id`` names no anchors line
    of the journal...) raises :class:`~blox_lat.harness.JournalError` naming ``file:line`` and
    the field. Which record stands for a model is :func:`~blox_lat.harness.standing_key`.

    The measurements' rows are built here as Arrow columns; a record whose row cannot be built
    (odd values) is kept as a record, and so is every record if a column cannot be converted,
    so that the parent meets the errors the record itself raises.
    """
    import orjson

    from blox_lat.dataset._schema import columns_of, validate_section_name
    from blox_lat.harness import (
        AnchorsRecord,
        EnvironmentRecord,
        MeasurementRecord,
        journal_path,
        judge_line,
        read_journal_lines,
        standing_key,
    )
    from blox_lat.space import space_table

    index_of = space_table().index_of_hash
    part = JournalPart(label)
    seen = _Settings(part)
    devices: set[str] = set()
    records: list[dict] = []
    typed: list[Any] = []
    set_ids: set[str] = set()
    file = journal_path(path)
    n = 0
    for number, record in read_journal_lines(path):
        n += 1
        part.count = n
        rec = judge_line(record, f"{file}:{number}")  # the harness's one judgement of a line
        device = record.get("device")
        if not isinstance(device, str):
            raise InputError(f"{label}: a journal record has no device name")
        if device not in devices:
            validate_section_name(f"bench/{device}")
            devices.add(device)
        if isinstance(rec, EnvironmentRecord):
            part.envs.append((device, rec.env_id, record))
            continue
        if isinstance(rec, AnchorsRecord):
            part.anchors.append((device, rec))
            set_ids.add(rec.set_id)
            continue
        if not isinstance(rec, MeasurementRecord):
            continue
        h, given = rec.model_hash, rec.model_index
        index = index_of.get(h)
        if index is None or (given is not None and given != index):
            h, index = model_index(record, label)  # raises
        seen.note(device, rec.profile)
        part.meas.append((device, h, index, standing_key(rec, n)))
        part.digests.append(hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest())
        records.append(record)
        typed.append(rec)
    _check_set_ids(typed, set_ids)
    part.leveled = {i: slim for i, rec in enumerate(typed) if (slim := leveled(rec)) is not None}
    part.sha256 = sha256_file(path)
    _to_columns(part, records, columns_of("bench/x"), columns_of("bench-raw/x"), typed)
    return part


def _to_columns(part: JournalPart, records: list[dict], bench_cols, raw_cols, typed: list[Any] | None = None) -> None:
    """Arrow columns of ``records`` (``typed``: their checked records, read already)."""
    from blox_lat.dataset._columns import arrow_column

    rows: list[tuple] = []
    raws: list[tuple] = []
    for i, rec in enumerate(records):
        line = rec if typed is None else typed[i]
        try:
            row, raw = bench_values(line), raw_row(line)
        except Exception:  # noqa: BLE001 - raised again by the parent if this record is chosen
            part.records[i] = {**rec, "_index": part.meas[i][2]}
            part.rows.append(-1)
            part.raws.append(-1)
            part.protocols.append(None)
            continue
        part.rows.append(len(rows))
        rows.append(row)
        part.raws.append(-1 if raw is None else len(raws))
        if raw is not None:
            raws.append((raw["samples_ms"], raw["group_means_ms"]))
        part.protocols.append(rec.get("protocol"))
    by_name = dict(zip(BENCH_OWN, zip(*rows))) if rows else dict.fromkeys(BENCH_OWN, ())
    raw_by_name = dict(zip(("samples_ms", "group_means_ms"), zip(*raws))) if raws else dict.fromkeys(("samples_ms", "group_means_ms"), ())
    try:
        part.columns = {c.name: arrow_column(c, list(by_name[c.name]), None) for c in bench_cols if c.name not in _OWN}
        part.raw_columns = {c.name: arrow_column(c, list(raw_by_name[c.name]), None) for c in raw_cols if c.name not in _OWN}
    except Exception:  # noqa: BLE001 - a value Arrow refuses: leave every record to the parent
        keep_as_records(part, records)


def keep_as_records(part: JournalPart, records: list[dict]) -> None:
    """Hand every measurement of ``part`` to the parent as its record (no Arrow rows)."""
    part.records = {i: {**rec, "_index": part.meas[i][2]} for i, rec in enumerate(records)}
    part.rows, part.raws, part.protocols, part.columns, part.raw_columns = [], [], [], {}, {}
