"""A fitted predictor as tables, its calibrated intervals, and its file format.

Every family reduces to the same form, evaluated by lookups on a model's block triple:

    z = intercept + sum_s costs[s][b_s] + sum_(s,t) pairs[(s,t)][b_s][b_t] + scale * log(prior(x))
    latency_ms = z                 (space "ms": an additive table in milliseconds)
    latency_ms = exp(z)            (space "log")

``pairs`` (interactions) and ``prior`` (transfer: another fitted model of the same form) are
optional. ``structure`` (the ``structured`` families) records the feature model's coefficients
for the reader; its costs are already part of ``costs``, so prediction never reads it.

The interval is split-conformal in log space: ``scores`` are the cross-validated log-ratios
``log(measured / predicted)`` divided by the model's spread ``sqrt(1 + h(x))``, where
``h(x) = x' G^-1 x`` is the leverage of the model's one-hot design against the training set's
(``ginv``, recomputed from the training models' indices when a file is read); the interval at
level ``1 - a`` is ``pred * exp(q_lo * spread)`` to ``pred * exp(q_hi * spread)`` with ``q`` the
conformal quantiles of the scores.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blox_lat.predict._errors import (
    DeviceMismatchError,
    PredictError,
    PredictorFileError,
)
from blox_lat.predict._features import (
    FAMILY_NAMES,
    LEVERAGE_PRIOR,
    NUM_BLOCKS,
    NUM_STAGES,
    ONEHOT_DIM,
    PAIRS,
    blocks_of,
    gram_inverse,
)
from blox_lat.predict._files import write_out

FORMAT = "blox-lat-predictor"
#: predictor file schema; history in docs/predict.md ("File format")
PREDICTOR_SCHEMA = 1


def space_id() -> dict:
    """What a predictor file says about its search space (a release's ``search_space`` record)."""
    from blox_lat.dataset import search_space_record

    return search_space_record()


def evaluate(model: dict, blocks: np.ndarray) -> np.ndarray:
    """Latency (ms) of each block triple under a model's tables (see the module docstring)."""
    blocks = np.asarray(blocks, dtype=np.int64)
    costs = np.asarray(model["costs"], dtype=float)
    z = np.full(len(blocks), float(model["intercept"]))
    for s in range(NUM_STAGES):
        z += costs[s][blocks[:, s]]
    pairs = model.get("pairs")
    for (s, t), table in zip(PAIRS, pairs if pairs is not None else ()):
        z += np.asarray(table, dtype=float)[blocks[:, s], blocks[:, t]]
    if model.get("prior") is not None:
        z += float(model["prior_scale"]) * np.log(evaluate(model["prior"], blocks))
    if model["space"] == "log":
        return np.exp(z)
    return np.maximum(z, 1e-9)  # an additive table far outside its data may dip below zero


def spread(ginv: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """``sqrt(1 + x' G^-1 x)`` for one-hot ``x`` of each triple, by lookups (no design matrix)."""
    blocks = np.asarray(blocks, dtype=np.int64)
    cols = [np.zeros(len(blocks), dtype=np.int64)] + [1 + NUM_BLOCKS * s + blocks[:, s] for s in range(NUM_STAGES)]
    h = np.zeros(len(blocks))
    for a in cols:
        for b in cols:
            h += ginv[a, b]
    return np.sqrt(1.0 + np.maximum(h, 0.0))


def conformal_bounds(scores: np.ndarray, level: float) -> tuple[float, float]:
    """Split-conformal quantiles (lower, upper) of ``scores`` for a central interval at ``level``."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = len(s)
    alpha = 1.0 - level
    k_hi = math.ceil((n + 1) * (1 - alpha / 2))
    k_lo = math.floor((n + 1) * (alpha / 2))
    hi = s[min(k_hi, n) - 1] if n else 0.0
    lo = s[max(k_lo, 1) - 1] if n else 0.0
    if k_hi > n:  # too few scores for this level: widen to the extreme (documented in docs/predict.md)
        hi = s[-1] + (s[-1] - s[0]) * 0.5
    if k_lo < 1:
        lo = s[0] - (s[-1] - s[0]) * 0.5
    return float(lo), float(hi)


@dataclass(frozen=True)
class Predictions:
    indices: np.ndarray
    latency_ms: np.ndarray
    lo_ms: np.ndarray
    hi_ms: np.ndarray
    level: float
    spread: np.ndarray


@dataclass(frozen=True)
class BlockCost:
    """What one block costs at one stage under a predictor's table, against the stage's average block.

    A table's costs are known only up to a constant per stage (the intercept takes it), so each
    is given against the average of its stage's 45: ``cost_ms`` is the milliseconds the block
    adds to a model that holds it at that stage, compared with the stage's average block
    (negative: cheaper). In an ``ms``-space table that is the centred entry, the same for every
    model; in a ``log``-space one the entry is a factor (``factor``, against the stage's
    geometric mean) and ``cost_ms`` is what it adds, averaged over the models holding the block
    there. Interaction tables and a transfer's prior are not in it.
    """

    stage: int
    block: int
    name: str
    cost_ms: float
    factor: float | None = None  # log space only

    def to_dict(self) -> dict:
        return {"stage": self.stage, "block": self.block, "name": self.name, "cost_ms": round(self.cost_ms, 6),
                **({"factor": round(self.factor, 6)} if self.factor is not None else {})}


def block_costs(model: dict) -> list[BlockCost]:
    """The 135 per-(stage, block) costs of a model's table, stage by stage (:class:`BlockCost`)."""
    from blox_lat.predict._features import all_blocks
    from blox_lat.space import list_blocks

    names = [b.name for b in list_blocks()]
    costs = np.asarray(model["costs"], dtype=float)
    costs = costs - costs.mean(axis=1, keepdims=True)
    if model["space"] == "ms":
        return [BlockCost(s, b, names[b], float(costs[s][b])) for s in range(NUM_STAGES) for b in range(NUM_BLOCKS)]
    blocks = all_blocks().astype(np.int64)
    y = evaluate(model, blocks)
    out = []
    for s in range(NUM_STAGES):
        added = y * -np.expm1(-costs[s][blocks[:, s]])  # latency minus latency with the stage's average factor
        mean = np.bincount(blocks[:, s], added, NUM_BLOCKS) / np.bincount(blocks[:, s], minlength=NUM_BLOCKS)
        out += [BlockCost(s, b, names[b], float(mean[b]), float(np.exp(costs[s][b]))) for b in range(NUM_BLOCKS)]
    return out


def mean_latency(model: dict) -> float:
    """The mean predicted latency (ms) over all 91,125 models: the scale block costs compare to."""
    from blox_lat.predict._features import all_blocks

    return float(np.mean(evaluate(model, all_blocks())))


@dataclass(frozen=True)
class Predictor:
    """A fitted latency predictor for one device setting; immutable, saved as JSON."""

    device: str
    setting: dict
    protocol: dict | None
    latency: str  # "raw" or "corrected": what it was fitted on and predicts
    family: str
    model: dict
    ginv: np.ndarray  # (136, 136)
    scores: np.ndarray  # conformal scores (sorted)
    training: dict
    cv: dict
    method: str = "fit"  # fit | pieces | transfer
    provenance: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)

    def check_device(self, device: str | None) -> None:
        if device is not None and device != self.device:
            raise DeviceMismatchError(f"this predictor was fitted on device {self.device!r}, not {device!r}; "
                                      f"fit one for {device!r} (blox-lat predict fit runs/{device}) or transfer this one")

    def predict(self, models: Any = None, *, level: float = 0.9, device: str | None = None) -> Predictions:
        """Predictions with ``level`` intervals for model indices (default: all 91,125)."""
        self.check_device(device)
        _check_level(level)
        if models is None:
            from blox_lat.predict._features import all_blocks

            idx = np.arange(len(all_blocks()))
            blocks = all_blocks()
        else:
            idx = np.asarray(models, dtype=np.int64)
            blocks = blocks_of(idx)
        y = evaluate(self.model, blocks)
        sp = spread(self.ginv, blocks)
        lo, hi = conformal_bounds(self.scores, level)
        return Predictions(idx, y, y * np.exp(lo * sp), y * np.exp(hi * sp), level, sp)

    def block_costs(self) -> list[BlockCost]:
        """What each block costs at each stage (:func:`block_costs` of the model's table)."""
        return block_costs(self.model)

    def mean_latency(self) -> float:
        """The mean predicted latency (ms) over all 91,125 models."""
        return mean_latency(self.model)

    def interval_factors(self, level: float = 0.9) -> tuple[float, float]:
        """The ``level`` interval as factors of the prediction at spread 1 (a model whose blocks
        are well covered by the training set); a model's own interval widens with its spread."""
        _check_level(level)
        lo, hi = conformal_bounds(self.scores, level)
        return math.exp(lo), math.exp(hi)

    def interval_table(self) -> dict[str, list[float]]:
        return {f"{lv:g}": list(conformal_bounds(self.scores, lv)) for lv in (0.5, 0.8, 0.9, 0.95)}

    # -- file -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "schema_version": PREDICTOR_SCHEMA, "space": self.space or space_id(),
            "device": self.device, "setting": self.setting, "protocol": self.protocol, "latency": self.latency,
            "method": self.method, "family": self.family, "training": self.training, "cv": self.cv,
            "interval": {"kind": "split-conformal, log space, leverage-scaled", "scores": _r(self.scores),
                         "bounds": self.interval_table()},
            "leverage": self._leverage_record(), "model": _round_model(self.model),
            "provenance": self.provenance,
        }

    def _leverage_record(self) -> dict:
        if not self.ginv.any():
            return {"kind": "none"}
        return {"kind": "design", "prior": LEVERAGE_PRIOR, "of": "training.indices"}

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the JSON file (temp file + rename; refuses to replace one unless ``overwrite``)."""
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        return write_out(path, text + "\n", overwrite=overwrite)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise PredictError(f"interval level {level} must lie strictly between 0 and 1, e.g. 0.9")


def _r(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=float), 10).tolist()


def _round_model(model: dict) -> dict:
    out = {}
    for k, v in model.items():
        if k == "prior" and v is not None:
            out[k] = _round_model(v)
        elif isinstance(v, (np.ndarray, list)) and k in ("costs", "pairs"):
            out[k] = _r(np.asarray(v))
        elif k == "structure" and isinstance(v, dict):  # informative: its costs are already in ``costs``
            out[k] = {**v, "coef": _r(np.asarray(v["coef"]))}
        elif isinstance(v, (np.floating, float)):
            out[k] = float(v)
        else:
            out[k] = v
    return out


_REFIT = "the file is damaged or was edited; refit it (blox-lat predict fit)"
#: what ``method`` and ``latency`` may say (families: blox_lat.predict.FAMILIES and these two)
METHODS = ("fit", "pieces", "transfer")
LATENCIES = ("raw", "corrected")


def known_families() -> tuple[str, ...]:
    return (*FAMILY_NAMES, "transfer", "pieces")


def _finite(where: str, name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float array of ``shape``, every entry finite, or :class:`PredictorFileError`
    naming the field and the first bad entry (``model.costs[1][7] is nan``)."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PredictorFileError(f"{where}: {name} is not numbers; {_REFIT}") from None
    if shape is not None and a.shape != shape:
        want = " x ".join(map(str, shape)) or "one number"
        raise PredictorFileError(f"{where}: {name} has shape {a.shape}, not {want}; {_REFIT}")
    bad = np.argwhere(~np.isfinite(a))
    if len(bad):
        at = tuple(int(i) for i in bad[0])
        raise PredictorFileError(f"{where}: {name}{''.join(f'[{i}]' for i in at)} is {float(a[at])}; "
                                 f"a predictor's numbers must be finite: {_REFIT}")
    return a


def _tables(model: dict, name: str = "model"):
    """``(field name, array)`` of every number of a model's tables (prior included)."""
    yield f"{name}.intercept", np.asarray(model["intercept"], dtype=float)
    yield f"{name}.costs", np.asarray(model["costs"], dtype=float)
    for k, table in enumerate(model.get("pairs") if model.get("pairs") is not None else ()):
        yield f"{name}.pairs[{k}]", np.asarray(table, dtype=float)
    if model.get("prior") is not None:
        yield f"{name}.prior_scale", np.asarray(model["prior_scale"], dtype=float)
        yield from _tables(model["prior"], f"{name}.prior")


