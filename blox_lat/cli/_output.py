"""Shared CLI option sets and the one writer for human, JSON and NDJSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click


def json_option(help_text: str = "Print JSON for scripts instead of a table.") -> Callable:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def emit_json(obj: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(obj, indent=2, default=_default))


def emit_ndjson(rows: Iterable[Any]) -> None:
    """One compact JSON object per line (streams; good for 91,125 rows)."""
    out = sys.stdout
    for row in rows:
        out.write(json.dumps(row, separators=(",", ":"), default=_default) + "\n")
    out.flush()


def emit_table(rows: list[dict], columns: list[str]) -> None:
    """A plain aligned text table (no colour, so it survives pipes and logs)."""
    if not rows:
        click.echo("(nothing)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def emit_pairs(pairs: list[tuple[str, Any]]) -> None:
    """``key: value`` lines, keys aligned."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value}")


def check_out_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check that the output folder ``path`` can be created and written, leaving nothing behind.

    Commands call this before any work, so a read-only or impossible folder is one line and
    exit status 2 instead of a traceback once the work is done (permission bits do not stop
    root: only writing a file tells). Folders it had to create are removed again, so a later
    bad-input error leaves no trace either.
    """
    from blox_lat._fs import probe_writable

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise click.BadParameter(f"{folder} is a file, not a folder", param_hint=option)
    try:
        probe_writable(folder)
    except OSError as exc:
        raise click.BadParameter(f"cannot write in {folder} ({exc.strerror or type(exc).__name__}); "
                                 "pick a writable folder", param_hint=option) from None
    return folder


def progress_bar(label: str, detail: str, *, trailing: str | None = None, console: Any = None) -> Any:
    """The CLI's one progress bar: ``label``, bar, done/total, ``detail``, elapsed time, ETA.

    ``label``, ``detail`` and ``trailing`` are rich format strings over the task's fields.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(detail), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    if trailing is not None:
        columns.append(TextColumn(trailing))
    return Progress(*columns, console=console, transient=False)
