"""Parse the CSV that ``snpe-diagview --input_log SNPEDiag_0.log --output <csv>`` writes.

What SNPE measures, and at which granularity (as far as it is known here):

- ``snpe-net-run`` runs the network once for every line of its ``--input_list``; one
  execution of the tool = one model load + N inferences. With ``--profiling_level basic`` (or
  ``detailed``) it writes a diagnostic log (``SNPEDiag_0.log``) holding timings *per
  inference*; it does not print them itself.
- ``snpe-diagview`` turns that log into text (a summary that *averages* over the input list
  and whose wording changes between SDK versions) or into CSV. We parse the CSV: a flat table
  with a header row; each whole-network statistic ("Total Inference Time", "Forward
  Propagate", "Init", ...) appears once per recorded inference in rows whose ``Layer Id`` is
  empty, with ``Time`` in the unit named by ``Unit of Measurement`` (microseconds for these
  statistics; per-layer rows carry a ``Layer Id`` and may be cycles on the DSP).
- The column names ``Layer Id``, ``Layer Name``, ``Message``, ``Time`` and ``Unit of
  Measurement`` are taken from a public consumer of ``--csv_format_version 2`` output; we have
  no SDK here to produce a real file, so ``tests/data/snpe/`` holds reconstructed samples.
  Other columns are ignored. The header is checked up front and anything unexpected raises
  :class:`SnpeOutputError` carrying the first lines of the output, never a zero latency.
- Not known: whether SNPE drops a warm-up inference from the log, and whether "Total
  Inference Time" includes input/output tensor copies on every SDK (it is the end-to-end
  ``execute()`` time on the versions documented publicly). Callers should warm up with their
  own leading inputs and discard them, and keep the raw per-inference list.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from blox_lat.errors import BloxLatError

__all__ = ["REQUIRED_COLUMNS", "DiagviewLayer", "SnpeOutputError", "parse_diagview_csv", "parse_diagview_layers",
           "read_diagview_csv"]

REQUIRED_COLUMNS = ("Layer Id", "Message", "Time", "Unit of Measurement")

STATISTICS = {
    "total": re.compile(r"\ATotal Inference Time(?: \[NetRun\])?\Z", re.IGNORECASE),
    "forward": re.compile(r"\AForward Propagate\Z", re.IGNORECASE),
}

_UNIT_TO_MS = (
    (re.compile(r"\A(?:us|usec|µs|microseconds?)\Z", re.IGNORECASE), 1e-3),
    (re.compile(r"\A(?:ms|msec|milliseconds?)\Z", re.IGNORECASE), 1.0),
    (re.compile(r"\A(?:ns|nsec|nanoseconds?)\Z", re.IGNORECASE), 1e-6),
)
_NUMBER_RE = re.compile(r"\A[0-9]+(?:\.[0-9]+)?\Z")


class SnpeOutputError(BloxLatError):
    """SNPE output does not look as expected; ``head`` holds its first lines."""

    def __init__(self, message: str, text: str) -> None:
        self.head = "\n".join(text.splitlines()[:8])
        super().__init__(f"{message}\nfirst lines of the snpe-diagview CSV:\n{self.head or '(empty)'}")


def parse_diagview_csv(text: str, statistic: str = "total") -> list[float]:
    """Per-inference times in milliseconds, in log order, of ``statistic``.

    ``statistic`` is ``"total"`` ("Total Inference Time") or ``"forward"`` ("Forward
    Propagate"). Raises :class:`SnpeOutputError` when the header, a unit or a value is not
    what we know, or when the statistic does not occur at all.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    pattern = STATISTICS[statistic]
    text = text.lstrip("\ufeff")
    rows = csv.reader(io.StringIO(text))
    header = next((row for row in rows if any(cell.strip() for cell in row)), None)
    if header is None:
        raise SnpeOutputError("snpe-diagview produced an empty CSV (was profiling enabled?)", text)
    columns = [cell.strip() for cell in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SnpeOutputError(
            f"unexpected snpe-diagview CSV header: missing column(s) {missing}; expected "
            f"{list(REQUIRED_COLUMNS)} (run snpe-diagview with --csv_format_version 2?)",
            text,
        )
    idx = {name: columns.index(name) for name in REQUIRED_COLUMNS}
    times: list[float] = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(columns):
            raise SnpeOutputError(f"short row on line {rows.line_num}: {row!r}", text)
        if row[idx["Layer Id"]].strip():
            continue  # a per-layer row
        if not pattern.match(row[idx["Message"]].strip()):
            continue
        value, unit = row[idx["Time"]].strip(), row[idx["Unit of Measurement"]].strip()
        if not _NUMBER_RE.match(value):
            raise SnpeOutputError(f"non-numeric time {value!r} on line {rows.line_num}", text)
        scale = next((s for unit_re, s in _UNIT_TO_MS if unit_re.match(unit)), None)
        if scale is None:
            raise SnpeOutputError(
                f"unit {unit!r} of {row[idx['Message']].strip()!r} on line {rows.line_num} is not "
                "a time unit we know", text,
            )
        times.append(float(value) * scale)
    if not times:
        raise SnpeOutputError(
            f"no {pattern.pattern[2:-2]!r} rows in the snpe-diagview CSV (profiling level off, "
            "or no inference ran?)", text,
        )
    return times


def read_diagview_csv(path: Path, statistic: str = "total") -> list[float]:
    """:func:`parse_diagview_csv` on a file."""
    return parse_diagview_csv(Path(path).read_text(encoding="utf-8", errors="replace"), statistic)


@dataclass(frozen=True)
class DiagviewLayer:
    """One per-layer row of one inference: ``value`` in ``unit`` (``ms``, or ``cycles`` on the DSP)."""

    inference: int
    layer_id: str
    name: str
    message: str
    value: float
    unit: str
    runtime: str


def parse_diagview_layers(text: str) -> tuple[float | None, list[DiagviewLayer]]:
    """The ``Init`` time (ms, None when absent) and every per-layer row, in file order.

    Per-layer rows are those with a ``Layer Id``; their ``Message`` is the layer's type and
    ``Runtime`` (when the column exists) where it ran. Times are converted to ms; ``CYCLES``
    stay cycles (unit ``cycles``): the clock they count is not in the file. Raises
    :class:`SnpeOutputError` as :func:`parse_diagview_csv` does.
    """
    text = text.lstrip("\ufeff")
    rows = csv.reader(io.StringIO(text))
    header = next((row for row in rows if any(cell.strip() for cell in row)), None)
    if header is None:
        raise SnpeOutputError("snpe-diagview produced an empty CSV (was profiling enabled?)", text)
    columns = [cell.strip() for cell in header]
    missing = [c for c in (*REQUIRED_COLUMNS, "Execution", "Layer Name") if c not in columns]
    if missing:
        raise SnpeOutputError(f"unexpected snpe-diagview CSV header for per-layer times: missing {missing}", text)
    idx = {name: columns.index(name) for name in columns}
    init_ms = None
    layers: list[DiagviewLayer] = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(columns):
            raise SnpeOutputError(f"short row on line {rows.line_num}: {row!r}", text)
        value, unit = row[idx["Time"]].strip(), row[idx["Unit of Measurement"]].strip()
        message = row[idx["Message"]].strip()
        layer_id = row[idx["Layer Id"]].strip()
        if not layer_id and message.lower() != "init":
            continue
        if not _NUMBER_RE.match(value):
            raise SnpeOutputError(f"non-numeric time {value!r} on line {rows.line_num}", text)
        if unit.lower() == "cycles":
            scale, unit_name = 1.0, "cycles"
        else:
            scale = next((s for unit_re, s in _UNIT_TO_MS if unit_re.match(unit)), None)
            unit_name = "ms"
            if scale is None:
                raise SnpeOutputError(f"unit {unit!r} on line {rows.line_num} is not a unit we know", text)
        if not layer_id:
            init_ms = float(value) * scale
            continue
        runtime = row[idx["Runtime"]].strip() if "Runtime" in idx else ""
        layers.append(DiagviewLayer(int(row[idx["Execution"]] or 0), layer_id, row[idx["Layer Name"]].strip(),
                                    message, float(value) * scale, unit_name, runtime))
    return init_ms, layers
