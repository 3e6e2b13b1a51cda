"""A part of the report's page and the helpers every part uses.

A :class:`Part` holds figures, the numbers they show (all of them go into ``report.json``),
tables, and for a figure that cannot be drawn a sentence saying why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LIST_LIMIT", "Part", "json_ready", "safe_name"]

LIST_LIMIT = 50  # rows of a list shown on the page; report.json has them all


@dataclass
class Part:
    """One part of the page: figures (name, Figure, caption), numbers, tables and notes."""

    key: str
    title: str
    figures: list[tuple[str, Any, str]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, list[str], list[dict[str, Any]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def safe_name(name: str) -> str:
    """``name`` as a file name: runs of other characters than letters, digits, ``._-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "x"


def json_ready(value: Any, digits: int = 6) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python, floats rounded."""
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if not math.isfinite(v) else round(v, digits)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [json_ready(v, digits) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, digits) for v in value]
    return value
