"""Transfer: fit a new device (or runtime version) from a few samples with another device's
predictor as the prior.

    log latency_new = a + b * log prior(x) + sum_s delta[s][b_s]

``a`` and ``b`` recalibrate the prior in log space (``b > 0`` keeps its ranking: a rank-preserving
map); ``delta`` is a per-(stage, block) residual table shrunk toward a feature model of block structure
(as in the ``structured`` families: what each operation and shape now costs more or less), the
table's ridge penalty by leave-one-out, never below ``MIN_SHRINK`` so that 50 samples cannot undo
the prior's 135 costs.
Intervals are conformal on the cross-validated residuals of the samples. With enough samples
(``MIN_STRUCTURED``) a ``structured`` fit of the samples alone competes by cross-validation.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from blox_lat.predict._data import TrainingSet
from blox_lat.predict._errors import PredictError, TooFewModelsError
from blox_lat.predict._features import (
    NUM_BLOCKS,
    NUM_STAGES,
    ONEHOT_DIM,
    blocks_of,
    gram_inverse,
    onehot,
    structure_costs,
    structure_design,
)
from blox_lat.predict._fit import (
    KAPPA_GRID,
    _provenance,
    accuracy,
    cross_coverage,
    cross_validate,
    fit,
    fold_ids,
    retest,
)
from blox_lat.predict._model import Predictor, evaluate, space_id
from blox_lat.predict._ridge import fit_ridge, single_blas_thread

MIN_SAMPLES = 10
#: samples from which a structured fit without the prior is tried too (its 37 feature weights)
MIN_STRUCTURED = 40
#: the residual table's penalty grid, relative to the mean squared norm of a one-hot column
SHRINK_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
MIN_SHRINK = SHRINK_GRID[0]


def _fit_transfer(prior: dict, blocks: np.ndarray, y: np.ndarray) -> dict:
    lp = np.log(evaluate(prior, blocks))
    ly = np.log(y)
    # the recalibration alone (two parameters, least squares), then the residual table on top
    a_mat = np.stack([np.ones(len(y)), lp], axis=1)
    (a, b), *_ = np.linalg.lstsq(a_mat, ly, rcond=None)
    if not b > 0:  # too few or too flat samples to estimate a slope: keep the prior's scale
        b = 1.0
        a = float(np.mean(ly - lp))
    resid = ly - (a + b * lp)
    # the residual table, shrunk toward a feature model of block structure (see _fit: structured)
    r, kappa = min(((fit_ridge(np.hstack([onehot(blocks), kappa * structure_design(blocks)]), resid, None,
                               grid=SHRINK_GRID, scale_cols=ONEHOT_DIM), kappa) for kappa in KAPPA_GRID),
                   key=lambda pair: pair[0].loo_mse)
    delta = r.coef[1:ONEHOT_DIM].reshape(NUM_STAGES, NUM_BLOCKS) + structure_costs(kappa * r.coef[ONEHOT_DIM:])
    return {"space": "log", "intercept": float(a + r.coef[0]), "costs": delta, "prior": prior,
            "prior_scale": float(b)}


def transfer(prior: Predictor, data: TrainingSet, *, folds: int = 5, seed: int = 0) -> Predictor:
    """A predictor for ``data.device`` from ``prior`` (another device's) and a few samples; when
    a ``structured`` fit of the samples alone cross-validates better (the prior ranks the new
    device worse than block structure does: fp32 -> int8 on a CPU, Spearman about 0.5), that fit,
    with the comparison in its ``cv``."""
    with_prior = _transfer(prior, data, folds, seed)
    if len(data) < MIN_STRUCTURED:
        decision = {"prior_used": True, "reason": f"{len(data)} samples, fewer than the {MIN_STRUCTURED} from which "
                                                  "a structured fit of the samples alone is tried"}
        return _decided(with_prior, decision)
    alone = fit(data, family="structured", folds=folds, seed=seed, allow_uncovered=True)
    mine, theirs = with_prior.cv["families"]["transfer"], alone.cv["families"]["structured"]
    used = not theirs["rmse_log"] < mine["rmse_log"]
    figures = "; ".join(f"{k} {mine[k]} with the prior vs {theirs[k]} alone" for k in ("rmse_log", "spearman",
                                                                                         "mape_pct"))
    decision = {"prior_used": used, "rule": "lower cross-validated rmse_log",
                "compared": {"transfer": {k: mine[k] for k in ("rmse_log", "spearman", "mape_pct")},
                             "structured": {k: theirs[k] for k in ("rmse_log", "spearman", "mape_pct")}},
                "reason": ("the prior's transfer cross-validated better than a structured fit of the samples alone "
                           if used else "a structured fit of the samples alone cross-validated better than the "
                           "prior's transfer ") + f"({figures})"}
    if used:
        with_prior = replace(with_prior, cv={**with_prior.cv, "families": {**alone.cv["families"],
                                                                          **with_prior.cv["families"]}})
        return _decided(with_prior, decision)
    cv = {**alone.cv, "families": {**alone.cv["families"], **with_prior.cv["families"]},
          "chosen": "structured (samples alone: the prior did not help)", "decision": decision}
    return replace(alone, cv=cv, method="transfer",
                   provenance={**alone.provenance, "prior": with_prior.provenance["prior"], "prior_used": False})


def _decided(with_prior: Predictor, decision: dict) -> Predictor:
    """The prior's transfer, with why it was kept (``cv.decision``, ``provenance.prior_used``)."""
    return replace(with_prior, cv={**with_prior.cv, "decision": decision},
                   provenance={**with_prior.provenance, "prior_used": True})


def _transfer(prior: Predictor, data: TrainingSet, folds: int, seed: int) -> Predictor:
    """The prior recalibrated plus a residual table (the module docstring)."""
    if len(data) < MIN_SAMPLES:
        raise TooFewModelsError(f"transfer needs at least {MIN_SAMPLES} measured models and got {len(data)}: "
                                f"measure {MIN_SAMPLES - len(data)} more (blox-lat predict plan {MIN_SAMPLES})")
    if data.device == prior.device and data.setting == prior.setting:
        raise PredictError(f"the samples are of {data.device!r}, the prior's own device: refit with "
                           "'blox-lat predict fit' instead of transferring")
    with single_blas_thread():
        t0 = time.perf_counter()
        blocks = blocks_of(data.indices)
        y = data.latency_ms
        k = min(folds, len(y))
        fold = fold_ids(len(y), k, seed)
        pred, spr = cross_validate("transfer", blocks, y, None, fold,
                                   fit_one=lambda bl, yy: _fit_transfer(prior.model, bl, yy))
        scores = np.log(y / pred) / spr
        prior_only = evaluate(prior.model, blocks)
        model = _fit_transfer(prior.model, blocks, y)
        cv = {"folds": k, "seed": seed, "chosen": "transfer",
              "families": {"transfer": {**accuracy(y, pred), "coverage90_pct": cross_coverage(scores, fold)},
                           "prior-unchanged": {k2: v for k2, v in accuracy(y, prior_only).items()
                                               if k2 in ("spearman", "rmse_log")}},
              "retest": retest(data), "fit_s": round(time.perf_counter() - t0, 3)}
        return Predictor(data.device, data.setting, data.protocol, data.latency, "transfer", model,
                         gram_inverse(blocks), np.sort(scores), {**data.summary(), "indices": data.indices.tolist()},
                         cv, "transfer",
                         {**_provenance(), "prior": {"device": prior.device, "setting": prior.setting,
                                                     "family": prior.family, "training": {
                                                         k2: v for k2, v in prior.training.items() if k2 != "indices"}}},
                         space_id())
