"""The latency protocol (SPEC section 2) against hand-computed cases and numpy."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blox_lat.errors import BloxLatError
from blox_lat.harness import (
    Measurement,
    MeasurementError,
    TimingProtocol,
    group_means,
    protocol_latency,
    time_callable,
    trimmed_mean,
    trimmed_mean_se,
)


def numpy_trimmed_mean(values):
    a = np.asarray(values, dtype=float)
    q25, q75 = np.percentile(a, 25), np.percentile(a, 75)
    kept = a[(a >= q25) & (a <= q75)]
    return float(kept.mean()) if kept.size else float(np.median(a))


# -- hand-computed cases ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [
        ([1, 2, 3, 4, 100], 3.0),  # q25=2, q75=4 -> mean(2,3,4)
        ([4, 3, 2, 1], 2.5),  # q25=1.75, q75=3.25 -> mean(2,3); order does not matter
        ([1, 1, 1, 5], 1.0),  # ties: q25=1, q75=2 -> the three 1s
        ([2, 2, 9, 9], 5.5),  # ties at both quartiles: q25=2, q75=9 -> all four
        ([7.25] * 10, 7.25),  # constant samples are kept exactly
        ([5.0], 5.0),  # one sample
        ([1, 2, 3], 2.0),  # three: q25=1.5, q75=2.5 -> 2
        ([1, 3], 2.0),  # two distinct: nothing between the quartiles -> median fallback
        ([3, 3], 3.0),  # two equal: both kept
    ],
)
def test_trimmed_mean_hand_computed(values, expected):
    assert trimmed_mean(values) == pytest.approx(expected, abs=1e-12)


def test_two_level_hand_computed():
    samples = [1, 2, 3, 4, 10, 10, 10, 10, 1, 1, 1, 100]
    # groups of 4: [1,2,3,4] -> 2.5 ; [10]*4 -> 10 ; [1,1,1,100] -> 1 (q75 = 25.75)
    assert group_means(samples, 4) == pytest.approx([2.5, 10.0, 1.0])
    # over [1, 2.5, 10]: q25 = 1.75, q75 = 6.25 -> only 2.5 is kept
    assert protocol_latency(samples, 4) == pytest.approx(2.5)


def test_paper_shape_ignores_outliers():
    rng = np.random.default_rng(3)
    samples = 2.0 + rng.normal(0, 0.01, 1000)
    samples[::97] = 50.0  # scheduler spikes
    assert protocol_latency(samples.tolist(), 10) == pytest.approx(2.0, abs=0.01)
    assert float(np.mean(samples)) > 2.4  # a plain mean would be far off


@pytest.mark.parametrize("bad", [[], [float("nan"), 1.0]])
def test_trimmed_mean_rejects_unusable_input(bad):
    with pytest.raises(MeasurementError):
        trimmed_mean(bad)


def test_group_size_must_divide():
    with pytest.raises(MeasurementError, match="multiple of runs_per_group"):
        group_means([1.0] * 15, 10)
    with pytest.raises(MeasurementError):
        group_means([1.0] * 10, 0)


# -- against numpy ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), min_size=1, max_size=40))
def test_trimmed_mean_matches_numpy(values):
    assert trimmed_mean(values) == pytest.approx(numpy_trimmed_mean(values), rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30))
def test_trimmed_mean_matches_numpy_with_many_ties(values):
    assert trimmed_mean(values) == pytest.approx(numpy_trimmed_mean(values), abs=1e-12)


# -- Measurement --------------------------------------------------------------------------------


def _measurement(samples, rpg=10, threshold=0.10):
    return Measurement(samples_ms=tuple(samples), runs_per_group=rpg, warmup_runs=12,
                       started_at="2025-01-01T00:00:00+00:00", finished_at="2025-01-01T00:00:01+00:00",
                       cv_threshold=threshold)


def test_measurement_statistics_match_numpy():
    rng = np.random.default_rng(0)
    samples = (3.0 + rng.gamma(2.0, 0.05, 200)).tolist()
    m = _measurement(samples)
    a = np.asarray(samples)
    assert m.latency_ms == pytest.approx(protocol_latency(samples, 10))
    assert m.median_ms == pytest.approx(np.median(a))
    assert m.mean_ms == pytest.approx(a.mean())
    assert m.min_ms == a.min()
    assert m.std_ms == pytest.approx(a.std())
    assert m.iqr_ms == pytest.approx(np.percentile(a, 75) - np.percentile(a, 25))
    assert m.cv == pytest.approx(a.std() / a.mean())
    assert m.rel_iqr == pytest.approx(m.iqr_ms / np.median(a))
    gm = np.asarray(m.group_means_ms)
    assert m.group_cv == pytest.approx(gm.std() / gm.mean())
    assert m.groups == 20 and len(m.group_means_ms) == 20
    assert not m.noisy and m.flags == ()


def test_noise_flag_and_round_trip():
    """Noisy means imprecise: the group means scatter so much that the reported latency's 95 %
    interval is wider than +-5 %. Spikes the trimmed mean drops raise cv (information) only."""
    spiky = _measurement([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0] * 4)
    assert spiky.cv > 0.1 and "cv>0.1" in spiky.flags and not spiky.noisy and spiky.se_ms == 0.0
    noisy = _measurement([1.0] * 10 + [1.5] * 10 + [1.0] * 10 + [2.0] * 10)
    assert noisy.noisy and "halfwidth>0.05" in noisy.flags and noisy.rel_halfwidth > 0.05
    assert noisy.rel_halfwidth == pytest.approx(1.959963984540054 * trimmed_mean_se(noisy.group_means_ms)
                                                / noisy.latency_ms)
    assert "few-groups" not in noisy.flags
    assert "few-groups" in _measurement([1.0] * 20).flags
    again = Measurement.from_dict(noisy.to_dict())
    assert again == noisy
    record = noisy.to_dict()
    for key in ("latency_ms", "median_ms", "mean_ms", "min_ms", "std_ms", "iqr_ms", "cv", "rel_iqr",
                "groups", "runs_per_group", "warmup_runs", "started_at", "finished_at", "noisy",
                "flags", "group_means_ms", "samples_ms", "se_ms", "rel_halfwidth", "halfwidth_threshold"):
        assert key in record
    assert record["noisy"] is True and record["groups"] == 4


def test_trimmed_mean_se_matches_the_spread_of_repeated_measurements():
    """The standard error describes how far a retest moves the reported latency: over 400
    simulated retests of 100 groups, the spread of the protocol latency matches the mean SE."""
    rng = np.random.default_rng(1)
    latencies, ses = [], []
    for _ in range(400):
        means = (2.0 + rng.gamma(2.0, 0.05, 100)).tolist()
        latencies.append(trimmed_mean(means))
        ses.append(trimmed_mean_se(means))
    assert np.std(latencies) == pytest.approx(np.mean(ses), rel=0.15)


def test_constant_samples_measurement():
    m = _measurement([2.5] * 30)
    assert m.latency_ms == 2.5 and m.std_ms == 0.0 and m.cv == 0.0 and m.iqr_ms == 0.0


def test_from_ns_converts_units():
    m = Measurement.from_ns([2_000_000] * 10, runs_per_group=10, warmup_runs=10,
                            started_at="a", finished_at="b")
    assert m.latency_ms == 2.0 and m.samples_ms == (2.0,) * 10


def test_measurement_rejects_bad_samples():
    with pytest.raises(MeasurementError):
        _measurement([1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(MeasurementError):
        _measurement([1.0] * 9)
    with pytest.raises(MeasurementError, match="lacks field"):
        Measurement.from_dict({"samples_ms": [1.0]})


# -- TimingProtocol -----------------------------------------------------------------------------


def test_protocol_defaults_are_the_papers():
    p = TimingProtocol()
    assert (p.groups, p.runs_per_group, p.total_runs) == (100, 10, 1000)
    assert p.warmup_min_runs >= 10 and p.warmup_min_s >= 0.5 and p.cv_threshold == 0.10
    assert TimingProtocol.from_total(200).groups == 20
    assert TimingProtocol.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("runs, rpg", [(25, 10), (0, 10), (10, 0)])
def test_protocol_from_total_rejects(runs, rpg):
    with pytest.raises(BloxLatError, match="--runs"):
        TimingProtocol.from_total(runs, rpg)


def test_protocol_rejects_bad_fields():
    with pytest.raises(MeasurementError):
        TimingProtocol(groups=0)
    with pytest.raises(MeasurementError):
        TimingProtocol(cv_threshold=0)


# -- the timing loop, with an injected clock --------------------------------------------------


def test_time_callable_with_fake_clock():
    ticks = iter(range(0, 10**12, 1000))
    seen_gc = []

    def run_once():
        seen_gc.append(gc.isenabled())

    raw = time_callable(run_once, groups=3, runs_per_group=4, warmup_min_runs=10,
                        warmup_min_s=50e-6, clock=lambda: next(ticks))
    # deadline = 0 + 50 us; the first 10 runs do not read the clock (min runs not met yet),
    # then one read per run at 1, 2, ... 49 us keeps warming: 10 + 49 runs
    assert raw.warmup_runs == 59
    assert raw.samples_ns == (1000,) * 12  # t1 - t0 is one tick
    assert all(seen_gc[: raw.warmup_runs])  # gc on during warm-up
    assert not any(seen_gc[raw.warmup_runs :])  # gc off during groups
    assert gc.isenabled()
    assert raw.started_at <= raw.finished_at


def test_time_callable_min_runs_dominates():
    raw = time_callable(lambda: None, groups=1, runs_per_group=2, warmup_min_runs=25, warmup_min_s=0.0)
    assert raw.warmup_runs == 25 and len(raw.samples_ns) == 2
    assert all(isinstance(s, int) and s >= 0 for s in raw.samples_ns)
    assert not math.isnan(sum(raw.samples_ns))
