"""The latency protocol (SPEC section 2) as pure functions of raw samples, and its result.

Blox measures every model 1000 times: 100 groups of 10 consecutive runs. Inside each group the
values ``v`` with ``q25 <= v <= q75`` (numpy's default, linear percentiles) are averaged; over
the group averages the same filter is applied and the survivors are averaged again. That number
is the reported latency. Everything here is a pure function of the samples, so a stored
:class:`Measurement` can always be recomputed and checked from its raw samples.

Small-sample rule (not covered by the paper): with 2 distinct values no sample lies between the
quartiles; when the filter keeps nothing we fall back to the median of the values (for two
values, their mean). With 1 value the result is that value; with 0 values it is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from blox_lat.errors import BloxLatError

__all__ = [
    "DEFAULT_CV_THRESHOLD",
    "DEFAULT_HALFWIDTH_THRESHOLD",
    "Measurement",
    "MeasurementError",
    "TimingProtocol",
    "group_means",
    "protocol_latency",
    "trimmed_mean",
    "trimmed_mean_se",
]

#: Version of the statistic and of :class:`TimingProtocol`'s meaning; stored with each campaign.
PROTOCOL_VERSION = 1
#: coefficient of variation of single runs above which a measurement is flagged ``cv>0.1``:
#: information about the host (spikes the trimmed mean drops), not a judgement of the result
DEFAULT_CV_THRESHOLD = 0.10
#: relative half-width of the 95 % interval of the reported latency above which a measurement
#: is *noisy* (``halfwidth>0.05``) and timed again: its value is not known to +-5 %. At
#: ``--runs 100`` the committed cpu campaigns (benchmarks/data/predictor) have a median
#: half-width of 1.5 % and a 95th percentile of 5 %; the full protocol's 100 groups narrow it
#: by about sqrt(10)
DEFAULT_HALFWIDTH_THRESHOLD = 0.05
#: the protocol's trim on each side (values between the quartiles are kept)
TRIM = 0.25
#: two-sided 95 % normal quantile
Z95 = 1.959963984540054
#: models timed together by default where the worker is local (``blox-lat measure --interleave
#: auto``), one group per round, no re-warm runs: every model of a set then samples the shared
#: host's fast and slow spells at 100 moments spread over the whole set, so ranks within a set
#: hold across processes (README: repeatability), and the latency reads as the consecutive
#: protocol's (benchmarks/harness_overhead.py)
LOCAL_INTERLEAVE = 32


class MeasurementError(BloxLatError, ValueError):
    """Raw samples or protocol settings are unusable (empty, negative, wrong group size...)."""


def _percentile_linear(sorted_values: Sequence[float], q: float) -> float:
    """numpy.percentile(values, q) with the default 'linear' method, on sorted input.

    Written out so that the protocol has no numpy dependency and its arithmetic is visible:
    position ``h = (n - 1) * q / 100``, then ``a + (b - a) * frac`` (numpy's lerp, which returns
    ``a`` exactly when ``a == b``, so ties and constant samples are kept exactly).
    """
    n = len(sorted_values)
    h = (n - 1) * (q / 100.0)
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    a, b = sorted_values[lo], sorted_values[hi]
    frac = h - lo
    diff = b - a
    # numpy's _lerp: for t >= 0.5 it computes b - diff * (1 - t) to stay monotone
    return b - diff * (1.0 - frac) if frac >= 0.5 else a + diff * frac


def trimmed_mean(values: Sequence[float]) -> float:
    """Mean of the values inside the inter-quartile range (inclusive), the Blox filter.

    >>> trimmed_mean([1, 2, 3, 4, 100])
    3.0
    """
    if len(values) == 0:
        raise MeasurementError("cannot average zero samples: measure at least one run")
    ordered = sorted(float(v) for v in values)
    if any(math.isnan(v) for v in ordered):
        raise MeasurementError("samples contain NaN: the runner produced an invalid timing")
    q25 = _percentile_linear(ordered, 25.0)
    q75 = _percentile_linear(ordered, 75.0)
    kept = [v for v in ordered if q25 <= v <= q75]
    if not kept:  # only possible with fewer than 4 distinct values; see the module docstring
        return _median_sorted(ordered)
    return math.fsum(kept) / len(kept)


def _median_sorted(ordered: Sequence[float]) -> float:
    return _percentile_linear(ordered, 50.0)


def group_means(samples: Sequence[float], runs_per_group: int) -> list[float]:
    """Trimmed mean of each consecutive group of ``runs_per_group`` samples."""
    if runs_per_group < 1:
        raise MeasurementError(f"runs_per_group must be >= 1, got {runs_per_group}")
    if len(samples) == 0 or len(samples) % runs_per_group:
        raise MeasurementError(
            f"{len(samples)} samples do not split into groups of {runs_per_group}: "
            "the sample count must be a positive multiple of runs_per_group"
        )
    return [
        trimmed_mean(samples[i : i + runs_per_group]) for i in range(0, len(samples), runs_per_group)
    ]


def protocol_latency(samples: Sequence[float], runs_per_group: int) -> float:
    """The reported latency: trimmed mean over the groups' trimmed means (same unit as input)."""
    return trimmed_mean(group_means(samples, runs_per_group))