def _check_model(model: Any, where: str, name: str = "model") -> dict:
    """The model tables of a file: their space, shapes, and every number finite."""
    if not isinstance(model, dict) or model.get("space") not in ("ms", "log"):
        raise PredictorFileError(f"{where}: {name} has no space 'ms' or 'log'; {_REFIT}")
    for key in ("intercept", "costs"):
        if key not in model:
            raise PredictorFileError(f"{where}: {name} has no {key}; {_REFIT}")
    _finite(where, f"{name}.intercept", model["intercept"], ())
    _finite(where, f"{name}.costs", model["costs"], (NUM_STAGES, NUM_BLOCKS))
    pairs = model.get("pairs")
    if pairs is not None:
        if not isinstance(pairs, (list, np.ndarray)) or len(pairs) != len(PAIRS):
            raise PredictorFileError(f"{where}: {name}.pairs must hold {len(PAIRS)} tables; {_REFIT}")
        for k, table in enumerate(pairs):
            _finite(where, f"{name}.pairs[{k}]", table, (NUM_BLOCKS, NUM_BLOCKS))
    structure = model.get("structure")
    if isinstance(structure, dict) and "coef" in structure:  # informative, but saved again by transfer
        _finite(where, f"{name}.structure.coef", structure["coef"])
    if model.get("prior") is not None:
        _check_model(model["prior"], where, f"{name}.prior")
        _finite(where, f"{name}.prior_scale", model.get("prior_scale"), ())
    return model


