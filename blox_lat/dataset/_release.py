"""Reading a release: :func:`open_release` -> :class:`Release`, plus verify, diff and info.

Opening reads only ``dataset.json`` and checks its format, schema version and search space.
A section is read (memory-mapped Parquet) the first time a query needs it; its file size,
row count and columns are checked against the manifest then, and the full sha256 check is
:func:`verify` (``blox-lat dataset verify``), which reads every byte. Queries accept any model
name (index, hash, vector, block string, :class:`~blox_lat.space.Arch`); a model without a
value in a section gives ``None``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.dataset._errors import (
    ChecksumError,
    CorruptSectionError,
    DatasetError,
    DeviceNotInReleaseError,
    DuplicateKeyError,
    ReleaseNotFoundError,
    SchemaVersionError,
    SearchSpaceMismatchError,
    SectionMissingError,
    UnknownSectionError,
)
from blox_lat.dataset._schema import (
    FORMAT,
    MANIFEST,
    MANIFEST_DIGEST_SINCE,
    RELEASE_SCHEMA,
    manifest_digest,
    search_space_record,
    validate_section_name,
)
from blox_lat.space import NUM_MODELS

__all__ = ["DiffReport", "Release", "VerifyReport", "diff", "info", "open_release", "verify"]



def _read_manifest(path: Path, check_digest: bool = True) -> dict:
    """The parsed, checked manifest; with ``check_digest`` a changed one raises ChecksumError."""
    manifest_path = path / MANIFEST if path.is_dir() else path
    if not manifest_path.is_file():
        raise ReleaseNotFoundError(f"{path} is not a blox-lat release (no {MANIFEST}); build one with 'blox-lat dataset build'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CorruptSectionError(f"{manifest_path} is not valid JSON; restore the release from its source") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptSectionError(f"{manifest_path} is not a {FORMAT} manifest")
    schema = manifest.get("schema_version")
    if not isinstance(schema, int) or schema < 1:
        raise SchemaVersionError(f"{manifest_path} has no valid schema_version")
    if schema > RELEASE_SCHEMA:
        raise SchemaVersionError(f"{path} uses schema {schema}, newer than this blox-lat reads ({RELEASE_SCHEMA}); upgrade blox-lat")
    space = manifest.get("search_space")
    expected = search_space_record()
    if space != expected:
        raise SearchSpaceMismatchError(
            f"{path} describes another search space ({json.dumps(space)[:120]}); this blox-lat reads the Blox space"
        )
    if not isinstance(manifest.get("sections"), dict):
        raise CorruptSectionError(f"{manifest_path} lists no sections")
    for name, entry in manifest["sections"].items():  # names become file names (export-blox)
        try:
            validate_section_name(name)
        except UnknownSectionError:
            raise CorruptSectionError(f"{manifest_path} lists a section named {name[:80]!r}, which is not a section "
                                      "name; restore the release from its source") from None
        if not isinstance(entry, dict):
            raise CorruptSectionError(f"{manifest_path}: section {name} has no entry; restore the release from its source")
    if check_digest:
        problem = _manifest_problem(manifest)
        if problem:
            raise ChecksumError(f"{manifest_path} {problem}; restore the release from its source")
    return manifest


def _manifest_problem(manifest: dict) -> str | None:
    """Why the manifest's own digest does not hold, or None (schema < 3 releases carry none)."""
    recorded = manifest.get("manifest_sha256")
    if recorded is None:
        return "has no manifest_sha256" if manifest["schema_version"] >= MANIFEST_DIGEST_SINCE else None
    try:
        actual = manifest_digest(manifest)
    except ValueError:  # NaN/inf somewhere: not what a builder writes
        actual = None
    return None if recorded == actual else "was changed after the release was built (manifest_sha256 differs)"


