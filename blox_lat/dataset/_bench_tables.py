"""The ``bench/<device>`` and ``bench-raw/<device>`` tables of a release.

One row per model: the record that stands by the harness's rule
(:func:`~blox_lat.harness.standing_key`), with ``level``, ``latency_corrected_ms`` and its
standard error as :func:`~blox_lat.harness.stand` gives them on the device's common level
reference. Rows that workers read as Arrow columns are taken from those columns; records kept
as dicts are turned into rows here.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from blox_lat.dataset._collect import Collector, MeasEntry
from blox_lat.dataset._columns import arrow_column
from blox_lat.dataset._errors import InputError
from blox_lat.dataset._readers import MeasRef, bench_row, leveled, raw_row
from blox_lat.dataset._schema import columns_of
from blox_lat.dataset._tables import Sections, section_table

__all__ = ["BenchTables", "add_bench", "bench_tables"]


class BenchTables(NamedTuple):
    """A device's ``bench`` table, its ``bench-raw`` table (None without raw samples) and its metadata."""

    bench: Any
    raw: Any
    metadata: dict


class Chosen(NamedTuple):
    """The record that stands for one model on a device."""

    index: int
    hash: str
    records: int  # records seen of the model
    record: dict | MeasRef
    row: dict | None  # its bench row, for a record kept as a dict
    raw: dict | None  # its raw row, for a record kept as a dict (None: no samples)
    leveled: Any  # the record as :func:`leveled` gives it, where it has a level

    def has_raw(self) -> bool:
        if isinstance(self.record, MeasRef):
            return self.record.part.raws[self.record.i] >= 0
        return self.raw is not None


def add_bench(s: Sections, c: Collector, raw: bool) -> None:
    """``bench/<device>`` per device, and ``bench-raw/<device>`` where ``raw`` and samples exist."""
    for device, t in bench_tables(c).items():
        s.add(f"bench/{device}", t.bench, t.metadata)
        if raw and t.raw is not None:
            s.add(f"bench-raw/{device}", t.raw, {"device": device})


def bench_tables(c: Collector) -> dict[str, BenchTables]:
    """device -> its tables, one row per model by the harness's selection rule."""
    by_device: dict[str, list[tuple[str, list[MeasEntry]]]] = {}
    for (device, h), recs in c.meas.items():
        by_device.setdefault(device, []).append((h, recs))
    out: dict[str, BenchTables] = {}
    for device, items in sorted(by_device.items()):
        chosen, protocols = _choose(items)
        anchors = c.anchors.get(device, [])
        meta = _bench_meta(device, _profile(device, c.profiles.get(device, {})), protocols, anchors)
        bench = _on_reference(_gather(f"bench/{device}", chosen, meta, raw=False), device, chosen, anchors)
        with_raw = [x for x in chosen if x.has_raw()]
        raws = _gather(f"bench-raw/{device}", with_raw, {"device": device}, raw=True) if with_raw else None
        out[device] = BenchTables(bench, raws, meta)
    return out


def _profile(device: str, settings: dict[str, str]) -> Any:
    """The one device setting of ``device`` (None for latencies from Blox files only)."""
    if len(settings) > 1:
        (s1, l1), (s2, l2) = sorted(settings.items())[:2]
        raise InputError(f"device {device!r} was measured with two settings ({l1}: {s1}; {l2}: {s2}); "
                         "measure them under two device profile names")
    return json.loads(next(iter(settings))) if settings else None


def _choose(items: list[tuple[str, list[MeasEntry]]]) -> tuple[list[Chosen], set[str]]:
    """The standing record of each model, in index order, and the protocols (JSON) they were measured with."""
    chosen: list[Chosen] = []
    protocols: set[str] = set()
    last_protocol: Any = None
    for h, recs in items:
        rec = recs[0].record if len(recs) == 1 else max(recs, key=lambda e: e.key).record
        protocol = rec.part.protocols[rec.i] if isinstance(rec, MeasRef) else rec.get("protocol")
        if protocol is not None and protocol != last_protocol:
            last_protocol = protocol  # one protocol per campaign: encode it once
            protocols.add(json.dumps(last_protocol, sort_keys=True))
        chosen.append(_chosen(h, len(recs), rec))
    chosen.sort(key=lambda x: x.index)
    return chosen, protocols


def _chosen(h: str, records: int, rec: dict | MeasRef) -> Chosen:
    if isinstance(rec, MeasRef):
        return Chosen(rec.part.meas[rec.i][2], h, records, rec, None, None, rec.part.leveled.get(rec.i))
    from blox_lat.harness import MeasurementRecord

    typed = MeasurementRecord.from_dict(rec)
    return Chosen(rec["_index"], h, records, rec, bench_row(typed), raw_row(typed), leveled(typed))


