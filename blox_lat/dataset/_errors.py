"""Typed errors of the dataset builder and reader; each message says how to fix the problem."""

from __future__ import annotations

from blox_lat.errors import BloxLatError

__all__ = [
    "ChecksumError",
    "CorruptSectionError",
    "DatasetError",
    "DuplicateKeyError",
    "InputError",
    "OutputError",
    "PickleRefusedError",
    "ReleaseExistsError",
    "ReleaseNotFoundError",
    "SchemaVersionError",
    "SearchSpaceMismatchError",
    "SectionMissingError",
    "DeviceNotInReleaseError",
    "UnknownSectionError",
]


class DatasetError(BloxLatError):
    """Base class of every dataset problem a user can fix."""


class InputError(DatasetError, ValueError):
    """An input (journal, training record, Blox file) is malformed or contradicts another."""


class OutputError(DatasetError):
    """The output location cannot be written (read-only, not a folder, no permission)."""


class PickleRefusedError(InputError):
    """A pickle payload was met without ``allow_pickle=True`` (unpickling runs arbitrary code)."""


class DuplicateKeyError(DatasetError, ValueError):
    """The same key (model, environment) appears twice with different values."""


class ReleaseExistsError(DatasetError, FileExistsError):
    """Releases are immutable: the output directory already exists."""


class ReleaseNotFoundError(DatasetError, FileNotFoundError):
    """The path holds no ``dataset.json`` manifest."""


class SchemaVersionError(DatasetError):
    """The release was written with a schema version this blox-lat does not read."""


class SearchSpaceMismatchError(DatasetError):
    """The release (or a Blox file) describes another search space."""


class SectionMissingError(DatasetError, FileNotFoundError):
    """A section listed in the manifest has no file."""


class CorruptSectionError(DatasetError):
    """A section file is not readable Parquet or does not match its manifest entry."""


class ChecksumError(DatasetError):
    """A file's sha256 differs from the manifest."""


class UnknownSectionError(DatasetError, LookupError):
    """The release has no section of that name."""


class DeviceNotInReleaseError(UnknownSectionError):
    """The release has no benchmark section for that device."""