def _inside(release: Path, rel: Any, what: str) -> Path:
    """``release / rel``, refused when ``rel`` (a path read from dataset.json) leaves the release
    (absolute, '..', or a symlink that points out)."""
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise CorruptSectionError(f"{what}: file {str(rel)[:80]!r} is outside the release; the manifest is damaged, "
                                  "restore the release from its source")
    path = release / rel
    try:
        resolved = path.resolve()
        root = release.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise CorruptSectionError(f"{what}: cannot resolve {rel!r}; restore the release from its source") from None
    if not resolved.is_relative_to(root):
        raise CorruptSectionError(f"{what}: file {rel!r} resolves outside the release (to {resolved}); "
                                  "restore the release from its source")
    return path


def _as_epoch_list(col, kind: str | None):
    """Schema 2 stores per-epoch values (``acc_epochs``: float32, ``loss_epochs``: float64) as
    one fixed-size binary cell per row; give them back as a fixed-size list, zero copy. Other
    columns, and schema 1 columns (already lists), are returned unchanged."""
    import pyarrow as pa

    if not pa.types.is_fixed_size_binary(col.type) or kind not in ("acc_epochs", "loss_epochs"):
        return col
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dtype = np.dtype("<f4") if kind == "acc_epochs" else np.dtype("<f8")
    validity, data = col.buffers()
    epochs = col.type.byte_width // dtype.itemsize
    values = np.frombuffer(data, dtype=dtype, count=len(col) * epochs, offset=col.offset * col.type.byte_width)
    values = values.astype(dtype.newbyteorder("="), copy=False)  # a no-op on little-endian hosts
    # Array.from_buffers, not pa.array(ndarray): the latter imports pandas (~0.3 s of a cold load)
    flat = pa.Array.from_buffers(pa.float32() if dtype.itemsize == 4 else pa.float64(), values.size,
                                 [None, pa.py_buffer(values)])
    lists = pa.FixedSizeListArray.from_arrays(flat, epochs, mask=None if col.null_count == 0 else col.is_null())
    return pa.chunked_array([lists])


def with_epoch_lists(table, kinds: dict[str, str | None]):
    """``table`` with every schema-2 per-epoch binary column turned into a fixed-size list."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        fixed = _as_epoch_list(col, kinds.get(name))
        if fixed is not col:
            table = table.set_column(i, table.schema.field(i).with_type(fixed.type), fixed)
    return table


def _primitive_numpy(col) -> np.ndarray:
    """An integer or float Arrow array as numpy, zero copy when it has no nulls (ints with nulls
    become float64 with NaN). Arrow's own ``to_numpy`` imports pandas, ~0.3 s of a cold load."""
    dtype = _NUMPY_OF[str(col.type)]
    data = col.buffers()[1]
    arr = np.frombuffer(data, dtype=dtype, count=len(col), offset=col.offset * dtype.itemsize)
    return _nan_where(arr, _null_mask(col)) if col.null_count else arr