def _bench_meta(device: str, profile: Any, protocols: set[str], anchors: list[Any]) -> dict:
    from blox_lat.harness import RULE

    meta = {"device": device, "profile": profile, "latency_unit": "ms",
            "protocols": [json.loads(p) for p in sorted(protocols)],
            "duplicates_rule": RULE}
    if profile is None:
        meta["source"] = "blox-release"
    reference = _reference_meta(anchors)
    if reference is not None:
        meta["level_reference"] = reference
    return meta


def _reference_meta(anchors: list[Any]) -> dict | None:
    """The section metadata naming the device's common level reference (the earliest anchored
    campaign's, :func:`~blox_lat.harness.common_reference`, each campaign's reference being its
    earliest anchors line), the campaigns on it and those timed with other anchors (null
    levels); None for a device without anchors."""
    from blox_lat.harness import CampaignReference, common_reference

    by_campaign: dict[str, list[Any]] = {}
    for a in anchors:
        by_campaign.setdefault(str(a.campaign_id), []).append(a)
    refs = []
    for campaign, lines in by_campaign.items():
        first = min(lines, key=lambda a: str(a.recorded_at or ""))
        refs.append(CampaignReference(campaign, tuple(first.hashes), tuple(float(x) for x in first.reference_ms),
                                      str(first.recorded_at or "")))
    first, factors = common_reference(refs)
    if first is None:
        return None
    return {"campaign_id": first.campaign_id, "anchors": list(first.anchors),
            "reference_ms": list(first.reference_ms), "campaigns": sorted(factors),
            "other_anchors": sorted(set(by_campaign) - set(factors))}


#: the columns :func:`_on_reference` takes from :func:`~blox_lat.harness.stand`
_STANDING_COLUMNS = (("level", "level"), ("latency_corrected_ms", "corrected_ms"),
                     ("latency_corrected_se_ms", "corrected_se_ms"))


def _on_reference(table: Any, device: str, chosen: list[Chosen], anchors: list[Any]) -> Any:
    """``level``, ``latency_corrected_ms`` and ``latency_corrected_se_ms`` of every row as
    :func:`~blox_lat.harness.stand` gives them for its record: on the device's common reference
    (campaigns after the earliest rescaled onto it, their corrected SE adding the rescaling's),
    null for models timed without anchors or with other anchors than the reference's.

    ``stand`` sees every anchors line of the device and the chosen records that carry a level
    (one per model, so it stands), without their samples."""
    import pyarrow as pa

    from blox_lat.harness import stand

    n = len(chosen)
    at = {x.hash: pos for pos, x in enumerate(chosen) if x.leveled is not None}
    values: dict[str, list] = {name: [None] * n for name, _attr in _STANDING_COLUMNS}
    if at and anchors:
        for h, standing in stand([*anchors, *(chosen[pos].leveled for pos in at.values())]).of(device).items():
            pos = at[h]
            for name, attr in _STANDING_COLUMNS:
                values[name][pos] = getattr(standing, attr)
    names = table.column_names
    for name, _attr in _STANDING_COLUMNS:
        i = names.index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values[name], pa.float64()))
    return table


class _Sources(NamedTuple):
    """Where :func:`_gather` takes each chosen row from: the Arrow columns of each journal part
    (then the rows kept as dicts, after them), and the row of that concatenation per chosen row."""

    columns: list[dict]
    take: list[int]
    dict_rows: list[dict]


def _sources(chosen: list[Chosen], raw: bool) -> _Sources:
    sources: list[dict] = []
    offsets: dict[int, int] = {}
    total = 0
    take: list[int] = []
    dict_rows: list[dict] = []
    for x in chosen:
        rec = x.record
        if isinstance(rec, MeasRef):
            part = rec.part
            off = offsets.get(id(part))
            if off is None:
                cols = part.raw_columns if raw else part.columns
                off = offsets[id(part)] = total
                sources.append(cols)
                total += len(next(iter(cols.values())))
            take.append(off + (part.raws[rec.i] if raw else part.rows[rec.i]))
        else:
            take.append(-1 - len(dict_rows))  # placed after the parts' rows below
            dict_rows.append(x.raw if raw else x.row)
    return _Sources(sources, [t if t >= 0 else total - 1 - t for t in take], dict_rows)


def _gather(section: str, chosen: list[Chosen], metadata: dict, raw: bool):
    """The table of ``chosen`` rows: columns read by workers are taken from their Arrow arrays."""
    import pyarrow as pa

    src = _sources(chosen, raw)
    own = {"model_hash": [x.hash for x in chosen], "model_index": [x.index for x in chosen],
           "records": [x.records for x in chosen]}
    arrays = []
    for col in columns_of(section):
        if col.name in own:
            arrays.append(arrow_column(col, own[col.name], None))
        elif not src.columns:
            arrays.append(arrow_column(col, [r[col.name] for r in src.dict_rows], None))
        else:
            pieces = [cols[col.name] for cols in src.columns]
            if src.dict_rows:
                pieces.append(arrow_column(col, [r[col.name] for r in src.dict_rows], None))
            arrays.append((pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]).take(pa.array(src.take, pa.int64())))
    return section_table(section, arrays, metadata)
