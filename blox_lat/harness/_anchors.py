"""Anchor models and set levels: what makes latencies from different sets comparable.

Interleaving makes ranks hold *within* a set; between sets minutes apart a shared host's level
moves every model alike (0.82-1.03 of the first set over one 1,000-model campaign). So every
set also times the same K *anchor* models, round-robin with its other members. A set's
**level** is the geometric mean of its anchors' latencies over their *reference* latencies
(the campaign's first anchored set), and a model's **level-corrected latency** is its protocol
latency divided by the level of the set (and attempt) that measured it. The correction assumes
that a level shift scales every model alike; docs/protocol.md says how far that holds.

Anchors are chosen from the space alone (no measurement), so that every campaign of a device
setting with the same K gets the same anchors: the models at evenly spaced FLOPs quantiles of
a fixed sample of the space, spanning its latency range.

A device that measures one model at a time (remote devices) times the anchors on their own: at
the start of a run, every ``DEFAULT_ANCHOR_EVERY`` models and right after a thermal wait; each
model then carries the level of the latest anchor run before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blox_lat.errors import BloxLatError

__all__ = ["DEFAULT_ANCHORS", "DEFAULT_ANCHOR_EVERY", "AnchorError", "CampaignReference", "SetLevel", "choose_anchors",
           "common_reference", "set_level"]

#: anchors per set by default (``blox-lat measure --anchors auto`` on an interleaving device):
#: 3 anchors in a set of 32 cost 3/35 of the set's time (under the 10 % budget) and the
#: geometric mean of three spreads one anchor's own noise over three
DEFAULT_ANCHORS = 3
#: on a device that measures one model at a time, the anchors run again after this many models
#: (``--anchor-every``): an anchor costs about one model (the anchors span the latency range), so
#: K anchors every N models cost K / (N + K) of the campaign: 3 every 30 is 9.1 %, under 10 %
DEFAULT_ANCHOR_EVERY = 30
#: every this many models of the space is a candidate anchor (a fixed, deterministic sample)
_STRIDE = 97


class AnchorError(BloxLatError, ValueError):
    """An anchor count or anchor set that cannot work (negative, more than the sample...)."""


def choose_anchors(k: int) -> list[Any]:
    """``k`` anchor models spanning the space's FLOPs (hence latency) range, deterministically:
    among every 97th model of the space, the ones at FLOPs quantiles (j + 0.5) / k."""
    from blox_lat import space as sp

    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= 16:
        raise AnchorError(f"anchors must be an integer in 0..16, got {k!r} (0 disables them)")
    if k == 0:
        return []
    sample = [sp.from_index(i) for i in range(0, sp.space_info()["unique_models"], _STRIDE)]
    ranked = sorted(sample, key=lambda a: (sp.flops(a), a.index))
    return [ranked[min(len(ranked) - 1, int((j + 0.5) * len(ranked) / k))] for j in range(k)]


@dataclass(frozen=True)
class SetLevel:
    """One timed attempt of a set, seen through its anchors: their latencies (ms, in anchor
    order), the reference latencies they are compared with, and the level that follows."""

    anchors: tuple[str, ...]
    latencies_ms: tuple[float, ...]
    reference_ms: tuple[float, ...]
    level: float


def set_level(latencies_ms: Sequence[float], reference_ms: Sequence[float]) -> float:
    """The geometric mean of ``latency / reference`` over the anchors (1.0 for the reference set)."""
    if not latencies_ms or len(latencies_ms) != len(reference_ms):
        raise AnchorError(f"{len(latencies_ms)} anchor latencies for {len(reference_ms)} reference latencies: "
                          "a level needs the same anchors (at least one) timed and in the reference")
    if any(not (v > 0) for v in (*latencies_ms, *reference_ms)):
        raise AnchorError("anchor latencies must be positive")
    return math.exp(math.fsum(math.log(a / r) for a, r in zip(latencies_ms, reference_ms)) / len(latencies_ms))


@dataclass(frozen=True)
class CampaignReference:
    """An anchored campaign's reference: its anchors, their reference latencies (its first anchor
    run) and when that run was recorded (from the first ``anchors`` line of its journal)."""

    campaign_id: str
    anchors: tuple[str, ...]
    reference_ms: tuple[float, ...]
    recorded_at: str

    @classmethod
    def of_line(cls, line: dict[str, Any]) -> CampaignReference:
        """The reference an ``anchors`` journal line states; :class:`AnchorError` if it cannot."""
        try:
            ref = cls(str(line["campaign_id"]), tuple(str(a["model_hash"]) for a in line["anchors"]),
                      tuple(float(x) for x in line["reference_ms"]), str(line.get("recorded_at") or ""))
        except (KeyError, TypeError, ValueError):
            raise AnchorError("an anchors line without campaign_id, anchors or reference_ms") from None
        if not ref.anchors:
            raise AnchorError("an anchors line with no anchors and no reference_ms (no reference to compare "
                              "a set's anchors with)")
        if len(ref.anchors) != len(ref.reference_ms):
            raise AnchorError(f"an anchors line with {len(ref.anchors)} anchors but {len(ref.reference_ms)} "
                              "reference_ms values")
        if not all(x > 0 and math.isfinite(x) for x in ref.reference_ms):
            raise AnchorError(f"an anchors line with a bad reference_ms {list(ref.reference_ms)} (each a finite "
                              "latency > 0)")
        return ref


def common_reference(refs: Sequence[CampaignReference]) -> tuple[CampaignReference | None, dict[str, float]]:
    """Put campaigns of one device setting on one reference, the earliest campaign's: each
    campaign's levels (relative to its own first anchor run) times its factor, the level of that
    run on the common reference. Campaigns timed with other anchors get no factor (their levels
    cannot be compared). Returns the reference campaign (None without any) and the factors."""
    if not refs:
        return None, {}
    first = min(refs, key=lambda r: (r.recorded_at, r.campaign_id))
    return first, {r.campaign_id: set_level(r.reference_ms, first.reference_ms)
                   for r in refs if r.anchors == first.anchors}