def _nan_where(arr: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``arr`` with NaN in the masked rows (integers become float64 to hold it)."""
    out = arr.astype(np.float64 if arr.dtype.kind in "iu" else arr.dtype)
    out[mask] = np.nan
    return out


def _null_mask(col) -> np.ndarray:
    nulls = np.frombuffer(col.is_null().buffers()[1], dtype=np.uint8)
    return np.unpackbits(nulls, bitorder="little", count=len(col)).astype(bool)


_NUMPY_OF = {name: np.dtype(name) for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")}
_NUMPY_OF.update({"halffloat": np.dtype("float16"), "float": np.dtype("float32"), "double": np.dtype("float64")})


class Section:
    """One section, read on first use: its Arrow table, model-index -> row map and columns."""

    def __init__(self, release: Path, name: str, entry: dict) -> None:
        self.name = name
        self.entry = entry
        self.release = release
        self.path = release / str(entry.get("file"))  # checked to stay inside the release by _check
        self._table = None
        self._rows: list[int] | None = None
        self._columns: dict[str, Any] = {}
        self._kinds = {c["name"]: c.get("type") for c in entry.get("columns", [])}

    @property
    def table(self):
        """The whole section as an Arrow table (every column read)."""
        if self._table is None:
            self._check()
            self._table = with_epoch_lists(self._read(None), self._kinds)
        return self._table

    def _read(self, columns: list[str] | None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:  # ParquetFile, not pq.read_table: that one imports pyarrow.dataset and pandas (~0.5 s)
            # page_checksum_verification: a schema-3 page whose CRC32 differs is an error; files
            # written without checksums (schema 1-2) are read as before
            return pq.ParquetFile(self.path, memory_map=True, page_checksum_verification=True).read(columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptSectionError(f"section {self.name}: {self.path} is not readable Parquet "
                                      f"({' '.join(str(exc).split())[:100]}); run 'blox-lat dataset verify'") from None

    def _arrow_column(self, name: str):
        """One column, read on its own (queries touch only the columns they need)."""
        if self._table is not None:
            return self._table.column(name)
        self._check()
        if name not in self._names:
            raise UnknownSectionError(f"section {self.name} has no column {name!r}")
        return _as_epoch_list(self._read([name]).column(name), self._kinds.get(name))

    _checked = False

    def _check(self) -> None:
        if self._checked:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        _inside(self.release, self.entry.get("file"), f"section {self.name}")
        if not self.path.is_file():
            raise SectionMissingError(f"section {self.name}: {self.path} is missing; the release is incomplete, rebuild or re-download it")
        size = self.path.stat().st_size
        if size != self.entry.get("bytes"):
            raise ChecksumError(f"section {self.name}: {self.path} has {size} bytes, the manifest says {self.entry.get('bytes')}; "
                                "the file was changed, restore the release")
        try:
            meta = pq.read_metadata(self.path)
            names = meta.schema.to_arrow_schema().names
        except (pa.ArrowException, OSError) as exc:
            raise CorruptSectionError(f"section {self.name}: {self.path} is not readable Parquet "
                                      f"({' '.join(str(exc).split())[:100]}); run 'blox-lat dataset verify'") from None
        self._names = [c["name"] for c in self.entry.get("columns", [])]
        if names != self._names or meta.num_rows != self.entry.get("rows"):
            raise CorruptSectionError(f"section {self.name}: {self.path} does not match the manifest (columns/rows); "
                                      "run 'blox-lat dataset verify'")
        self._checked = True

    @property
    def rows(self) -> list[int]:
        """model index -> row (-1 where the model has no row), as a list for fast lookups."""
        if self._rows is None:
            idx = self.column_numpy("model_index").astype(np.int64)
            rows = np.full(NUM_MODELS, -1, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= NUM_MODELS):
                raise CorruptSectionError(f"section {self.name}: model_index out of range")
            rows[idx] = np.arange(idx.size)
            if np.count_nonzero(rows >= 0) != idx.size:
                raise DuplicateKeyError(f"section {self.name} lists a model twice; the release is damaged, rebuild it")
            self._rows = rows.tolist()
        return self._rows

    def column_numpy(self, name: str) -> np.ndarray:
        """A column as numpy: 2-D (rows x epochs) for per-epoch lists, NaN for nulls."""
        key = ("np", name)
        if key not in self._columns:
            import pyarrow as pa

            col = self._arrow_column(name).combine_chunks()
            if pa.types.is_fixed_size_list(col.type):
                size = col.type.list_size
                flat = col.values.slice(col.offset * size, len(col) * size)
                arr = _primitive_numpy(flat).reshape(len(col), size)
                if col.null_count:  # a null row's cells hold whatever Parquet left there
                    arr = _nan_where(arr, _null_mask(col))
            elif pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
                arr = _primitive_numpy(col)
            else:
                values = col.to_pylist()
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
            self._columns[key] = arr
        return self._columns[key]

    def column_list(self, name: str, digits: int | None = None) -> list:
        """A scalar column as a Python list (None for nulls), optionally rounded."""
        key = ("list", name, digits)
        if key not in self._columns:
            values = self._arrow_column(name).to_pylist()
            if digits is not None:
                values = [None if v is None else round(v, digits) for v in values]
            self._columns[key] = values
        return self._columns[key]

    def row_dict(self, row: int) -> dict:
        out = {}
        for c in self.entry["columns"]:
            name = c["name"]
            value = self.table.column(name)[row].as_py()
            if c["type"] == "acc_epochs" and value is not None:
                value = [round(v, 3) for v in value]
            elif c["type"] == "json" and value is not None:
                value = json.loads(value)
            out[name] = _missing_as_none(value)
        return out


def _missing_as_none(value: Any) -> Any:
    """NaN/inf (a missing or impossible value) as None, so that every row is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_missing_as_none(v) for v in value]
    return value


