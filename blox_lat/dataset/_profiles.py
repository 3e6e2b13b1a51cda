"""The ``profile/<device>`` sections: per-layer profiles (``blox-lat profile``) in a release.

``dataset build --profile DIR`` reads each folder's ``profiles.jsonl`` with
:func:`blox_lat.profile.read_profiles` (the one reader) and writes one section per device with
one row per profiled model, keyed by ``model_hash``, rows sorted by ``model_index``:

- which record stands for a model: per resume key (device setting, protocol, profiled runs) the
  one :func:`blox_lat.profile.standing_profiles` picks, then across keys an ok record before a
  failed one, then the latest ``created_at`` (ties: the later in reading order); ``records``
  counts every line of the model that was read;
- all records of one device must share one device setting (the section metadata), as
  ``bench/<device>`` does; two settings under one device name are an input error;
- per-piece times are columns (``stem_ms``, ``block_s0_ms``, ``reduction_s0_ms`` ..
  ``head_ms``, ``unmapped_ms``): the sum of the layers of that piece, null where the profile
  mapped no layer to it (TorchScript keeps no names: all its time is ``unmapped_ms``);
- ``layers`` is a list of structs in execution order (``LAYER_FIELDS``).

A folder without ``profiles.jsonl``, a damaged line or a model whose hash is not the one of its
index is an :class:`InputError` before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from blox_lat.dataset._columns import arrow_column
from blox_lat.dataset._errors import InputError, UnknownSectionError
from blox_lat.dataset._schema import LAYER_FIELDS, PROFILE_PIECES, columns_of, validate_section_name
from blox_lat.dataset._tables import Sections, section_table

__all__ = ["PROFILE_RULE", "ProfileSection", "add_profiles", "read_profile_sections"]

PROFILE_RULE = "per resume key: standing_profiles; then ok>failed, then latest created_at"


class ProfileSection(NamedTuple):
    """One device's ``profile/<device>`` rows, metadata and the manifest's input entry."""

    name: str
    rows: list[dict[str, Any]]
    metadata: dict[str, Any]
    provenance: dict[str, Any]


def read_profile_sections(folders: Sequence[str | os.PathLike[str]]) -> list[ProfileSection]:
    """Every device's section from the profile folders (or ``profiles.jsonl`` files), by device name."""
    from blox_lat.profile import ProfileRecordError, read_profiles

    if isinstance(folders, (str, bytes, os.PathLike)):
        raise InputError("profiles must be a list of profile folders")
    by_device: dict[str, list[Any]] = {}
    for folder in folders:
        try:
            records = read_profiles(folder)
        except ProfileRecordError as exc:
            raise InputError(f"--profile {folder}: {exc}") from None
        if not records:
            raise InputError(f"--profile {folder}: holds no profile records; profile some models first (blox-lat profile)")
        for rec in records:
            by_device.setdefault(rec.device, []).append(rec)
    return [_section(device, recs) for device, recs in sorted(by_device.items())]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _section(device: str, records: list[Any]) -> ProfileSection:
    from blox_lat.profile import standing_profiles

    name = f"profile/{device}"
    try:
        validate_section_name(name)
    except UnknownSectionError:
        raise InputError(f"profile records name device {device[:80]!r}, which cannot name a section; "
                         "profile under a device name of letters, digits, '.', '_', '+', '-'") from None
    settings = sorted({_canonical(r.setting) for r in records})
    if len(settings) > 1:
        raise InputError(f"{name}: the profiles of {device!r} were taken with {len(settings)} device settings "
                         f"({'; '.join(settings)[:300]}); give each setting its own device name")
    order = {id(r): i for i, r in enumerate(records)}
    seen: dict[str, int] = {}
    for r in records:
        seen[r.model_hash] = seen.get(r.model_hash, 0) + 1
    chosen: dict[str, Any] = {}
    for r in standing_profiles(records).values():
        held = chosen.get(r.model_hash)
        if held is None or (r.ok, r.created_at, order[id(r)]) > (held.ok, held.created_at, order[id(held)]):
            chosen[r.model_hash] = r
    rows = sorted((_row(r, seen[h]) for h, r in chosen.items()), key=lambda row: row["model_index"])
    meta = {"device": device, "kind": "profile", "setting": json.loads(settings[0]), "latency_unit": "ms",
            "protocols": [json.loads(p) for p in sorted({_canonical(r.protocol) for r in chosen.values()})],
            "profile_runs": sorted({r.profile_runs for r in chosen.values()}), "duplicates_rule": PROFILE_RULE}
    digest = hashlib.sha256("".join(f"{d}\n" for d in sorted(_canonical(r.to_dict()) for r in records)).encode())
    provenance = {"path": name, "kind": "profiles", "records": len(records), "sha256": digest.hexdigest()}
    return ProfileSection(name, rows, meta, provenance)


def _row(rec: Any, records: int) -> dict[str, Any]:
    from blox_lat import space as sp

    arch = sp.from_index(rec.model_index) if 0 <= rec.model_index < sp.NUM_MODELS else None
    if arch is None or arch.hash != rec.model_hash:
        raise InputError(f"profile of {rec.device}: model {rec.model_index} is recorded with hash {rec.model_hash}, "
                         "which is not that model's; the profiles file was edited or comes from another space")
    row: dict[str, Any] = {"model_hash": rec.model_hash, "model_index": rec.model_index, "status": rec.status,
                           "reason": rec.reason, "profile_runs": rec.profile_runs, "records": records,
                           "created_at": rec.created_at,
                           **{f"block_s{s}": arch.block_names[s] for s in range(3)}}
    if not rec.ok:
        return row
    sums: dict[str, float] = {}
    for b in rec.blocks:
        kind = b.piece.rsplit("/", 1)[0] if b.piece.startswith("cell/") else b.piece
        sums[kind] = sums.get(kind, 0.0) + b.ms
    row.update({"latency_ms": rec.latency_ms, "load_ms": rec.load_ms, "first_inference_ms": rec.first_inference_ms,
                "peak_memory_mib": rec.peak_memory_mib, "peak_memory_how": rec.memory_how,
                "gpu_peak_memory_mib": rec.gpu_peak_memory_mib, "profiled_ms": rec.profiled_ms,
                "overhead": rec.overhead, "layers_ms": rec.layers_ms,
                **{f"{col}_ms": _rounded(sums.get(piece)) for col, piece in PROFILE_PIECES},
                "unmapped_ms": _rounded(sums.get("", 0.0)),
                "layers": [{k: getattr(x, k) for k, _ in LAYER_FIELDS} for x in rec.layers]})
    return row


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 6)


def add_profiles(s: Sections, sections: list[ProfileSection]) -> None:
    """Add each device's ``profile/<device>`` table."""
    for p in sections:
        arrays = [arrow_column(c, [r.get(c.name) for r in p.rows], None) for c in columns_of(p.name)]
        s.add(p.name, section_table(p.name, arrays, p.metadata), p.metadata)
