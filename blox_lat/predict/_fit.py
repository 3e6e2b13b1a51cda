"""Fitting: the model families, K-fold cross-validation, the family choice and conformal scores.

Families (all reduce to the tables of :mod:`._model`):

- ``additive``: latency_ms = intercept + sum of 135 per-(stage, block) costs in milliseconds,
  ridge-fitted for relative error (rows weighted by 1 / latency^2). Costs add up the way a
  sequential runtime spends time, and they stay interpretable (ms per block at that stage).
- ``additive-log``: the same table on log latency (costs are factors): better where a block's
  cost scales with the rest of the model (shared caches, thermal or clock effects).
- ``interact``: ``additive-log`` plus pairwise interaction terms: the products of the per-stage
  block descriptors (shape, ops, connection pattern, log MACs, log params) of each stage pair,
  penalised separately (``rho``). For devices where blocks do not add up (large batches, DSPs).
- ``structured``, ``structured-log``, ``structured-interact``: the same three, with each
  per-(stage, block) cost split into a feature model (36 coefficients: per stage, what each
  operation costs at each of a block's two positions and what each connection shape costs,
  :func:`._features.structure`) plus a residual table. The table's ridge penalty shrinks it
  toward zero and so the costs toward the feature model; the penalty is chosen by leave-one-out,
  and the features' is the table's over ``kappa**2`` (``kappa`` chosen alike). With few models
  the features carry the costs (a block seen twice is priced like its operations and shape);
  with many the table takes over.

Every penalty is chosen by exact leave-one-out error on the whole training set; the family is
chosen by K-fold cross-validated MAPE, and a family with interaction terms must beat the best
one without them by ``MIN_GAIN`` (relative) to be chosen. The out-of-fold log-ratios become the conformal
scores of the interval.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from blox_lat.predict._data import TrainingSet
from blox_lat.predict._errors import PredictError, TooFewModelsError
from blox_lat.predict._features import (
    FAMILY_NAMES,
    FEATURES_VERSION,
    NUM_BLOCKS,
    NUM_STAGES,
    ONEHOT_DIM,
    STRUCTURE_COLUMNS,
    blocks_of,
    cross,
    gram_inverse,
    onehot,
    pair_tables,
    structure_costs,
    structure_design,
    uncovered,
)
from blox_lat.predict._model import (
    Predictor,
    conformal_bounds,
    evaluate,
    space_id,
    spread,
)
from blox_lat.predict._plan import seeded
from blox_lat.predict._ridge import fit_ridge, single_blas_thread, solve_ridge


@dataclass(frozen=True)
class _Family:
    space: str  # "ms" (an additive table in ms, fitted for relative error) or "log"
    structured: bool = False  # the table is shrunk toward a feature model of block structure
    interactions: bool = False  # pairwise terms of stage descriptors
    min_models: int = NUM_BLOCKS


_FAMILIES = {
    "additive": _Family("ms"),
    "additive-log": _Family("log"),
    "interact": _Family("log", interactions=True, min_models=2 * NUM_STAGES * NUM_BLOCKS),
    "structured": _Family("ms", structured=True),
    "structured-log": _Family("log", structured=True),
    "structured-interact": _Family("log", structured=True, interactions=True, min_models=NUM_STAGES * NUM_BLOCKS),
}
FAMILIES = tuple(_FAMILIES)
if FAMILIES != FAMILY_NAMES:  # the file reader's list (blox_lat.predict._features) must name these
    raise ImportError("blox_lat.predict: FAMILY_NAMES and the fitted families differ")
#: fewest distinct models each family is fitted from (interaction terms need more; the
#: structured interaction family less, since the feature model carries the seldom-seen blocks)
MIN_MODELS = {name: fam.min_models for name, fam in _FAMILIES.items()}
MIN_GAIN = 0.02
RHO_GRID = (0.03, 0.1, 0.3)
#: weight of the structure features against the table: the feature model's penalty is the
#: table's divided by kappa squared, so the table is a residual shrunk toward the features
KAPPA_GRID = (1.0, 3.0, 10.0)


@dataclass(frozen=True)
class _Hyper:
    lam: float
    rho: float = 0.0
    kappa: float = 0.0


def _design(family: str, blocks: np.ndarray, hyper: _Hyper) -> np.ndarray:
    spec = _FAMILIES[family]
    parts = [onehot(blocks)]
    if spec.structured:
        parts.append(hyper.kappa * structure_design(blocks))
    if spec.interactions:
        parts.append(hyper.rho * cross(blocks))
    return np.hstack(parts) if len(parts) > 1 else parts[0]


def _target(family: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    return (y, 1.0 / y**2) if _FAMILIES[family].space == "ms" else (np.log(y), None)


def _to_model(family: str, coef: np.ndarray, hyper: _Hyper) -> dict:
    spec = _FAMILIES[family]
    costs = coef[1:ONEHOT_DIM].reshape(NUM_STAGES, NUM_BLOCKS)
    model: dict[str, Any] = {"space": spec.space, "intercept": float(coef[0])}
    rest = coef[ONEHOT_DIM:]
    if spec.structured:
        n_struct = NUM_STAGES * len(STRUCTURE_COLUMNS)
        beta = hyper.kappa * rest[:n_struct]
        costs = costs + structure_costs(beta)
        model["structure"] = {"columns": list(STRUCTURE_COLUMNS), "coef": beta.reshape(NUM_STAGES, -1)}
        rest = rest[n_struct:]
    model["costs"] = costs
    if spec.interactions:
        model["pairs"] = np.stack(pair_tables(hyper.rho * rest))
    return model


def choose_hyper(family: str, blocks: np.ndarray, y: np.ndarray) -> tuple[_Hyper, dict]:
    """Penalties (table, structure and interaction weights) by leave-one-out; returns them and
    the whole-set model."""
    spec = _FAMILIES[family]
    t, w = _target(family, y)
    best: tuple[float, _Hyper, np.ndarray] | None = None
    for rho in (RHO_GRID if spec.interactions else (0.0,)):
        for kappa in (KAPPA_GRID if spec.structured else (0.0,)):
            r = fit_ridge(_design(family, blocks, _Hyper(0.0, rho, kappa)), t, w,
                          scale_cols=ONEHOT_DIM if spec.structured else None)
            if best is None or r.loo_mse < best[0]:
                best = (r.loo_mse, _Hyper(r.lam, rho, kappa), r.coef)
    _mse, hyper, coef = best  # type: ignore[misc]
    return hyper, _to_model(family, coef, hyper)


def fit_fixed(family: str, blocks: np.ndarray, y: np.ndarray, hyper: _Hyper) -> dict:
    t, w = _target(family, y)
    return _to_model(family, solve_ridge(_design(family, blocks, hyper), t, w, hyper.lam), hyper)


# -- figures --------------------------------------------------------------------------------
def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (what Spearman's rho needs)."""
    a = np.asarray(a, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sa = a[order]
    bounds = np.flatnonzero(np.r_[True, sa[1:] != sa[:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        ranks[order[lo:hi]] = 0.5 * (lo + hi - 1)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def accuracy(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Spearman, MAPE (%), share within +-10 % (%) and RMSE of the log-ratio."""
    rel = predicted / measured - 1.0
    return {"spearman": round(spearman(measured, predicted), 5), "mape_pct": round(float(np.mean(np.abs(rel))) * 100, 4),
            "within10_pct": round(float(np.mean(np.abs(rel) <= 0.10)) * 100, 3),
            "rmse_log": round(float(np.sqrt(np.mean(np.log(predicted / measured) ** 2))), 6)}


#: fewest models measured in several campaigns from which the test-retest figures are given
MIN_RETEST = 3


def retest(data: TrainingSet) -> dict:
    """How well two measurements of the same models agree: the floor of any predictor's figures.

    Every model measured in several campaigns gives each pair of its campaigns' values (on the
    latency kind of the fit); each pair counts both ways, so neither campaign is the reference.
    The figures are those of :func:`accuracy`, one measurement predicting the other; with fewer
    than ``MIN_RETEST`` such models only their count is given.
    """
    first: list[float] = []
    second: list[float] = []
    for values in data.repeats.values():
        ms = [values[c] for c in sorted(values)]
        for a, x in enumerate(ms):
            for y in ms[a + 1:]:
                first.append(x)
                second.append(y)
    models = len(data.repeats)
    if models < MIN_RETEST:
        return {"models": models}
    x, y = np.array(first + second), np.array(second + first)
    return {"models": models, "pairs": len(first), **accuracy(x, y)}


def fold_ids(n: int, k: int, seed: int) -> np.ndarray:
    return seeded(seed).permutation(n) % k


def cross_validate(family: str, blocks: np.ndarray, y: np.ndarray, hyper: _Hyper, folds: np.ndarray,
                   fit_one=None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions and spreads (each fold fitted on the others)."""
    pred, spr = np.empty(len(y)), np.empty(len(y))
    for f in np.unique(folds):
        test, train = folds == f, folds != f
        model = fit_one(blocks[train], y[train]) if fit_one else fit_fixed(family, blocks[train], y[train], hyper)
        pred[test] = evaluate(model, blocks[test])
        spr[test] = spread(gram_inverse(blocks[train]), blocks[test])
    return pred, spr


def cross_coverage(scores: np.ndarray, folds: np.ndarray, level: float = 0.9) -> float:
    """Share of each fold's scores inside the bounds computed from the other folds' scores."""
    inside = 0
    for f in np.unique(folds):
        lo, hi = conformal_bounds(scores[folds != f], level)
        s = scores[folds == f]
        inside += int(np.sum((s >= lo) & (s <= hi)))
    return round(inside / len(scores) * 100, 2)


# -- checks ---------------------------------------------------------------------------------
def _names(pairs: list[tuple[int, int]], limit: int = 8) -> str:
    from blox_lat.space import list_blocks

    names = [f"stage {s} {list_blocks()[b].name}" for s, b in pairs[:limit]]
    return ", ".join(names) + (f" and {len(pairs) - limit} more" if len(pairs) > limit else "")


def check_enough(family: str, data: TrainingSet, allow_uncovered: bool = False) -> None:
    """:class:`TooFewModelsError` saying how many more models and which blocks are missing."""
    blocks = blocks_of(data.indices)
    missing = [] if allow_uncovered else uncovered(blocks)
    need = MIN_MODELS[family]
    per_stage = max((sum(1 for s, _b in missing if s == st) for st in range(NUM_STAGES)), default=0)
    more = max(need - len(data), per_stage)
    if more <= 0 and not missing:
        return
    source = data.sources[0] if data.sources else "runs/DEVICE"
    hint = f"`blox-lat predict plan --next {max(more, 1)} --from {source}` picks them"
    if missing:
        raise TooFewModelsError(
            f"{len(data)} models cover {135 - len(missing)} of the 135 (stage, block) pairs and the {family} "
            f"family needs every pair and at least {need} models: measure at least {max(more, 1)} more ({hint}); "
            f"uncovered: {_names(missing)} (or pass --allow-uncovered: those blocks get the stage's average cost "
            "and wider intervals)")
    fewer = [f for f in FAMILIES if MIN_MODELS[f] <= len(data)]
    raise TooFewModelsError(f"the {family} family needs at least {need} models and {len(data)} were measured: "
                            f"measure at least {more} more ({hint}) or choose --family "
                            f"{' or '.join(fewer) if fewer else 'auto'}")


# -- fit ------------------------------------------------------------------------------------
def fit(data: TrainingSet, *, family: str = "auto", folds: int = 5, seed: int = 0,
        allow_uncovered: bool = False) -> Predictor:
    """Fit the families, cross-validate them, pick one and calibrate its intervals.

    Every (stage, block) pair must appear in the training set unless ``allow_uncovered``: an
    unseen block then costs its stage's average, and its models' intervals widen (leverage).
    """
    with single_blas_thread():
        return _fit(data, family, folds, seed, allow_uncovered)


def _fit(data: TrainingSet, family: str, folds: int, seed: int, allow_uncovered: bool) -> Predictor:
    if family != "auto" and family not in FAMILIES:
        raise PredictError(f"unknown family {family!r}: use auto or one of {', '.join(FAMILIES)}")
    if family == "auto":
        check_enough("additive", data, allow_uncovered)
        candidates = [f for f in FAMILIES if len(data) >= MIN_MODELS[f]]
    else:
        check_enough(family, data, allow_uncovered)
        candidates = [family]
    if not 2 <= folds <= len(data):
        raise PredictError(f"--folds {folds}: use 2..{len(data)}")
    t0 = time.perf_counter()
    blocks = blocks_of(data.indices)
    y = data.latency_ms
    fold = fold_ids(len(y), folds, seed)
    results: dict[str, dict] = {}
    for fam in candidates:
        hyper, model = choose_hyper(fam, blocks, y)
        pred, spr = cross_validate(fam, blocks, y, hyper, fold)
        scores = np.log(y / pred) / spr
        results[fam] = {"model": model, "hyper": hyper, "scores": scores,
                        "cv": {**accuracy(y, pred), "coverage90_pct": cross_coverage(scores, fold),
                               **_hyper_record(fam, hyper)}}
    chosen = _choose(results)
    cv = {"folds": folds, "seed": seed, "chosen": chosen, "rule": f"lowest CV MAPE; a family with interaction "
          f"terms must beat the best one without them by {MIN_GAIN:.0%}", "families": {f: r["cv"] for f, r in results.items()},
          "retest": retest(data), "fit_s": round(time.perf_counter() - t0, 3)}
    r = results[chosen]
    return Predictor(data.device, data.setting, data.protocol, data.latency, chosen, r["model"],
                     gram_inverse(blocks), np.sort(r["scores"]), {**data.summary(), "indices": data.indices.tolist()},
                     cv, "fit", _provenance(), space_id())


def _hyper_record(family: str, hyper: _Hyper) -> dict:
    spec = _FAMILIES[family]
    return {"lambda": hyper.lam, **({"kappa": hyper.kappa} if spec.structured else {}),
            **({"rho": hyper.rho} if spec.interactions else {})}


def _choose(results: dict[str, dict]) -> str:
    """Lowest CV MAPE; a family with interaction terms must beat the best one without by MIN_GAIN."""
    mape = {f: r["cv"]["mape_pct"] for f, r in results.items()}
    simple = [f for f in mape if not _FAMILIES[f].interactions]
    best_simple = min(simple, key=mape.get) if simple else None
    best_inter = min((f for f in mape if _FAMILIES[f].interactions), key=mape.get, default=None)
    if best_inter is not None and (best_simple is None or mape[best_inter] < mape[best_simple] * (1 - MIN_GAIN)):
        return best_inter
    return best_simple  # type: ignore[return-value]


def _provenance() -> dict:
    from blox_lat import __version__

    return {"blox_lat": __version__, "features_version": FEATURES_VERSION}