def _seed_sort(s: str) -> tuple:
    return (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s)


class Release:
    """A read-only release; sections load lazily. Use :func:`open_release` (``dataset.open``)."""

    def __init__(self, path: str | os.PathLike[str], *, check_manifest: bool = True) -> None:
        self.path = Path(path)
        self.manifest = _read_manifest(self.path, check_manifest)
        if not self.path.is_dir():
            self.path = self.path.parent
        self._sections: dict[str, Section] = {}
        self._kind_names: dict[str, list[str]] = {}
        self._seed_sections: dict[tuple[str, type, Any], Section] = {}

    @cached_property
    def _table(self):
        """The space's index/hash table, built on the first query by hash or vector (~0.1 s)."""
        from blox_lat.space import space_table

        return space_table()

    # -- description ----------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self.manifest["dataset_version"]

    @property
    def schema_version(self) -> int:
        return self.manifest["schema_version"]

    @property
    def sections(self) -> list[str]:
        return sorted(self.manifest["sections"])

    def _names(self, kind: str) -> list[str]:
        names = self._kind_names.get(kind)
        if names is None:
            names = self._kind_names[kind] = sorted(
                (n.split("/", 1)[1] for n in self.manifest["sections"] if n.split("/", 1)[0] == kind), key=_seed_sort)
        return names

    @property
    def devices(self) -> list[str]:
        return self._names("bench")

    @property
    def predicted_devices(self) -> list[str]:
        """Devices with a ``pred/<device>`` section (predictions, not measurements)."""
        return self._names("pred")

    @property
    def profiled_devices(self) -> list[str]:
        """Devices with a ``profile/<device>`` section (per-layer profiles, schema 7)."""
        return self._names("profile")

    @property
    def seeds(self) -> list[str]:
        return self._names("base")

    def section(self, name: str) -> Section:
        sec = self._sections.get(name)
        if sec is None:
            entry = self.manifest["sections"].get(name)
            if entry is None:
                raise UnknownSectionError(f"release {self.version} has no section {name!r}; it has: {', '.join(self.sections)}")
            sec = self._sections[name] = Section(self.path, name, entry)
        return sec

    def to_pandas(self, section: str):
        """A section as a pandas DataFrame (per-epoch lists become numpy arrays)."""
        return self.section(section).table.to_pandas()

    # -- model lookups --------------------------------------------------------------------
    def _index(self, arch: Any) -> int:
        if type(arch) is int and 0 <= arch < NUM_MODELS:
            return arch
        if type(arch) is str and len(arch) == 32:
            index = self._table.index_of_hash.get(arch)
            if index is not None:
                return index
        from blox_lat import space as sp

        return sp.resolve(arch).index

    def _bench(self, device: str | None) -> Section:
        if device is None:
            devices = self.devices
            if len(devices) != 1:
                raise DeviceNotInReleaseError(f"release {self.version} has {len(devices)} devices ({', '.join(devices) or 'none'}); "
                                         "name one with device=...")
            device = devices[0]
        name = f"bench/{device}"
        if name not in self.manifest["sections"]:
            hint = " (its predictions: predicted_latency)" if device in self.predicted_devices else ""
            raise DeviceNotInReleaseError(f"release {self.version} has no measurements for device {device!r}{hint}; "
                                          f"it has: {', '.join(self.devices) or 'none'}")
        return self.section(name)

    def _seed_section(self, kind: str, seed: Any) -> Section:
        """The ``kind/seed`` section (first seed when None); resolved once per (kind, seed)."""
        key = (kind, type(seed), seed)  # the type too: 1, 1.0 and True are equal keys but name different sections
        try:
            return self._seed_sections[key]
        except KeyError:
            sec = self._seed_sections[key] = self._resolve_seed_section(kind, seed)
            return sec
        except TypeError:  # an unhashable seed: no cache, the lookup reports it
            return self._resolve_seed_section(kind, seed)

    def _resolve_seed_section(self, kind: str, seed: Any) -> Section:
        seeds = self._names(kind)
        if seed is None:
            if not seeds:
                raise UnknownSectionError(f"release {self.version} has no {kind}/<seed> section")
            seed = seeds[0]
        name = f"{kind}/{seed}"
        if name not in self.manifest["sections"]:
            raise UnknownSectionError(f"release {self.version} has no section {name}; seeds: {', '.join(seeds) or 'none'}")
        return self.section(name)

    def latency(self, arch: Any, device: str | None = None, corrected: bool = False) -> float | None:
        """The measured protocol latency in ms on ``device`` (the only measured device when
        omitted), from ``bench/<device>``; with ``corrected``, the level-corrected latency (None
        where the model was measured without anchors, and in releases older than schema 4).
        Never a prediction: that is :meth:`predicted_latency`."""
        sec = self._bench(device)
        row = sec.rows[self._index(arch)]
        column = "latency_corrected_ms" if corrected else "latency_ms"
        if row < 0 or column not in {c["name"] for c in self.manifest["sections"][sec.name]["columns"]}:
            return None
        return sec.column_list(column)[row]

    def prediction(self, arch: Any, device: str | None = None) -> dict | None:
        """The model's prediction on ``device`` (the only predicted device when omitted), from
        ``pred/<device>``: ``pred_ms``, ``lo_ms``/``hi_ms`` (interval at ``level``), ``measured``
        (in the training set), ``method``, ``latency`` (raw or corrected: what was predicted)
        and ``source: "predicted"``. Never a measurement: that is :meth:`latency`."""
        from blox_lat.dataset._pred import no_predictions, prediction_row

        devices = self.predicted_devices
        if device is None and len(devices) == 1:
            device = devices[0]
        if device is None or device not in devices:
            raise no_predictions(self, device)
        sec = self.section(f"pred/{device}")
        row = sec.rows[self._index(arch)]
        return None if row < 0 else prediction_row(sec, row)

    def predicted_latency(self, arch: Any, device: str | None = None) -> float | None:
        """The predicted latency in ms (``pred/<device>``), never a measured one; see :meth:`prediction`."""
        p = self.prediction(arch, device)
        return None if p is None else p["pred_ms"]

    def profile(self, arch: Any, device: str | None = None) -> dict | None:
        """The model's per-layer profile on ``device`` (the only profiled device when omitted),
        from ``profile/<device>``: the row as a dict (``layers`` a list of dicts), None where
        the model was not profiled."""
        devices = self.profiled_devices
        if device is None and len(devices) == 1:
            device = devices[0]
        if device is None or device not in devices:
            raise DeviceNotInReleaseError(f"release {self.version} has no profile section for "
                                          f"{'that device' if device is None else repr(device)}; "
                                          f"profiled devices: {', '.join(devices) or 'none'} (name one with device=...)")
        sec = self.section(f"profile/{device}")
        row = sec.rows[self._index(arch)]
        return None if row < 0 else sec.row_dict(row)

    def val_acc(self, arch: Any, epoch: int | None = None, best: bool = True, seed: Any = None) -> float | None:
        """Top-1 validation accuracy (%): the best over epochs 1..epoch, or at ``epoch`` if not ``best``.

        As in the Blox reference: ``epoch`` defaults to the last epoch.
        """
        sec = self._seed_section("base", seed)
        row = sec.rows[self._index(arch)]
        if row < 0:
            return None
        values = sec.column_numpy("val_top1")
        epochs = values.shape[1]
        e = epochs if epoch is None else epoch
        if type(e) is not int or not 1 <= e <= epochs:
            raise DatasetError(f"epoch {epoch!r} is outside 1..{epochs} for {sec.name}")
        if best:  # per row on demand: no up-front pass over 91,125 x epochs values
            v = float(np.fmax.reduce(values[row, :e]))
        else:
            v = float(values[row, e - 1])
        return None if v != v else round(v, 3)

    def test_acc(self, arch: Any, seed: Any = None) -> float | None:
        """Final top-1 test accuracy (%)."""
        sec = self._seed_section("base", seed)
        row = sec.rows[self._index(arch)]
        return None if row < 0 else sec.column_list("test_top1")[row]

    def train_time(self, arch: Any, seed: Any = None) -> int | None:
        sec = self._seed_section("base", seed)
        row = sec.rows[self._index(arch)]
        return None if row < 0 else sec.column_list("train_time_s")[row]

    def params(self, arch: Any) -> int | None:
        sec = self.section("static")
        row = sec.rows[self._index(arch)]
        return None if row < 0 else sec.column_list("params")[row]

    def flops(self, arch: Any) -> int | None:
        sec = self.section("static")
        row = sec.rows[self._index(arch)]
        return None if row < 0 else sec.column_list("flops")[row]

    def full_info(self, arch: Any, seed: Any = None) -> dict:
        """Everything the release knows about one model: {section name: row dict} plus identity."""
        index = self._index(arch)
        from blox_lat import space as sp

        a = sp.from_index(index)
        out: dict[str, Any] = {"model_index": index, "model_hash": a.hash, "name": a.name, "sections": {}}
        for name in self.sections:
            entry = self.manifest["sections"][name]
            if entry.get("key") != "model_hash":
                continue
            kind, _, rest = name.partition("/")
            if seed is not None and kind in ("base", "ext", "env") and rest != str(seed):
                continue
            sec = self.section(name)
            row = sec.rows[index]
            if row >= 0:
                values = sec.row_dict(row)
                values.pop("model_hash", None)
                values.pop("model_index", None)
                out["sections"][name] = values
        return out

    def info(self) -> dict:
        return info(self.path)


