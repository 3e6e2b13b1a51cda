"""Typed errors of reports and comparisons; each becomes one line on stderr and exit status 2."""

from __future__ import annotations

from blox_lat.errors import BloxLatError

__all__ = ["OutputError", "OutputExistsError", "ProtocolMismatchError", "ReportError", "SourceError", "SourceMismatchError"]


class ReportError(BloxLatError):
    """Base class of every report/compare problem a user can fix."""


class SourceError(ReportError):
    """A source is neither a campaign folder nor a release, is empty, or cannot be read."""


class SourceMismatchError(ReportError):
    """Sources that cannot go on one page or be compared (search space, schema, models, device)."""


class ProtocolMismatchError(ReportError):
    """Two sources were measured with different protocols (see ``--allow-protocol-mismatch``)."""


class OutputError(ReportError):
    """The output folder cannot be written (a read-only file system, no permission, a full disk)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output folder exists; a report never overwrites one unless asked to (``--force``)."""
