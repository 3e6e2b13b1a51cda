"""The predictions part of the report: each ``pred/<device>`` section against its measurements.

Like with like: the measured latency of the kind the section predicts; the trained-on models
apart; held-out accuracy with the definitions of ``blox_lat.predict.accuracy`` (the predictor's
cross-validation, and the measured models it was not trained on).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from blox_lat.report import _figures as F
from blox_lat.report._part import Part
from blox_lat.report._part import json_ready as _r
from blox_lat.report._part import safe_name as _safe
from blox_lat.report._sources import LATENCY_LABELS, Source
from blox_lat.report._stats import spearman

__all__ = ["predictions_part"]


def _prediction_accuracy(mask: np.ndarray, m: np.ndarray, p: np.ndarray, low: np.ndarray | None,
                         high: np.ndarray | None) -> dict[str, Any] | None:
    """Predicted ``p`` against measured ``m`` of the models in ``mask``, with the definitions of
    ``blox_lat.predict.accuracy`` (the predictor's cross-validation and the accuracy benchmark):
    MAPE (%), share within +-10 % (%), Spearman; and the share inside the section's intervals."""
    if not mask.any():
        return None
    rel = p[mask] / m[mask] - 1
    out = {"models": int(mask.sum()), "mape_pct": float(np.mean(np.abs(rel)) * 100),
           "within10_pct": float(np.mean(np.abs(rel) <= 0.1) * 100), "spearman": spearman(m[mask], p[mask])}
    if low is not None and high is not None:
        out["coverage_pct"] = float(np.mean((m[mask] >= low[mask]) & (m[mask] <= high[mask])) * 100)
    return out


_CV_LEVEL = 0.9  # the level of the predictor's cross-validated interval coverage (coverage90_pct)


def _held_out_caption(cv: dict, cross: dict, held: dict | None, level: Any, at_cv_level: bool) -> str:
    """The predictions caption's held-out accuracy, every figure named: the predictor's
    cross-validation (as ``benchmarks/predictor_accuracy.py`` computes held-out accuracy, with
    ``blox_lat.predict.accuracy``), else the measured models it was not trained on."""
    def figures(d: dict, coverage: Any, coverage_level: Any) -> str:
        out = [f"MAPE {d['mape_pct']:.2f} %"] if d.get("mape_pct") is not None else []
        if d.get("within10_pct") is not None:
            out.append(f"{d['within10_pct']:.1f} % within ±10 %")
        if d.get("spearman") is not None and math.isfinite(d["spearman"]):
            out.append(f"Spearman {d['spearman']:.3f}")
        if coverage is not None and coverage_level is not None:
            out.append(f"{float(coverage_level):.0%} interval coverage {coverage:.1f} %")
        return ", ".join(out)

    if cross:
        text = (f"held-out accuracy ({cv.get('folds')}-fold cross-validation of the predictor"
                + (f", {cv.get('chosen')}" if cv.get("chosen") else "") + "): "
                + figures(cross, cross.get("coverage90_pct") if at_cv_level else None, _CV_LEVEL))
        if not at_cv_level and held is not None and held.get("coverage_pct") is not None:
            text += f"; {float(level):.0%} interval coverage of the measured models not trained on {held['coverage_pct']:.1f} %"
        return text
    if held:
        return (f"held-out accuracy (the {held['models']} measured models it was not trained on): "
                + figures(held, held.get("coverage_pct"), level))
    return "no held-out figure (every measured model was in the training set and the section has no cross-validation)"


def predictions_part(sources: list[Source]) -> Part:
    """Predicted against measured, like with like: the measured latency of the kind the
    ``pred/<device>`` section predicts; the trained-on models apart; held-out accuracy (the
    predictor's cross-validation, and the measured models it was not trained on)."""
    part = Part("predictions", "Predictions")
    found = False
    for src in sources:
        for device, pred in src.predictions.items():
            found = True
            measured = src.devices.get(device)
            if measured is None:
                part.notes.append(f"pred/{device} in {src.path} has no measurements to compare with.")
                continue
            kind = pred.get("latency") or "raw"
            values = measured.latency(kind)
            have = np.isfinite(values)
            if not have.any():
                part.notes.append(f"pred/{device} predicts the {LATENCY_LABELS[kind]}, which bench/{device} in "
                                  f"{src.path} does not hold: no predicted-vs-measured figure.")
                continue
            common, im, ip = np.intersect1d(measured.index[have], pred["index"], return_indices=True)
            m, p = values[have][im], np.asarray(pred["latency_ms"])[ip]
            low = np.asarray(pred["low_ms"])[ip] if pred.get("low_ms") is not None else None
            high = np.asarray(pred["high_ms"])[ip] if pred.get("high_ms") is not None else None
            trained = (np.asarray(pred["trained"])[ip] if pred.get("trained") is not None
                       else np.zeros(common.size, dtype=bool))
            cv = pred.get("cv") or {}
            chosen = (cv.get("families") or {}).get(cv.get("chosen")) or {}
            cross = {k: chosen.get(k) for k in ("mape_pct", "within10_pct", "spearman", "rmse_log", "coverage90_pct")
                     if chosen.get(k) is not None}
            held = _prediction_accuracy(~trained, m, p, low, high)
            # the section's intervals are at its level; the cross-validated coverage is of 90 %
            # intervals, so it stands for the section's only at that level
            level = pred.get("level")
            at_cv_level = level is None or abs(float(level) - _CV_LEVEL) < 1e-9
            if not at_cv_level and "coverage90_pct" in cross:
                part.notes.append(f"pred/{device} holds {float(level):.0%} intervals; the predictor's "
                                  f"cross-validated coverage ({cross['coverage90_pct']:.1f} %) is of 90 % "
                                  "intervals, so the coverage given is that of the measured models it was "
                                  "not trained on" + ("" if held else " (none: no held-out coverage)") + ".")
            reference = (measured.level_reference or {}).get("campaign_id")
            campaigns = pred.get("training_campaigns") or []
            if kind == "corrected" and reference and campaigns and reference not in campaigns:
                part.notes.append(f"pred/{device} predicts the level-corrected latency on the level reference of "
                                  f"its training campaigns ({', '.join(campaigns)}); bench/{device} is on campaign "
                                  f"{reference}'s, so the two differ by the factor between those references "
                                  "(the section does not record it); the figure shows them as they are.")
            part.numbers[device] = _r({
                "latency": kind, "models": int(common.size), "trained_on": int(trained.sum()),
                "level_reference": reference, "training_campaigns": campaigns, "interval_level": level,
                "cross_validated": {"folds": cv.get("folds"), "family": cv.get("chosen"), **cross} if cross else None,
                "held_out_measured": held, "in_sample": _prediction_accuracy(trained, m, p, low, high),
                # held-out figures first: the cross-validation, else the models not trained on
                "within_10pct": (cross["within10_pct"] / 100 if "within10_pct" in cross
                                 else None if held is None else held["within10_pct"] / 100),
                # coverage of the section's intervals (interval_level), held out
                "coverage": (cross["coverage90_pct"] / 100 if "coverage90_pct" in cross and at_cv_level
                             else None if held is None or "coverage_pct" not in held else held["coverage_pct"] / 100),
            }, 4)
            source = _held_out_caption(cv, cross, held, level, at_cv_level)
            part.figures.append((f"predictions-{_safe(device)}",
                                 F.prediction_figure(m, p, device, low, high, trained=trained, kind=kind,
                                                     held_out=cross or None, source=src.path),
                                 f"Predicted against measured {LATENCY_LABELS[kind]} on {device} (the kind pred/"
                                 f"{device} predicts); {int(trained.sum())} of {common.size} models were in the "
                                 f"training set (marked apart, in-sample); {source}."))
    if not found:
        part.notes.append("No pred/<device> section in these sources: no predicted-vs-measured figure.")
    return part
