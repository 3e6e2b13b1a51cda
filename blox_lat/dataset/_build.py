"""Building a release: inputs -> Parquet sections + ``dataset.json``, deterministic and atomic.

Rules (also in the README):

- Measurements: every journal line is judged as :func:`blox_lat.harness.read_records` judges
  it (a NaN, zero, negative or text latency, counts that do not add up, a level without its
  anchors line: refused, naming ``file:line`` and the field). One ``bench/<device>`` row per
  (device, model): when a model was journaled more than once, the row comes from the record
  that stands by the harness's rule (:func:`blox_lat.harness.standing_key`, ``RULE``): ``ok``
  and not noisy, then ``ok`` but noisy, then ``failed``; among equals the latest
  ``recorded_at`` wins (ties: campaign id, env id, input order). Its ``level``,
  ``latency_corrected_ms`` and their standard errors are what :func:`blox_lat.harness.stand`
  gives for it, on the device's common level reference. ``records`` counts what was seen. A failed model keeps a row with its
  ``reason`` and null timings. All records of one device must share one device setting
  (runtime, format, precision, batch, input size, options), which becomes the section metadata;
  two settings under one device name are an input error (give them two profile names).
  Environment records go to ``measure-env/<device>`` keyed by ``env_id`` (earliest record kept).
- Training records, setting ``normal``, seed ``s``: ``base/<s>`` (val_top1 per epoch, test_top1,
  train_time_s rounded to whole seconds), ``ext/<s>`` (the other metrics) and ``env/<s>``
  (the record's environment). Setting ``finetune`` with teacher ``t`` and ``E`` epochs feeds
  ``finetune/<t>/<E>``. All rows of a section have the same number of epochs.
- ``distill-block`` records (teacher, epochs, stage, block) feed ``distill/<teacher>/<epochs>``
  (``distill/<teacher>+remap/<epochs>`` for candidates initialised by parameter remapping):
  one row per model whose three blocks are all distilled; ``loss_sum`` (DONNA) and
  ``delta_sum`` (LANA, null if a delta is missing) are the sums over the three stages.
- A training value seen twice (two records, or a record and a Blox file) must be identical,
  else :class:`DuplicateKeyError`. Blox files: ``blox-base/ext/env-{seed}`` feed the same
  sections as records, ``blox-bench-{device}`` a latency-only bench section (journal
  measurements win over it), ``blox-info`` replaces the computed static values of its models.
- ``static`` holds all 91,125 models (computed from the space).
- ``pred/<device>``: predictions made by the caller (``predictions=``), checked (every model in
  index order, ``lo_ms <= pred_ms <= hi_ms``, the device named in the metadata), one per device,
  fitted on the device setting of that device's ``bench/<device>``; kept apart from it.
- ``profile/<device>``: per-layer profiles from ``profiles`` folders, one row per profiled model
  (rules in :mod:`blox_lat.dataset._profiles`).
- Output: Parquet (zstd) per section, rows sorted by model index, plus the manifest; the same
  inputs give byte-identical files (no timestamps; provenance = builder version, git commit,
  inputs with sha256; the journals' measurements as one digest over their records, so a release
  built from cluster shards' journals equals one built from a single machine's journal). The
  release is written to a temporary sibling directory and renamed into place; an existing
  output directory is never touched.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from blox_lat.dataset._bench_tables import add_bench
from blox_lat.dataset._collect import Collected, collect, json_chunk
from blox_lat.dataset._errors import InputError, OutputError, ReleaseExistsError
from blox_lat.dataset._inputs import InputFile, discover
from blox_lat.dataset._profiles import ProfileSection, add_profiles, read_profile_sections
from blox_lat.dataset._tables import (
    PredSection,
    Sections,
    add_distill,
    add_envs,
    add_predictions,
    add_static,
    add_training,
    check_predictions,
)
from blox_lat.dataset._tables import static_arrays as static_arrays  # re-exported: tests compare it with the space
from blox_lat.dataset._write import input_provenance, write_release

__all__ = ["BuildResult", "build"]

_VERSION_RE = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
PARALLEL_MIN_FILES = 2000  # below this, parse JSON inputs in-process
PARALLEL_MIN_JOURNAL_BYTES = 16 << 20  # or when the journals are at least this big


@dataclass(frozen=True)
class BuildResult:
    path: Path
    version: str
    sections: dict[str, int]  # name -> rows
    inputs: int
    blox_files: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"path": str(self.path), "version": self.version, "sections": dict(self.sections),
                "inputs": self.inputs, "blox_files": list(self.blox_files)}


def check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise InputError(f"dataset version {version!r} is not X.Y.Z (e.g. 1.0.0)")
    return version


def check_writable(out: Path) -> None:
    """Make ``out``'s parent folder and check that a file can be created in it, before any work."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent, prefix=f".{out.name}.probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise OutputError(f"--out {out}: cannot write in {out.parent} ({reason}); pick a writable folder") from None


