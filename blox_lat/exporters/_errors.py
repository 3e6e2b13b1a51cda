"""Typed errors of the exporters; every one says how to fix the problem."""

from __future__ import annotations

from blox_lat.errors import BloxLatError


class ExportError(BloxLatError):
    """An export could not be produced (bad format/option/path, failed tool, failed check)."""


class VerificationError(ExportError):
    """An exported artifact does not reproduce the PyTorch model (checked on every export)."""


class SnpeNotFoundError(ExportError):
    """The Qualcomm SNPE SDK (or one of its tools) cannot be found."""


class SnpeToolError(ExportError):
    """An SNPE tool ran and failed; the message carries the tail of its output."""
