"""The report page: one HTML file, figures embedded as base64 PNG, no script, no network.

Read at any window width: a table's cells wrap and, if it is still wider than the page, it
scrolls sideways in its own box rather than clipping; a list longer than ``COLLAPSE_ROWS``
rows (hash lists of noisy and re-measured models, Pareto fronts) is folded into a
``<details>`` whose summary says how many rows it holds."""

from __future__ import annotations

import base64
import html
from typing import Any

__all__ = ["COLLAPSE_ROWS", "render_html"]

COLLAPSE_ROWS = 10

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1a1a1a;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}p.missing{color:#8a4b00;background:#fff6e5;padding:.4em .6em;border-left:3px solid #E69F00}
div.table{max-width:100%;overflow-x:auto;margin:.6em 0 1.2em}
table{border-collapse:collapse;font-size:.82em}th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;
vertical-align:top;overflow-wrap:break-word}td code{white-space:nowrap}td.long{overflow-wrap:anywhere;min-width:10em}
details{margin:.6em 0 1.2em}summary{cursor:pointer;font-weight:600;padding:.3em 0}details div.table{margin-top:0}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:600;padding:.3em 0}
nav a{margin-right:1em}.meta{color:#555;font-size:.9em}code{font-size:.95em}
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.6g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if isinstance(value, dict):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
        return f"<td><code>{value}</code></td>"
    text = "" if value is None else str(value)
    if len(text) > 40:  # versions, protocol: may break inside a word (a commit hash) so the table fits
        return f'<td class="long">{html.escape(text)}</td>'
    return f"<td>{html.escape(text)}</td>"


def _table(caption: str, columns: list[str], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    table = f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    if len(rows) > COLLAPSE_ROWS:  # folded: the summary stands for the caption and says how many rows
        return (f"<details><summary>{html.escape(caption)}: {len(rows)} rows</summary>"
                f'<div class="table"><table>{table}</details>')
    return f'<div class="table"><table><caption>{html.escape(caption)}</caption>{table}'



def render_html(meta: dict[str, Any], parts: list[Any], images: dict[str, bytes]) -> str:
    """The page for ``parts`` (see :class:`blox_lat.report._build.Part`); ``images`` maps figure names to PNG bytes."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>blox-lat report</title>", f"<style>{_CSS}</style></head><body>", "<h1>blox-lat report</h1>"]
    sources = "; ".join(f"{html.escape(s['path'])} ({s['kind']}: {', '.join(map(html.escape, s['devices']))})"
                        for s in meta["sources"])
    out.append(f'<p class="meta">{html.escape(meta["generator"])}, {html.escape(meta["created_at"])}. '
               f"Sources: {sources}. Every number shown is in <code>report.json</code>; every figure is also in "
               "<code>figures/</code> as PNG and SVG.</p>")
    kinds = meta.get("latency") or {}
    if kinds:
        labels = {"raw": "raw (protocol) latency", "corrected": "level-corrected latency (latency / level of its set)"}
        shown = "; ".join(f"{html.escape(d)}: {labels.get(k, k)}" for d, k in kinds.items())
        out.append(f'<p class="meta">Latency shown (<code>--latency {html.escape(str(meta.get("latency_requested")))}'
                   f"</code>): {shown}.</p>")
    out.append("<nav>" + "".join(f'<a href="#{p.key}">{html.escape(p.title)}</a>' for p in parts) + "</nav>")
    for p in parts:
        out.append(f'<section id="{p.key}"><h2>{html.escape(p.title)}</h2>')
        for note in p.notes:
            out.append(f'<p class="missing">{html.escape(note)}</p>')
        for name, _fig, caption in p.figures:
            data = base64.b64encode(images[name]).decode("ascii")
            out.append(f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(caption)}" '
                       f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)} '
                       f"(<code>figures/{html.escape(name)}.svg</code>)</figcaption></figure>")
        for caption, columns, rows in p.tables:
            if rows:
                out.append(_table(caption, columns, rows))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