def open_release(path: str | os.PathLike[str]) -> Release:
    """Open a release directory (reads only the manifest; sections load on first use)."""
    return Release(path)


# -- verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    path: str
    version: str
    checked: tuple[tuple[str, str], ...]  # (file, "ok" | problem)

    @property
    def ok(self) -> bool:
        return all(status == "ok" for _, status in self.checked)

    @property
    def problems(self) -> list[tuple[str, str]]:
        return [(f, s) for f, s in self.checked if s != "ok"]

    def to_dict(self) -> dict:
        return {"path": self.path, "version": self.version, "ok": self.ok,
                "files": [{"file": f, "status": s} for f, s in self.checked]}


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every file of a release against the manifest's sha256 and size, and read each section."""
    from blox_lat.dataset._inputs import sha256_file

    release = Release(path, check_manifest=False)
    problem = _manifest_problem(release.manifest)
    checked: list[tuple[str, str]] = [("dataset.json", problem or "ok")]
    entries = [(e.get("file"), e, name) for name, e in sorted(release.manifest["sections"].items())]
    entries += [(b.get("file"), b, None) for b in release.manifest.get("blox_files", [])]
    for rel, entry, name in entries:
        try:
            p = _inside(release.path, rel, name or "blox file")
        except CorruptSectionError as exc:
            checked.append((str(rel), str(exc)))
            continue
        if not p.is_file():
            checked.append((rel, "missing"))
            continue
        if sha256_file(p) != entry.get("sha256"):
            checked.append((rel, "sha256 mismatch"))
            continue
        if name is not None:
            try:
                _ = Section(release.path, name, entry).table  # reading it checks its page checksums
            except DatasetError as exc:
                checked.append((rel, str(exc)))
                continue
        checked.append((rel, "ok"))
    return VerifyReport(str(release.path), release.version, tuple(checked))