def trimmed_mean_se(values: Sequence[float]) -> float:
    """Standard error of the inter-quartile mean of ``values`` (Tukey-McLaughlin); 0 for fewer than 2."""
    n = len(values)
    if n < 2:
        return 0.0
    ordered = sorted(float(v) for v in values)
    lo, hi = _percentile_linear(ordered, 25.0), _percentile_linear(ordered, 75.0)
    wins = [min(max(v, lo), hi) for v in ordered]
    mean = math.fsum(wins) / n
    var = math.fsum((v - mean) ** 2 for v in wins) / (n - 1)
    return math.sqrt(var) / ((1.0 - 2.0 * TRIM) * math.sqrt(n))


@dataclass(frozen=True)
class TimingProtocol:
    """How to time one model: groups x runs, warm-up and the noise rule.

    The defaults are the paper's protocol (100 x 10, SPEC section 2). ``warmup_min_runs`` and
    ``warmup_min_s`` both have to be met before timing starts. A measurement whose coefficient
    of variation exceeds ``cv_threshold`` is flagged noisy.

    ``interleave`` and ``rounds`` spread a model's groups over time: up to ``interleave`` models
    are loaded in one worker and each model's groups are timed in ``rounds`` rounds, round-robin
    across the models (every group is still ``runs_per_group`` consecutive runs of one model,
    and each later round first re-warms its model with ``rewarm_runs`` untimed runs). A
    disturbance on a shared host that lasts seconds then spoils a few groups of many models,
    which the two-level quartile trim drops, instead of the whole measurement of one model,
    which it cannot see; with one group per round (``rounds == groups``) each model samples the
    host at 100 moments across the whole set. Re-warm runs are off by default: the first run
    after a switch of model is ~2 % slower on average and the rest within 1 % (which the
    within-group trim absorbs), while two re-warm runs per group of ten would add 20 % to a
    campaign's time.
    ``interleave=1, rounds=1`` is the plain consecutive protocol.
    """

    groups: int = 100
    runs_per_group: int = 10
    warmup_min_runs: int = 10
    warmup_min_s: float = 0.5
    cv_threshold: float = DEFAULT_CV_THRESHOLD
    version: int = PROTOCOL_VERSION
    interleave: int = 1
    rounds: int = 1
    rewarm_runs: int = 0
    halfwidth_threshold: float = DEFAULT_HALFWIDTH_THRESHOLD

    def __post_init__(self) -> None:
        if not isinstance(self.groups, int) or self.groups < 1:
            raise MeasurementError(f"groups must be a positive integer, got {self.groups!r}")
        if not isinstance(self.runs_per_group, int) or self.runs_per_group < 1:
            raise MeasurementError(
                f"runs per group must be a positive integer, got {self.runs_per_group!r}"
            )
        if self.warmup_min_runs < 0 or self.warmup_min_s < 0:
            raise MeasurementError("warm-up runs and seconds must be >= 0")
        if not (self.cv_threshold > 0):
            raise MeasurementError(f"cv threshold must be > 0, got {self.cv_threshold!r}")
        if not (0 < self.halfwidth_threshold < math.inf):
            raise MeasurementError(f"the half-width threshold must be > 0, got {self.halfwidth_threshold!r}")
        if not isinstance(self.interleave, int) or not 1 <= self.interleave <= 64:
            raise MeasurementError(f"interleave must be an integer in 1..64, got {self.interleave!r}")
        if not isinstance(self.rounds, int) or not 1 <= self.rounds <= self.groups:
            raise MeasurementError(
                f"rounds must be an integer in 1..groups ({self.groups}), got {self.rounds!r}: "
                "each round times at least one group"
            )
        if not isinstance(self.rewarm_runs, int) or self.rewarm_runs < 0:
            raise MeasurementError(f"rewarm runs must be an integer >= 0, got {self.rewarm_runs!r}")

    def round_sizes(self) -> list[int]:
        """Groups per round: as even as possible, earlier rounds take the remainder."""
        base, extra = divmod(self.groups, self.rounds)
        return [base + (1 if i < extra else 0) for i in range(self.rounds)]

    @classmethod
    def from_total(cls, runs: int, runs_per_group: int = 10, **kwargs: Any) -> TimingProtocol:
        """``--runs 1000`` with groups of 10 -> 100 groups; the total must divide evenly."""
        if runs < 1 or runs_per_group < 1 or runs % runs_per_group:
            raise MeasurementError(
                f"--runs {runs} is not a positive multiple of the group size {runs_per_group}: "
                f"use e.g. --runs {max(1, round(runs / max(runs_per_group, 1))) * max(runs_per_group, 1)}"
                " or change --runs-per-group"
            )
        return cls(groups=runs // runs_per_group, runs_per_group=runs_per_group, **kwargs)

    @property
    def total_runs(self) -> int:
        return self.groups * self.runs_per_group

    def identity(self) -> dict[str, Any]:
        """What makes two measurements comparable (the noise threshold does not).

        The interleaving fields appear only when they differ from the plain protocol, so
        journals written before they existed keep their identity."""
        ident: dict[str, Any] = {
            "version": self.version,
            "groups": self.groups,
            "runs_per_group": self.runs_per_group,
            "warmup_min_runs": self.warmup_min_runs,
            "warmup_min_s": self.warmup_min_s,
        }
        if self.interleave != 1 or self.rounds != 1:
            ident.update(interleave=self.interleave, rounds=self.rounds, rewarm_runs=self.rewarm_runs)
        return ident

    def to_dict(self) -> dict[str, Any]:
        extra = ({} if self.halfwidth_threshold == DEFAULT_HALFWIDTH_THRESHOLD
                 else {"halfwidth_threshold": self.halfwidth_threshold})
        return {**self.identity(), "cv_threshold": self.cv_threshold, **extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimingProtocol:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _std(values: Sequence[float], mean: float) -> float:
    """Population standard deviation (numpy's default ddof=0)."""
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


@dataclass(frozen=True)
class Measurement:
    """One model timed on one device: raw samples (ms) and statistics derived from them.

    Immutable; every derived field is computed in the constructor from ``samples_ms`` so a
    stored measurement can be reloaded and re-checked (:meth:`from_dict`). ``cv`` and
    ``rel_iqr`` are over the raw samples (``std/mean`` and ``iqr/median``). ``se_ms`` is the
    standard error of the reported latency from the group means (:func:`trimmed_mean_se`) and
    ``rel_halfwidth`` the relative half-width of its 95 % interval; ``noisy`` is
    ``rel_halfwidth > halfwidth_threshold``: the reported value is not known precisely enough.
    ``cv`` (flag ``cv>0.1``) is kept as information: it is sensitive to a few spikes that the
    trimmed mean ignores; ``group_cv`` (the spread of the group means) shows drift.
    For a batch > 1 the values are per batch, not per image.
    """

    samples_ms: tuple[float, ...]
    runs_per_group: int
    warmup_runs: int
    started_at: str
    finished_at: str
    cv_threshold: float = DEFAULT_CV_THRESHOLD
    halfwidth_threshold: float = DEFAULT_HALFWIDTH_THRESHOLD
    latency_ms: float = field(init=False)
    median_ms: float = field(init=False)
    mean_ms: float = field(init=False)
    min_ms: float = field(init=False)
    std_ms: float = field(init=False)
    iqr_ms: float = field(init=False)
    cv: float = field(init=False)
    rel_iqr: float = field(init=False)
    group_cv: float = field(init=False)
    group_means_ms: tuple[float, ...] = field(init=False)
    se_ms: float = field(init=False)
    rel_halfwidth: float = field(init=False)
    flags: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        samples = tuple(float(s) for s in self.samples_ms)
        if any(not math.isfinite(s) or s < 0 for s in samples):
            raise MeasurementError("samples must be finite, non-negative durations")
        means = group_means(samples, self.runs_per_group)
        ordered = sorted(samples)
        mean = math.fsum(samples) / len(samples)
        median = _median_sorted(ordered)
        std = _std(samples, mean)
        iqr = _percentile_linear(ordered, 75.0) - _percentile_linear(ordered, 25.0)
        cv = std / mean if mean > 0 else 0.0
        rel_iqr = iqr / median if median > 0 else 0.0
        group_mean = math.fsum(means) / len(means)
        group_cv = _std(means, group_mean) / group_mean if group_mean > 0 else 0.0
        latency = trimmed_mean(means)
        se = trimmed_mean_se(means)
        halfwidth = Z95 * se / latency if latency > 0 else 0.0
        flags: list[str] = []
        if cv > self.cv_threshold:
            flags.append(f"cv>{self.cv_threshold:g}")
        if halfwidth > self.halfwidth_threshold:
            flags.append(f"halfwidth>{self.halfwidth_threshold:g}")
        if len(means) < 4:
            flags.append("few-groups")
        values = {
            "samples_ms": samples,
            "se_ms": se,
            "rel_halfwidth": halfwidth,
            "latency_ms": latency,
            "median_ms": median,
            "mean_ms": mean,
            "min_ms": ordered[0],
            "std_ms": std,
            "iqr_ms": iqr,
            "cv": cv,
            "rel_iqr": rel_iqr,
            "group_cv": group_cv,
            "group_means_ms": tuple(means),
            "flags": tuple(flags),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_ns(
        cls,
        samples_ns: Sequence[int],
        *,
        runs_per_group: int,
        warmup_runs: int,
        started_at: str,
        finished_at: str,
        cv_threshold: float = DEFAULT_CV_THRESHOLD,
        halfwidth_threshold: float = DEFAULT_HALFWIDTH_THRESHOLD,
    ) -> Measurement:
        """Build from integer nanosecond timings (what runners produce)."""
        return cls(
            samples_ms=tuple(s / 1e6 for s in samples_ns),
            runs_per_group=runs_per_group,
            warmup_runs=warmup_runs,
            started_at=started_at,
            finished_at=finished_at,
            cv_threshold=cv_threshold,
            halfwidth_threshold=halfwidth_threshold,
        )

    @property
    def groups(self) -> int:
        return len(self.group_means_ms)

    @property
    def noisy(self) -> bool:
        """True when the reported latency's 95 % interval is wider than the threshold allows."""
        return any(f.startswith("halfwidth>") for f in self.flags)

    def to_dict(self) -> dict[str, Any]:
        """The journal form (``measurement`` field of a journal line, schema 1)."""
        return {
            "latency_ms": self.latency_ms,
            "median_ms": self.median_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "std_ms": self.std_ms,
            "iqr_ms": self.iqr_ms,
            "cv": self.cv,
            "rel_iqr": self.rel_iqr,
            "group_cv": self.group_cv,
            "groups": self.groups,
            "runs_per_group": self.runs_per_group,
            "warmup_runs": self.warmup_runs,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "cv_threshold": self.cv_threshold,
            "se_ms": self.se_ms,
            "rel_halfwidth": self.rel_halfwidth,
            "halfwidth_threshold": self.halfwidth_threshold,
            "noisy": self.noisy,
            "flags": list(self.flags),
            "group_means_ms": list(self.group_means_ms),
            "samples_ms": list(self.samples_ms),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """Rebuild from the journal form; the statistics are recomputed from the samples."""
        try:
            return cls(
                samples_ms=tuple(data["samples_ms"]),
                runs_per_group=int(data["runs_per_group"]),
                warmup_runs=int(data["warmup_runs"]),
                started_at=str(data["started_at"]),
                finished_at=str(data["finished_at"]),
                cv_threshold=float(data.get("cv_threshold", DEFAULT_CV_THRESHOLD)),
                halfwidth_threshold=float(data.get("halfwidth_threshold", DEFAULT_HALFWIDTH_THRESHOLD)),
            )
        except KeyError as exc:
            raise MeasurementError(f"measurement record lacks field {exc}") from None