def _check_labels(doc: dict, where: str) -> None:
    """``family``, ``method`` and ``latency`` are ones this blox-lat knows."""
    for key, known in (("family", known_families()), ("method", METHODS), ("latency", LATENCIES)):
        value = doc.get(key, {"method": "fit", "latency": "raw"}.get(key))
        if value not in known:
            raise PredictorFileError(f"{where}: {key} {str(value)[:60]!r} is not one this blox-lat knows "
                                     f"({', '.join(known)}); {_REFIT}, or upgrade blox-lat")


def _check_bounds(interval: dict, scores: np.ndarray, where: str) -> None:
    """``interval.bounds`` (written for readers; predictions use the scores) are well formed and
    the ones the scores give."""
    bounds = interval.get("bounds")
    if bounds is None:
        return
    if not isinstance(bounds, dict):
        raise PredictorFileError(f"{where}: interval.bounds must map each level to [lower, upper]; {_REFIT}")
    for key, pair in bounds.items():
        try:
            level = float(key)
            lo, hi = (float(v) for v in pair)
            if not 0.0 < level < 1.0:
                raise ValueError(key)
        except (TypeError, ValueError):
            raise PredictorFileError(f"{where}: interval.bounds[{key!r}] is {str(pair)[:60]}, not [lower, upper] "
                                     f"of a level between 0 and 1; {_REFIT}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise PredictorFileError(f"{where}: interval.bounds[{key!r}] is [{lo:.6g}, {hi:.6g}]: the lower bound "
                                     f"must be finite and not above the upper one; {_REFIT}")
        want = conformal_bounds(scores, level)
        if not np.allclose((lo, hi), want, rtol=1e-6, atol=1e-6):
            raise PredictorFileError(f"{where}: interval.bounds[{key!r}] is [{lo:.6g}, {hi:.6g}] but "
                                     f"interval.scores give [{want[0]:.6g}, {want[1]:.6g}]; {_REFIT}")


