"""What a survey hands back: the accounting of its device time and its accuracy estimate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blox_lat.survey._accounting import DeviceTime, journal_time
from blox_lat.survey._layout import CAMPAIGN, PREDICTOR, PROBE, RELEASE, REPORT, RETEST

#: the cross-validated figures a survey reports (``blox_lat.predict.accuracy`` and coverage)
CV_KEYS = ("spearman", "mape_pct", "within10_pct", "coverage90_pct")


def figures_of(predictor: Any, level: float) -> dict[str, Any]:
    """A fitted predictor's figures as a survey round records them: models, family, the
    cross-validated accuracy of the family chosen, the median relative half-width of its
    intervals over the whole space, the test-retest floor and the prior's decision."""
    import numpy as np

    res = predictor.predict(None, level=level)
    half = (res.hi_ms - res.lo_ms) / (2.0 * res.latency_ms)
    chosen = predictor.cv.get("families", {}).get(predictor.family, {})
    return {"models": int(predictor.training.get("models", 0)), "method": predictor.method,
            "family": predictor.family, "latency": predictor.latency,
            "cv": {k: chosen[k] for k in CV_KEYS if k in chosen},
            "median_halfwidth_pct": round(float(np.median(half)) * 100, 3), "level": level,
            "retest": predictor.cv.get("retest"), "prior": predictor.cv.get("decision")}


@dataclass(frozen=True)
class SurveyResult:
    """A survey's outcome: where its outputs are, what it cost and how good it is."""

    device: str
    out: Path
    budget_s: float
    wall_s: float  # the measuring steps' wall time (probe and rounds)
    device_time: DeviceTime
    rounds: list[dict[str, Any]]
    stopped: str | None
    fit: dict[str, Any] | None
    files: dict[str, str]
    host: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, survey: Any) -> SurveyResult:
        """The result of a :class:`~blox_lat.survey.Survey` that has run."""
        st, setup = survey.state, survey.ready_setup()
        spent = journal_time(survey.out / CAMPAIGN, setup.protocol,
                             sum(r.cost.export_s for r in st.rounds if r.kind != "retest"))
        spent = spent.plus(journal_time(survey.out / RETEST, setup.protocol,
                                        sum(r.cost.export_s for r in st.rounds if r.kind == "retest")))
        spent = spent.plus(journal_time(survey.out / PROBE, setup.protocol, st.probe.export_s if st.probe else 0.0))
        last = survey.last_fitted()
        rounds = [{"number": r.number, "plan": r.kind, "models": len(r.indices), "measured": r.measured,
                   "wall_s": round(r.cost.wall_s, 3), "export_s": round(r.cost.export_s, 3), "fit": r.fit}
                  for r in st.rounds]
        files = {"campaign": str(survey.out / CAMPAIGN), "release": str(survey.out / RELEASE),
                 "report": str(survey.out / REPORT / "report.html")}
        if last is not None:
            files["predictor"] = str(survey.out / PREDICTOR)
        return cls(survey.config.device, survey.out, survey.config.budget_s, st.spent_s, spent, rounds, st.stopped,
                   last.fit if last is not None else None, files, st.host)

    @property
    def accounted_ratio(self) -> float | None:
        """Device time accounted from the journals over the measuring steps' wall time."""
        return self.device_time.total_s / self.wall_s if self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        fit = self.fit or {}
        retest = fit.get("retest") or {}
        ratio = self.accounted_ratio
        return {"device": self.device, "out": str(self.out), "budget_s": round(self.budget_s, 3),
                "spent": {"wall_s": round(self.wall_s, 3), "device_time": self.device_time.to_dict(),
                          "not_accounted_s": round(self.wall_s - self.device_time.total_s, 3),
                          "accounted_over_wall": None if ratio is None else round(ratio, 4)},
                "models_measured": self.device_time.models, "models_failed": self.device_time.failed,
                "stopped": self.stopped,
                "accuracy": None if not fit else {
                    "estimate": "cross-validated on the measured models", "family": fit.get("family"),
                    "method": fit.get("method"), "latency": fit.get("latency"), **fit.get("cv", {}),
                    "median_halfwidth_pct": fit.get("median_halfwidth_pct")},
                "retest": retest if "spearman" in retest else None, "prior": fit.get("prior"),
                "rounds": self.rounds, "files": self.files, "host": self.host}
