"""What a campaign tells its caller while it runs: small frozen event values.

A campaign calls ``on_event(event)`` with one of these; a listener dispatches on the type (the
CLI's progress bar keeps a dict from type to method). ``kind`` is the event's stable name and
``to_dict()`` its fields, for listeners that log events as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from blox_lat.harness._records import MeasurementRecord

__all__ = [
    "AnchorsTimed",
    "CampaignEvent",
    "CampaignStarted",
    "DeviceLost",
    "EventSink",
    "ModelDone",
    "Remeasuring",
    "SetFailed",
    "SetDiscarded",
    "SetProgress",
    "SetRedone",
    "SetResumed",
    "ThermalWaited",
]


@dataclass(frozen=True)
class CampaignEvent:
    """Base of every campaign event."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


EventSink = Callable[[CampaignEvent], None]


@dataclass(frozen=True)
class CampaignStarted(CampaignEvent):
    """The journal is open and the work is known (before any model is measured)."""

    kind: ClassVar[str] = "start"
    selected: int
    todo: int
    already_done: int
    skipped_failed: int
    env_id: str
    devices: list[str]


@dataclass(frozen=True)
class Remeasuring(CampaignEvent):
    """``arch``'s attempt ``attempt`` was noisy (the relative half-width of its latency's 95 %
    interval, ``halfwidth``, above the protocol's threshold): it is timed again."""

    kind: ClassVar[str] = "retry"
    arch: Any
    attempt: int
    halfwidth: float


@dataclass(frozen=True)
class DeviceLost(CampaignEvent):
    """A farm member's link stayed down; its model goes back to the others."""

    kind: ClassVar[str] = "device-lost"
    device: str
    reason: str


@dataclass(frozen=True)
class SetProgress(CampaignEvent):
    """A set of ``models`` timed together finished round ``round`` of ``rounds`` (attempt ``attempt``)."""

    kind: ClassVar[str] = "set-progress"
    models: int
    round: int
    rounds: int
    attempt: int


@dataclass(frozen=True)
class SetResumed(CampaignEvent):
    """A set a killed run left goes on: ``rounds_kept`` of ``rounds`` are not timed again."""

    kind: ClassVar[str] = "set-resumed"
    models: int
    attempt: int
    rounds_kept: int
    rounds: int


@dataclass(frozen=True)
class SetDiscarded(CampaignEvent):
    """The partial-set file held another protocol or none of the models to measure: removed."""

    kind: ClassVar[str] = "set-discarded"
    models: int
    rounds_kept: int


@dataclass(frozen=True)
class SetFailed(CampaignEvent):
    """A set failed as a whole; its models are measured again one at a time."""

    kind: ClassVar[str] = "interleave-failed"
    models: int
    reason: str


@dataclass(frozen=True)
class SetRedone(CampaignEvent):
    """Attempt ``attempt`` of a set ran through a noise burst (its rounds scattered together by
    ``shared_sd``): its ``models`` are timed again with its anchors, once the host is quiet."""

    kind: ClassVar[str] = "set-redone"
    models: int
    attempt: int
    shared_sd: float


@dataclass(frozen=True)
class ModelDone(CampaignEvent):
    """``record`` is in the journal; it is the ``position``-th of ``todo`` this run."""

    kind: ClassVar[str] = "model"
    record: MeasurementRecord
    position: int
    todo: int


@dataclass(frozen=True)
class ThermalWaited(CampaignEvent):
    """``device`` was at or above its thermal limit before a model: the campaign waited
    ``waited_s`` (``cool``: it got below the limit) and times the anchors next."""

    kind: ClassVar[str] = "thermal-wait"
    device: str
    waited_s: float
    cool: bool


@dataclass(frozen=True)
class AnchorsTimed(CampaignEvent):
    """A device that measures one model at a time timed its anchors (``trigger``: ``start``,
    ``every`` N models or ``thermal-wait``); ``level`` is None when an anchor failed."""

    kind: ClassVar[str] = "anchors"
    trigger: str
    level: float | None