def _largest(model: dict) -> tuple[str, float]:
    """The model's number of largest magnitude: ``("model.costs[1][7]", value)``."""
    best = ("", 0.0)
    for name, a in _tables(model):
        at = np.unravel_index(np.argmax(np.abs(a)), a.shape)
        if abs(float(a[at])) > abs(best[1]) or not best[0]:
            best = (name + "".join(f"[{int(i)}]" for i in at), float(a[at]))
    return best


def _check_outputs(p: Predictor, where: str) -> None:
    """Every model's prediction, and its interval at any level, finite and positive: numbers
    that are finite one by one can still overflow (a cost of 1e308)."""
    from blox_lat.predict._features import all_blocks

    blocks = all_blocks()
    s = p.scores
    widest = (s[0] - 0.5 * (s[-1] - s[0]), s[-1] + 0.5 * (s[-1] - s[0]))  # conformal_bounds as level -> 1
    with np.errstate(all="ignore"):
        y = evaluate(p.model, blocks)
        sp = spread(p.ginv, blocks)
        lo, hi = y * np.exp(widest[0] * sp), y * np.exp(widest[1] * sp)
        good_y = np.isfinite(y) & (y > 0)
        good = good_y & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        k = int(np.argmin(good_y)) if not good_y.all() else int(np.argmin(good))
        # log hi = log y + q * spread: blame the larger term, the tables' or the scores'
        tables = not good_y[k] or abs(np.log(y[k])) >= max(map(abs, widest)) * sp[k]
    if good.all():
        return
    if tables:
        name, value = _largest(p.model)
        raise PredictorFileError(f"{where}: the tables predict model #{k} at {y[k]:.6g} ms, not a finite positive "
                                 f"latency with a finite interval; the largest of their numbers, {name} = "
                                 f"{value:.6g}, is beyond any device's: {_REFIT}")
    raise PredictorFileError(f"{where}: interval.scores ({s[0]:.6g} .. {s[-1]:.6g}) make model #{k}'s interval "
                             f"{lo[k]:.6g} .. {hi[k]:.6g} ms, not finite and positive; {_REFIT}")