def build(
    sources: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    version: str,
    *,
    allow_pickle: bool = False,
    blox_format: bool = False,
    raw: bool = True,
    static: bool = True,
    jobs: int | None = None,
    predictions: Sequence[tuple[str, Any, dict]] = (),
    profiles: Sequence[str | os.PathLike[str]] = (),
) -> BuildResult:
    """Build release ``version`` at ``out`` from journals, training records and Blox files.

    ``predictions``: ``pred/<device>`` sections as ``(name, table, metadata)``, made by the
    caller (``blox_lat.predict.pred_section``); kept apart from the measured ``bench/<device>``.
    ``profiles``: folders of ``blox-lat profile`` (``profiles.jsonl``), one ``profile/<device>``
    section per device (:mod:`blox_lat.dataset._profiles`).
    """

    check_version(version)
    preds = check_predictions(predictions)
    profiled = read_profile_sections(profiles)
    out = Path(out)
    if out.exists():
        raise ReleaseExistsError(f"{out} already exists; releases are immutable, so build a new version into a new directory")
    check_writable(out)
    from blox_lat._leftovers import remove_stale

    remove_stale(p for p in out.parent.glob(".*.partial-*") if p.is_dir())  # killed builds' temporary folders
    with _gc_paused():
        collected = _collect(sources, allow_pickle, jobs)
        sections = _sections(collected, raw=raw, static=static, predictions=preds, profiles=profiled)
        inputs = input_provenance(collected) + [p.provenance for p in profiled]
        written = write_release(out, version, sections, inputs, blox_format)
    return BuildResult(out, version, written.rows, collected.used + len(profiled), written.blox_files)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while inputs are read.

    A full-size build holds millions of parsed containers at once; every few thousand new
    ones the collector walks all of them, which made JSON parsing ~3x slower. Parsed records
    form no reference cycles, so nothing is left for the collector to find afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _collect(sources: list[str | os.PathLike[str]], allow_pickle: bool, jobs: int | None) -> Collected:
    """Every input under ``sources``, read in worker processes when there is enough of them."""
    files = discover(sources)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    json_files = sum(f.kind == "json" for f in files)
    with contextlib.ExitStack() as stack:
        pool = _pool(stack, files, jobs)
        chunk = json_chunk(json_files, jobs) if pool is not None and json_files >= PARALLEL_MIN_FILES else None
        collected = collect(files, allow_pickle=allow_pickle, pool=pool, chunk=chunk)
    if collected.used == 0:
        raise InputError(f"no journals, training records or Blox files under {', '.join(map(str, sources))}")
    return collected


def _pool(stack: contextlib.ExitStack, files: list[InputFile], jobs: int) -> Any:
    """A process pool (closed with ``stack``) for many JSON files or big journals; None otherwise."""
    if jobs <= 1:
        return None
    many = sum(f.kind == "json" for f in files) >= PARALLEL_MIN_FILES
    if not many and sum(f.path.stat().st_size for f in files if f.kind == "journal") < PARALLEL_MIN_JOURNAL_BYTES:
        return None
    from concurrent.futures import ProcessPoolExecutor

    return stack.enter_context(ProcessPoolExecutor(max_workers=jobs, initializer=gc.disable))


def _sections(collected: Collected, *, raw: bool, static: bool, predictions: list[PredSection],
              profiles: list[ProfileSection]) -> Sections:
    """The release's tables in their order: static, bench (and raw), measure-env, training, distill, pred,
    profile."""
    s = Sections()
    c = collected.collector
    if static:
        add_static(s, c)
    add_bench(s, c, raw)
    add_envs(s, c)
    add_training(s, c)
    add_distill(s, c)
    add_predictions(s, predictions)
    add_profiles(s, profiles)
    return s
