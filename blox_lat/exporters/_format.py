"""What an export format is: options, the packages that shape it, and how it is produced.

A format is one :class:`ExportFormat` value that carries its own behaviour (``produce``, and
``toolchain_check`` for an external SDK), so the exporter never branches on a format's name.
The registry (``_formats``) maps names to these values.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from blox_lat.exporters._errors import ExportError
from blox_lat.exporters._types import EXPORTER_VERSION
from blox_lat.space import Arch

__all__ = ["ExportFormat", "ExportJob", "ExportOption", "normalise_options", "toolchain"]

#: what a producer returns: the verification record, or it and the artifact's sha256
Produced = dict | tuple[dict, str]


@dataclass(frozen=True)
class ExportOption:
    """One ``-O name=value`` option: default, help and an optional check.

    ``check(value)`` returns an error text or None; ``normalise(value, options)`` may rewrite a
    valid value (a calibration path becomes its content identity) once every option is checked.
    """

    name: str
    default: str
    help: str
    check: Callable[[str], "str | None"] | None = field(default=None, compare=False, repr=False)
    normalise: Callable[[str, Mapping[str, str]], str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ExportJob:
    """One artifact to write: the model, batch, normalised options and where it goes.

    ``pieces`` is the store's folder of pre-exported pieces (``method="fast"``).
    """

    arch: Arch
    batch: int
    options: Mapping[str, str]
    out: Path
    verify: bool
    method: str
    pieces: Path

    @property
    def fast(self) -> bool:
        return self.method == "fast"


def _no_producer(job: ExportJob) -> Produced:
    raise ExportError("this format has no producer; register it with produce=...")


@dataclass(frozen=True)
class ExportFormat:
    """One artifact format: file suffix, the device it serves, default batch, options, and
    ``produce(job)``, which writes ``job.out`` and returns its verification record.

    ``packages`` are the installed packages whose versions enter the store key;
    ``toolchain_check()``, when given, fails fast if an external toolchain is missing and
    returns the versions it adds to the key (``{"snpe": "2.10"}``).
    """

    name: str
    suffix: str
    description: str
    default_batch: int
    options: tuple[ExportOption, ...] = ()
    packages: tuple[str, ...] = ()
    produce: Callable[[ExportJob], Produced] = field(default=_no_producer, compare=False, repr=False)
    toolchain_check: Callable[[], dict[str, str]] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "suffix": self.suffix,
            "description": self.description,
            "default_batch": self.default_batch,
            "options": {o.name: o.default for o in self.options},
        }


def normalise_options(fmt: ExportFormat, options: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Options with defaults filled in, as sorted pairs; unknown or bad values are errors."""
    given = {str(k): str(v) for k, v in (options or {}).items()}
    known = {o.name: o for o in fmt.options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        raise ExportError(f"format {fmt.name!r} takes no option {', '.join(unknown)}; valid options: {valid}")
    merged = {name: given.get(name, opt.default) for name, opt in known.items()}
    for name, opt in known.items():
        problem = opt.check(merged[name]) if opt.check is not None else None
        if problem:
            raise ExportError(problem)
    for name, opt in known.items():
        if opt.normalise is not None:
            merged[name] = opt.normalise(merged[name], dict(merged))
    return tuple(sorted(merged.items()))


def toolchain(fmt: ExportFormat) -> tuple[tuple[str, str], ...]:
    """Versions of every package and tool that shapes the artifact (part of the store key)."""
    versions = {"blox-lat-exporter": EXPORTER_VERSION}
    for package in fmt.packages:
        versions[package] = _package_version(package)
    if fmt.toolchain_check is not None:
        versions.update(fmt.toolchain_check())
    return tuple(sorted(versions.items()))


@functools.lru_cache(maxsize=None)
def _package_version(package: str) -> str:
    """An installed package's version, read once per process (importlib.metadata parses the
    package's METADATA file on every call, paid per export without this cache)."""
    return metadata.version(package)