def _leverage(record: dict, training: dict) -> np.ndarray:
    """The inverse Gram matrix a file describes: recomputed from its training models (exact, ms)."""
    kind = record.get("kind")
    if kind == "none":
        return np.zeros((ONEHOT_DIM, ONEHOT_DIM))
    if kind != "design" or float(record.get("prior")) != LEVERAGE_PRIOR:
        raise ValueError(f"leverage {record} is not one this blox-lat computes")
    indices = np.asarray(training.get("indices") or [], dtype=np.int64)
    if indices.ndim != 1 or not len(indices) or indices.min() < 0 or indices.max() >= 91125:
        raise ValueError("training.indices must list the training models")
    return gram_inverse(blocks_of(indices))


def load(path: str | os.PathLike[str]) -> Predictor:
    """Read a predictor file; refuses another format, a newer schema or another search space,
    and a file whose numbers, labels or interval bounds are not ones blox-lat writes: every
    consumer (``predict show/all/transfer/plan``, ``dataset build --pred``) reads it through here,
    so a damaged file is refused once, naming the file and the field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictorFileError(f"no predictor file at {path}; make one with 'blox-lat predict fit'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorFileError(f"{path} is not a predictor file (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise PredictorFileError(f"{path} is not a blox-lat predictor file (format {found!r})")
    schema = doc.get("schema_version")
    if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= PREDICTOR_SCHEMA:
        raise PredictorFileError(f"{path}: predictor schema {schema!r} is not one this blox-lat reads "
                                 f"(1..{PREDICTOR_SCHEMA}); upgrade blox-lat or refit")
    if doc.get("space") != space_id():
        raise PredictorFileError(f"{path} was fitted for another search space ({doc.get('space')}); "
                                 "it cannot predict Blox models")
    where = str(path)
    try:
        _check_labels(doc, where)
        scores = np.sort(_finite(where, "interval.scores", doc["interval"]["scores"]))
        if scores.ndim != 1 or not len(scores):
            raise ValueError("interval scores are missing")
        _check_bounds(doc["interval"], scores, where)
        ginv = _leverage(doc["leverage"], doc.get("training") or {})
        p = Predictor(str(doc["device"]), dict(doc.get("setting") or {}), doc.get("protocol"),
                      str(doc.get("latency", "raw")), str(doc["family"]),
                      _check_model(doc["model"], where), ginv, scores,
                      dict(doc.get("training") or {}), dict(doc.get("cv") or {}), str(doc.get("method", "fit")),
                      dict(doc.get("provenance") or {}), dict(doc["space"]))
    except PredictorFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictorFileError(f"{path}: malformed predictor file ({exc}); refit it") from None
    _check_outputs(p, where)
    return p
