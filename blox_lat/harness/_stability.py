"""Did a set run through a noise burst? Judged from what its models measured together.

Every model of an interleaved set (and its anchors) is timed in the same rounds, so a spell of
the host that slows a round slows every model in it. A set's *shared scatter* is how much its
rounds moved together: for each group index, the median over the set's models of the group
mean's log ratio to that model's own median group mean, and the standard deviation of that
round effect over the set. A quiet set's rounds move by 1-4 %; a set that ran through a burst
of other work has rounds 20-30 % slow, and the anchors, which correct one level the whole set
shares, cannot repair it: the trimmed mean of each model keeps a different part of the burst.

A set is *hit* when its shared scatter is above :data:`BURST_FLOOR` and above
:data:`TYPICAL_FACTOR` times the campaign's typical set (the lower median of the scatter that
the sets so far kept): on a host whose every set scatters alike, re-timing one would not do
better, and the campaign does not spend time on it. A redo is judged against its set's first
threshold. The numbers behind the constants are in docs/protocol.md.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["BURST_FLOOR", "MIN_SET_MODELS", "TYPICAL_FACTOR", "SetStability", "StabilityJudge", "shared_scatter"]

#: below this shared scatter a set is never called hit: quiet sets on a 2-core host scatter
#: 0.2-4 % from round to round in campaigns of 32-model sets, sets through a burst 7-26 %
#: (docs/protocol.md); small sets scatter more
BURST_FLOOR = 0.05
#: a hit set scatters at least this many times the campaign's typical set
TYPICAL_FACTOR = 2.0
#: fewer models than this (anchors included) share too little to judge a round by
MIN_SET_MODELS = 3


def shared_scatter(group_means: Sequence[Sequence[float]]) -> float | None:
    """The standard deviation over group indices of the set's shared round effect (see the
    module docstring); None when fewer than :data:`MIN_SET_MODELS` models or groups have one."""
    series = [list(g) for g in group_means if g and all(x > 0 for x in g)]
    if len(series) < MIN_SET_MODELS or len({len(s) for s in series}) != 1 or len(series[0]) < MIN_SET_MODELS:
        return None
    logs = []
    for s in series:
        centre = math.log(statistics.median(s))
        logs.append([math.log(x) - centre for x in s])
    effects = [statistics.median(column) for column in zip(*logs)]
    return statistics.pstdev(effects)


@dataclass(frozen=True)
class SetStability:
    """One timed attempt of a set: its shared scatter, the threshold it was judged against and
    whether it was hit by a burst."""

    shared_sd: float
    threshold: float

    @property
    def hit(self) -> bool:
        return self.shared_sd > self.threshold

    def to_dict(self) -> dict[str, float | bool]:
        return {"shared_sd": round(self.shared_sd, 5), "threshold": round(self.threshold, 5), "burst": self.hit}


@dataclass
class StabilityJudge:
    """Judges each set attempt against the campaign's sets so far (the lower median of the
    scatter each finished set kept is the typical set). Not frozen: it learns the campaign as it
    goes (:meth:`learn`); one per campaign run."""

    floor: float = BURST_FLOOR
    factor: float = TYPICAL_FACTOR
    seen: list[float] = field(default_factory=list)

    def threshold(self) -> float:
        typical = statistics.median_low(self.seen) if self.seen else 0.0
        return max(self.floor, self.factor * typical)

    def judge(self, group_means: Sequence[Sequence[float]], against: float | None = None) -> SetStability | None:
        """The attempt's stability (None when the set is too small to judge): a set's first
        attempt against the campaign so far, a redo ``against`` its first attempt's threshold
        (a set is one set of the campaign, however often it is timed)."""
        sd = shared_scatter(group_means)
        if sd is None:
            return None
        return SetStability(sd, self.threshold() if against is None else against)

    def learn(self, kept: SetStability | None) -> None:
        """A finished set joins the campaign's history with the scatter of the attempt it kept
        (a redo's, where the redo repaired a burst: a burst is not the typical set)."""
        if kept is not None:
            self.seen.append(kept.shared_sd)
