"""Versioned benchmark releases: build from journals and training records, open, query, verify.

- :func:`build` (``blox-lat dataset build``): measurement journals, training records and Blox
  release CSV files, plus prediction sections (:func:`pred_table`) -> Parquet sections +
  ``dataset.json`` (deterministic, immutable).
- :func:`open` -> :class:`Release`: ``latency(arch, device)`` (measured, ``bench/<device>``),
  ``predicted_latency`` / ``prediction`` (``pred/<device>``, never a measurement),
  ``val_acc(arch, epoch)``, ``test_acc``, ``params``, ``flops``, ``full_info``,
  ``to_pandas(section)``; lazy sections.
- :func:`verify`, :func:`diff`, :func:`info`; :func:`export_blox` writes the Blox reference
  layout and :func:`read_blox_file` reads it.

Sections, columns and units: :mod:`blox_lat.dataset._schema`; build rules (duplicates,
training settings, distillation scores): :mod:`blox_lat.dataset._build`.
"""

from __future__ import annotations

import os

from blox_lat.dataset._bloxfmt import read_blox_file
from blox_lat.dataset._build import BuildResult, build
from blox_lat.dataset._errors import (
    ChecksumError,
    CorruptSectionError,
    DatasetError,
    DeviceNotInReleaseError,
    DuplicateKeyError,
    InputError,
    OutputError,
    PickleRefusedError,
    ReleaseExistsError,
    ReleaseNotFoundError,
    SchemaVersionError,
    SearchSpaceMismatchError,
    SectionMissingError,
    UnknownSectionError,
)
from blox_lat.dataset._pred import pred_table
from blox_lat.dataset._release import DiffReport, Release, VerifyReport, diff, info, open_release, verify
from blox_lat.dataset._schema import KINDS, RELEASE_SCHEMA, Column, check_device_name, search_space_record

__all__ = [
    "KINDS",
    "RELEASE_SCHEMA",
    "BuildResult",
    "ChecksumError",
    "Column",
    "CorruptSectionError",
    "DatasetError",
    "DiffReport",
    "DuplicateKeyError",
    "InputError",
    "OutputError",
    "PickleRefusedError",
    "Release",
    "ReleaseExistsError",
    "ReleaseNotFoundError",
    "SchemaVersionError",
    "SearchSpaceMismatchError",
    "SectionMissingError",
    "DeviceNotInReleaseError",
    "UnknownSectionError",
    "VerifyReport",
    "build",
    "check_device_name",
    "diff",
    "export_blox",
    "info",
    "list_sections",
    "open",
    "pred_table",
    "read_blox_file",
    "search_space_record",
    "verify",
]


def open(path: str | os.PathLike[str]) -> Release:  # noqa: A001 - the issue's one-line API
    """Open a release: ``blox_lat.dataset.open("releases/1.0.0").latency(0, "cpu")``."""
    return open_release(path)


def list_sections() -> list[str]:
    """The section kinds of the current schema."""
    return list(KINDS)


def export_blox(release: str | os.PathLike[str] | Release, out_dir: str | os.PathLike[str]) -> list[str]:
    """Write the Blox reference files of a release into ``out_dir``; returns their names."""
    from blox_lat.dataset._export import export_tables

    rel = release if isinstance(release, Release) else open_release(release)
    tables = {name: rel.section(name).table for name in rel.sections}
    return export_tables(tables, out_dir)
