"""The partial-set file: every finished round of the interleaved set in progress, kept durably.

With interleaving, a set of up to 32 models is timed for minutes before its records reach the
journal. ``set.partial.jsonl`` (next to the journal) keeps each finished round as it arrives, so
that a campaign killed mid-set (even by SIGKILL) resumes the set at the round in progress instead
of timing it again from the start.

Written like the journal: one JSON object per line, each line one ``write`` (``O_APPEND``) then
``fsync``; a torn or damaged line ends what is read (everything before it is kept). Lines:

- ``{"schema": 1, "kind": "set", "models": [hash, ...], "protocol": identity, "campaign_id"}``,
  first: what identifies the set, its models in order and the protocol identity; with anchors
  also ``"anchors": [hash, ...]``, the anchor models timed with the set (after its models in
  every round line's ``members``).
- ``{"kind": "round", "attempt": a, "members": [hash, ...], "round": r, "rounds": R,
  "raws": [{samples_ns, warmup_runs, started_at, finished_at}, ...]}``: round ``r`` of attempt
  ``a`` (a re-measurement of the noisy members is attempt 2, ...), one raw per member.

The file is replaced atomically (temp file + rename) when a set starts or resumes, and removed
once every model of the set has its journal record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat.harness._timing import RawRun

__all__ = ["SET_NAME", "PartialAttempt", "PartialSet", "SetLog", "load_partial_set", "remove_partial_set",
           "remove_stale_temps"]

SET_NAME = "set.partial.jsonl"
SET_SCHEMA = 1


@dataclass
class PartialAttempt:
    """The rounds one attempt of a set has finished, in order (one raw per member each)."""

    attempt: int
    members: tuple[str, ...]
    rounds: int
    done: list[list[RawRun]] = field(default_factory=list)

    def only(self, keep: set[str]) -> PartialAttempt | None:
        """This attempt restricted to the members in ``keep``; None if none is left."""
        cols = [i for i, h in enumerate(self.members) if h in keep]
        if not cols:
            return None
        return PartialAttempt(self.attempt, tuple(self.members[i] for i in cols), self.rounds,
                              [[row[i] for i in cols] for row in self.done])


@dataclass
class PartialSet:
    """What a killed campaign left of its set in progress."""

    models: tuple[str, ...]
    protocol: dict[str, Any]
    attempts: list[PartialAttempt] = field(default_factory=list)
    anchors: tuple[str, ...] = ()

    def only(self, keep: list[str]) -> PartialSet | None:
        """The set restricted to ``keep`` (the models still to measure, in the set's order);
        its anchors stay."""
        wanted = set(keep)
        models = tuple(h for h in self.models if h in wanted)
        if not models:
            return None
        attempts = [a for a in (a.only(wanted | set(self.anchors)) for a in self.attempts) if a is not None]
        return PartialSet(models, self.protocol, attempts, self.anchors)

    def rounds_kept(self) -> int:
        return sum(len(a.done) for a in self.attempts)


def _lines(path: Path) -> list[dict[str, Any]]:
    """The file's complete, valid JSON object lines up to the first torn or damaged one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if not isinstance(record, dict):
            break
        records.append(record)
    return records


def _raw(data: dict[str, Any]) -> RawRun:
    return RawRun.from_dict(data)


def load_partial_set(out_dir: Path) -> PartialSet | None:
    """The partial set in ``out_dir``, or None when there is none (or none readable)."""
    records = _lines(out_dir / SET_NAME)
    if not records or records[0].get("kind") != "set" or records[0].get("schema") != SET_SCHEMA:
        return None
    head = records[0]
    try:
        state = PartialSet(tuple(str(h) for h in head["models"]), dict(head["protocol"]),
                           anchors=tuple(str(h) for h in head.get("anchors", ())))
        for record in records[1:]:
            if record.get("kind") != "round":
                break
            attempt, members = int(record["attempt"]), tuple(str(h) for h in record["members"])
            number, rounds = int(record["round"]), int(record["rounds"])
            raws = [_raw(r) for r in record["raws"]]
            if len(raws) != len(members) or not set(members) <= set(state.models) | set(state.anchors):
                break
            current = state.attempts[-1] if state.attempts else None
            if current is None or current.attempt != attempt or current.members != members:
                if number != 1:
                    break
                if current is not None and current.attempt >= attempt:
                    state.attempts = [a for a in state.attempts if a.attempt < attempt]
                current = PartialAttempt(attempt, members, rounds)
                state.attempts.append(current)
            if number != len(current.done) + 1 or rounds != current.rounds:
                break
            current.done.append(raws)
    except (KeyError, TypeError, ValueError):
        return None
    return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(out_dir: Path) -> None:
    """Temp files of a :class:`SetLog` killed while it replaced the file (under the dir lock)."""
    for temp in out_dir.glob(f".{SET_NAME}.*.tmp"):
        temp.unlink(missing_ok=True)


def remove_partial_set(out_dir: Path) -> None:
    """Forget the partial set (its models have their journal records, or it was discarded)."""
    try:
        (out_dir / SET_NAME).unlink()
    except FileNotFoundError:
        return
    _fsync_dir(out_dir)


def _round_line(attempt: int, members: tuple[str, ...], number: int, rounds: int,
                raws: list[RawRun]) -> dict[str, Any]:
    return {"kind": "round", "attempt": attempt, "members": list(members), "round": number, "rounds": rounds,
            "raws": [{k: v for k, v in r.to_dict().items() if k != "facts"} for r in raws]}


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


class SetLog:
    """Appends the finished rounds of one set to ``set.partial.jsonl``, each fsynced."""

    def __init__(self, out_dir: Path, models: list[str], protocol: dict[str, Any], campaign_id: str,
                 carried: PartialSet | None = None, anchors: list[str] | None = None) -> None:
        """Start the file for a set of ``models`` (and ``anchors``), holding the ``carried``
        rounds of a resumed set (already restricted to these models); it replaces any earlier
        file atomically."""
        self.out_dir = out_dir
        self.path = out_dir / SET_NAME
        head: dict[str, Any] = {"schema": SET_SCHEMA, "kind": "set", "models": list(models), "protocol": protocol,
                                "campaign_id": campaign_id}
        if anchors:
            head["anchors"] = list(anchors)
        body = [_encode(head)]
        for attempt in carried.attempts if carried is not None else []:
            for number, raws in enumerate(attempt.done, start=1):
                body.append(_encode(_round_line(attempt.attempt, attempt.members, number, attempt.rounds, raws)))
        temp = self.path.with_name(f".{SET_NAME}.{os.getpid()}.tmp")
        with open(temp, "wb") as fh:
            fh.write(b"".join(body))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, self.path)
        _fsync_dir(out_dir)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append_round(self, attempt: int, members: tuple[str, ...], number: int, rounds: int,
                     raws: list[RawRun]) -> None:
        view = memoryview(_encode(_round_line(attempt, members, number, rounds, raws)))
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finish(self) -> None:
        """Every model of the set has its journal record: the file goes."""
        self.close()
        remove_partial_set(self.out_dir)
