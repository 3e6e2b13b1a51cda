"""What a campaign directory already holds: done and failed models, the recorded settings, the
reference of its levels, and the set a killed run left unfinished (:mod:`._setlog`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from blox_lat.harness._anchors import AnchorError, CampaignReference
from blox_lat.harness._events import EventSink, SetDiscarded
from blox_lat.harness._journal import JOURNAL_NAME, JournalError, check_measurement_line, read_journal_lines
from blox_lat.harness._protocol import TimingProtocol
from blox_lat.harness._records import ANCHORS, ENVIRONMENT, MEASUREMENT
from blox_lat.harness._rules import full_identity
from blox_lat.harness._setlog import PartialSet, load_partial_set, remove_partial_set, remove_stale_temps

__all__ = ["campaign_status", "carried_set", "check_reference_line"]


def campaign_status(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Done / failed model hashes and the recorded settings of a campaign directory; ``done``
    maps each model measured ok to its latest ok line."""
    path = Path(out_dir) / JOURNAL_NAME
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    first_env: dict[str, Any] | None = None
    last_env: dict[str, Any] | None = None
    first_anchors: dict[str, Any] | None = None
    reference: tuple[CampaignReference, int] | None = None
    if path.exists():
        for number, record in read_journal_lines(path):
            if record.get("kind") == ENVIRONMENT:
                first_env = first_env or record
                last_env = record
            elif record.get("kind") == ANCHORS and first_anchors is None:
                first_anchors = record
                reference = (check_reference_line(record, path, number), number)
            elif record.get("kind") == MEASUREMENT:
                key = check_measurement_line(record, path, number)
                if record.get("status") == "ok":
                    done[key] = record
                    failed.pop(key, None)
                elif key not in done:
                    failed[key] = record
    return {"journal": path, "done": done, "failed": failed, "first_environment": first_env,
            "last_environment": last_env, "first_anchors": first_anchors, "reference": reference}


def check_reference_line(record: dict[str, Any], path: Path, number: int) -> CampaignReference:
    """The reference a campaign's first ``anchors`` line states (the dataset reader's judgement
    of it); :class:`JournalError` naming the file and line when it states none."""
    try:
        return CampaignReference.of_line(record)
    except AnchorError as exc:
        raise JournalError(f"{path}:{number}: the campaign's first anchors line, the reference of its levels, "
                           f"is unusable: {exc}; restore the file from a backup or remove that line") from None


def carried_set(out: Path, todo: Sequence[Any], protocol: TimingProtocol, emit: EventSink) -> PartialSet | None:
    """The set a killed run left unfinished, restricted to the models still to measure; None
    (and the file removed) when it has none of them or was timed with another protocol."""
    remove_stale_temps(out)
    state = load_partial_set(out)
    wanted = [a.hash for a in todo]
    kept = state.only(wanted) if state is not None and state.protocol == full_identity(protocol.identity()) else None
    if kept is None:
        if state is not None:
            emit(SetDiscarded(models=len(state.models), rounds_kept=state.rounds_kept()))
        remove_partial_set(out)
    return kept
