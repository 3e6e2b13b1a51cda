"""Profiled block costs as a prior: ``predict fit --prior-profile DIR``.

A folder of ``blox-lat profile`` records gives, for every (stage, block) pair profiled, the mean
time of that block's cell over the profiled models holding it there. As an additive ``ms``
table (the intercept: the mean of each record's protocol latency less its cells' time, so the
table reproduces the profiled latencies on average) it is a predictor of its own, which
:func:`~blox_lat.predict.transfer` recalibrates on the measured models like another device's
predictor (``log latency = a + b log prior + residual table``). A pair no profile covers
takes its stage's mean cell time (``training.uncovered_pairs`` counts them).
"""

from __future__ import annotations

import os

import numpy as np

from blox_lat.predict._errors import PredictError
from blox_lat.predict._features import ONEHOT_DIM
from blox_lat.predict._model import Predictor, space_id

__all__ = ["profile_prior"]


def profile_prior(source: str | os.PathLike[str], *, device: str | None = None) -> Predictor:
    """The prior predictor of the ok profile records in ``source`` (a folder or a profiles.jsonl)."""
    from blox_lat.profile import cell_costs, cell_ms, read_profiles, standing_profiles

    records = [r for r in standing_profiles(read_profiles(source)).values() if r.ok]
    devices = sorted({r.device for r in records})
    if device is not None:
        records = [r for r in records if r.device == device]
    elif len(devices) > 1:
        raise PredictError(f"{source} holds profiles of several devices ({', '.join(devices)}): pick one with --device")
    if not records:
        raise PredictError(f"{source} holds no ok profile{f' of device {device!r}' if device else ''}: "
                           "profile some models first (blox-lat profile)")
    costs, counts = cell_costs(records)
    rest = [rec.latency_ms - cell_ms(rec) for rec in records]
    if not (counts.sum(axis=1) > 0).all():
        raise PredictError(f"the profiles in {source} map no layer to a stage's block (a runtime that keeps no "
                           "names, such as TorchScript): they cannot be a prior")
    costs = np.where(np.isnan(costs), np.nanmean(costs, axis=1, keepdims=True), costs)
    model = {"space": "ms", "intercept": float(np.mean(rest)), "costs": costs}
    first = records[0]
    training = {"device": first.device, "models": len(records), "source": str(source), "profile_runs": first.profile_runs,
                "uncovered_pairs": int((counts == 0).sum())}
    return Predictor(f"{first.device} (profile)", dict(first.setting), dict(first.protocol), "raw", "profile", model,
                     np.zeros((ONEHOT_DIM, ONEHOT_DIM)), np.zeros(0), training, {}, "profile", {}, space_id())
