"""Which models a campaign run measures, decided once before it starts: an immutable plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blox_lat.harness._setlog import PartialSet

__all__ = ["CampaignPlan", "plan_campaign"]


@dataclass(frozen=True)
class CampaignPlan:
    """The models selected (each once, ``unique``), those ``already`` measured, those
    ``skipped`` (failed before, with ``skip_failed``), those to do (``todo``, the models of a
    set a killed run left unfinished first) and that set (``carried``)."""

    unique: tuple[Any, ...]
    already: tuple[Any, ...]
    skipped: tuple[Any, ...]
    todo: tuple[Any, ...]
    carried: PartialSet | None = None

    def carrying(self, carried: PartialSet | None) -> CampaignPlan:
        """This plan going on with ``carried``: its models first, in its order."""
        if carried is None:
            return self
        first_at = {h: i for i, h in enumerate(carried.models)}
        todo = tuple(sorted(self.todo, key=lambda a: first_at.get(a.hash, len(first_at))))
        return CampaignPlan(self.unique, self.already, self.skipped, todo, carried)


def _flags(line: Any) -> set[str]:
    """A journal line's measurement flags, with ``noisy`` when its measurement is."""
    measurement = (line or {}).get("measurement") or {}
    return set(measurement.get("flags") or ()) | ({"noisy"} if measurement.get("noisy") else set())


def plan_campaign(archs: Sequence[Any], done: Mapping[str, Any], failed_before: Mapping[str, Any],
                  skip_failed: bool, remeasure: Sequence[str] = ()) -> CampaignPlan:
    """Each model once; those done are skipped, and those failed before with ``skip_failed``.
    A model whose latest ok line carries a flag of ``remeasure`` (e.g. ``burst``) is measured
    again."""
    again = set(remeasure)
    done = {h: line for h, line in done.items() if not (again and again & _flags(line))}
    unique = tuple({a.hash: a for a in archs}.values())
    already = tuple(a for a in unique if a.hash in done)
    skipped = tuple(a for a in unique if a.hash not in done and skip_failed and a.hash in failed_before)
    left_out = {a.hash for a in skipped}
    todo = tuple(a for a in unique if a.hash not in done and a.hash not in left_out)
    return CampaignPlan(unique, already, skipped, todo)
