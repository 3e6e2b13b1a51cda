"""What a survey is asked to do: a frozen config, its budget parsed once, its identity for resume.

``SurveyConfig`` holds the user's choices; :meth:`SurveyConfig.identity` is what a survey
folder keeps and a rerun must match (device, protocol options, seed, prior): the budget and
the target width may change between runs, so that a survey can be given more time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat.survey._errors import SurveyError

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(text: str) -> float:
    """Seconds of ``text``: ``90``, ``90s``, ``15m``, ``1h``, ``1h30m`` (a bare number is seconds);
    :class:`SurveyError` for anything else or a duration that is not positive."""
    raw = str(text).strip().lower()
    total, pos = 0.0, 0
    for m in _DURATION.finditer(raw):
        if raw[pos:m.start()].strip() or (m.group(2) and m.group(2) not in _UNITS):
            break
        total += float(m.group(1)) * _UNITS.get(m.group(2) or "s", 1.0)
        pos = m.end()
    else:
        if raw and not raw[pos:].strip() and total > 0 and math.isfinite(total):
            return total
    raise SurveyError(f"budget {text!r}: give a positive duration such as 15m, 1h, 1h30m or 900 (seconds)")


@dataclass(frozen=True)
class SurveyConfig:
    """One survey: a device, a device-time budget and a folder; the protocol and its options.

    ``budget_s`` is the wall time of the measuring steps the survey may spend (export, warm-up,
    timed runs, anchors); ``target_width`` stops it early once the median relative half-width
    of the 90 % intervals over the whole space is at most that fraction. ``prior`` is another
    device's predictor file (``blox-lat predict transfer``). ``first_round`` fixes the size of the
    first round instead of sizing it to the budget (at least 45 without a prior, 10 with one);
    ``max_rounds`` ends the rounds after that many; ``retest`` models of the first round are
    measured again in a second campaign after it, for the test-retest floor."""

    device: str
    budget_s: float
    out: Path
    runs: int = 1000
    runs_per_group: int = 10
    warmup_runs: int = 10
    warmup_s: float = 0.5
    target_width: float | None = None
    prior: Path | None = None
    seed: int = 0
    connection: dict[str, Any] = field(default_factory=dict)
    device_files: tuple[str, ...] = ()
    store: Path | None = None
    on_busy: str = "warn"
    level: float = 0.9
    first_round: int | None = None  # models of the first round (default: sized to the budget)
    max_rounds: int | None = None  # stop after this many rounds (default: the budget and target decide)
    retest: int = 0  # models of the first round measured again in a second campaign (test-retest floor)

    def __post_init__(self) -> None:
        if not (isinstance(self.budget_s, (int, float)) and math.isfinite(self.budget_s) and self.budget_s > 0):
            raise SurveyError(f"budget {self.budget_s!r}: give a positive duration (e.g. 15m)")
        if self.target_width is not None and not 0 < self.target_width:
            raise SurveyError(f"target width {self.target_width!r}: give a positive percentage (e.g. 5 for +-5 %)")
        if self.runs < 1 or self.runs_per_group < 1 or self.runs < self.runs_per_group:
            raise SurveyError(f"--runs {self.runs} with --runs-per-group {self.runs_per_group}: runs must be "
                              "a positive multiple of the runs per group (e.g. --runs 100)")
        if self.warmup_runs < 0 or not self.warmup_s >= 0:
            raise SurveyError("warm-up runs and seconds must be 0 or more")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SurveyError(f"seed {self.seed!r}: give an integer 0 or more")
        if self.first_round is not None and not 1 <= self.first_round <= 91125:
            raise SurveyError(f"first round of {self.first_round} models: choose 1..91125")
        if isinstance(self.retest, bool) or not isinstance(self.retest, int) or self.retest < 0:
            raise SurveyError(f"--retest {self.retest!r}: give a number of models, 0 or more")
        if self.max_rounds is not None and self.max_rounds < 1:
            raise SurveyError(f"--max-rounds {self.max_rounds}: give 1 or more")
        if self.prior is not None and not Path(self.prior).is_file():
            raise SurveyError(f"--prior {self.prior}: no such file; give another device's predictor file "
                              "(blox-lat predict fit ... --out FILE)")

    def identity(self, prior_sha256: str | None) -> dict[str, Any]:
        """What a survey folder is bound to: a rerun with other values is refused."""
        return {"device": self.device, "runs": self.runs, "runs_per_group": self.runs_per_group,
                "warmup_runs": self.warmup_runs, "warmup_s": self.warmup_s, "seed": self.seed,
                "prior_sha256": prior_sha256}

    def flags(self, identity: dict[str, Any]) -> str:
        """The options that resume the survey of ``identity`` (for a refusal's message)."""
        text = (f"--device {identity['device']} --runs {identity['runs']} --runs-per-group "
                f"{identity['runs_per_group']} --warmup-runs {identity['warmup_runs']} --warmup-s "
                f"{identity['warmup_s']:g} --seed {identity['seed']}")
        return text + (" --prior (the same predictor file)" if identity.get("prior_sha256") else "")