# -- diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionDiff:
    rows_added: int
    rows_removed: int
    rows_changed: int
    columns_changed: tuple[str, ...]
    metadata_changed: bool
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"rows_added": self.rows_added, "rows_removed": self.rows_removed, "rows_changed": self.rows_changed,
                "columns_changed": list(self.columns_changed), "metadata_changed": self.metadata_changed,
                "examples": list(self.examples)}


@dataclass(frozen=True)
class DiffReport:
    a: str
    b: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: dict[str, SectionDiff] = field(default_factory=dict)
    unchanged: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "identical": self.identical, "added": list(self.added),
                "removed": list(self.removed), "changed": {k: v.to_dict() for k, v in self.changed.items()},
                "unchanged": list(self.unchanged)}


def _comparable(sec: Section, name: str) -> np.ndarray:
    arr = sec.column_numpy(name)
    if arr.dtype == object:
        return np.asarray([json.dumps(v, sort_keys=True) for v in arr], dtype=object)
    return arr


def _section_diff(sa: Section, sb: Section) -> SectionDiff:
    key = sa.entry.get("key", "model_hash")
    ka = sa.column_numpy(key).tolist()
    kb = sb.column_numpy(key).tolist()
    pos_a = {k: i for i, k in enumerate(ka)}
    pos_b = {k: i for i, k in enumerate(kb)}
    common = [k for k in ka if k in pos_b]
    ia = np.asarray([pos_a[k] for k in common], dtype=np.int64)
    ib = np.asarray([pos_b[k] for k in common], dtype=np.int64)
    cols_a = [c["name"] for c in sa.entry["columns"]]
    cols_b = [c["name"] for c in sb.entry["columns"]]
    changed = np.zeros(len(common), dtype=bool)
    for name in cols_a:
        if name not in cols_b:
            continue
        va, vb = _comparable(sa, name)[ia], _comparable(sb, name)[ib]
        if va.dtype == object or vb.dtype == object or va.shape[1:] != vb.shape[1:]:
            if va.shape[1:] != vb.shape[1:]:
                changed[:] = True
                continue
            diff = np.asarray([x != y for x, y in zip(va.tolist(), vb.tolist())], dtype=bool)
        else:
            eq = (va == vb) | (np.isnan(va) & np.isnan(vb)) if va.dtype.kind == "f" else (va == vb)
            diff = ~eq.reshape(len(common), -1).all(axis=1) if len(common) else np.zeros(0, dtype=bool)
        changed |= diff
    examples = tuple(str(common[i]) for i in np.flatnonzero(changed)[:5])
    return SectionDiff(
        rows_added=len(set(kb) - set(ka)), rows_removed=len(set(ka) - set(kb)), rows_changed=int(changed.sum()),
        columns_changed=tuple(sorted(set(cols_a) ^ set(cols_b))),
        metadata_changed=sa.entry.get("metadata") != sb.entry.get("metadata"), examples=examples,
    )


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> DiffReport:
    """Sections added/removed/changed from release ``a`` to ``b``; rows compared by key."""
    ra, rb = Release(a), Release(b)
    sa, sb = set(ra.sections), set(rb.sections)
    changed: dict[str, SectionDiff] = {}
    unchanged = []
    for name in sorted(sa & sb):
        ea, eb = ra.manifest["sections"][name], rb.manifest["sections"][name]
        if ea["sha256"] == eb["sha256"] and ea.get("metadata") == eb.get("metadata"):
            unchanged.append(name)
            continue
        d = _section_diff(ra.section(name), rb.section(name))
        if d.rows_added or d.rows_removed or d.rows_changed or d.columns_changed or d.metadata_changed:
            changed[name] = d
        else:
            unchanged.append(name)
    return DiffReport(str(ra.path), str(rb.path), tuple(sorted(sb - sa)), tuple(sorted(sa - sb)), changed, tuple(unchanged))


def info(path: str | os.PathLike[str]) -> dict:
    """A summary of a release from its manifest."""
    m = _read_manifest(Path(path))
    sections = {name: {"rows": e["rows"], "bytes": e["bytes"], "file": e["file"], "metadata": e.get("metadata", {})}
                for name, e in sorted(m["sections"].items())}
    return {"path": str(path), "dataset_version": m["dataset_version"], "schema_version": m["schema_version"],
            "search_space": m["search_space"]["name"], "sections": sections,
            "blox_files": [b["file"] for b in m.get("blox_files", [])], "provenance": m.get("provenance", {})}
