"""The survey: a full-space latency table for one device within a device-time budget.

:class:`Survey` runs one small method per step, each recorded in ``survey.json``
(:mod:`._state`) before the next begins, so that a rerun after a kill goes on where it stopped:

1. open: the folder's identity, the device and protocol (:mod:`._setup`), the host check;
2. probe: time the anchor models alone (campaign ``probe/``): the cost of one model;
3. rounds: a balanced plan sized to the budget (with ``--prior``, a small one), measured into
   the one campaign ``campaign/`` (:func:`._measure.measure_round`), fitted (``predict.fit``,
   or ``predict.transfer`` from the prior, which keeps the prior only where cross-validation
   says it helps); then rounds of the least certain models (``predict.plan_next``), each half
   of what the budget left buys, until the budget is spent or the median relative half-width
   of the 90 % intervals over the space is at most the target;
4. publish: the predictor file, a release (``bench/<device>`` measured, ``pred/<device>``
   predicted) and a report.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from blox_lat.survey._config import SurveyConfig
from blox_lat.survey._errors import SurveyConflictError, SurveyError
from blox_lat.survey._events import (
    ProbeTimed,
    Published,
    RoundFitted,
    RoundMeasured,
    RoundPlanned,
    SurveyOpened,
    SurveyStopped,
)
from blox_lat.survey._layout import CAMPAIGN, PLANS, PREDICTOR, PREDICTORS, PROBE, RELEASE, REPORT, RETEST
from blox_lat.survey._measure import measure_round
from blox_lat.survey._result import SurveyResult, figures_of
from blox_lat.survey._setup import Setup, resolve
from blox_lat.survey._state import Round, StepCost, SurveyState, read_state, write_state

#: a balanced first round: every block at least once per stage, at most three times
MIN_BALANCED, MAX_BALANCED = 45, 135
#: with a prior, the first round: transfer's least sample, at most one block of each per stage
MIN_PRIOR, MAX_PRIOR = 10, 45
#: the smallest round worth a measuring step and a fit
MIN_ROUND = 8
#: how often the state file is rewritten while a measuring step runs (seconds)
SAVE_EVERY_S = 1.0


def _ignore(event: Any) -> None:
    pass


class Survey:
    """One survey of ``config.device`` into ``config.out`` (see the module docstring);
    ``on_event`` hears :mod:`._events` and the campaigns' events."""

    def __init__(self, config: SurveyConfig, *, on_event: Callable[[Any], None] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self._emit = on_event or _ignore
        self.setup: Setup | None = None
        self.prior: Any = None
        self.state = SurveyState({})
        self._host: dict[str, Any] | None = None
        self._saved = 0.0

    def run(self) -> SurveyResult:
        """Survey what is left to survey, publish, and return the accounting."""
        self._open()
        self._probe()
        while self._step():
            pass
        self._publish()
        return SurveyResult.of(self)

    # -- open -------------------------------------------------------------------------------

    def _open(self) -> None:
        from blox_lat._fs import probe_writable, sha256_file
        from blox_lat.harness import check_host

        cfg = self.config
        if self.out.exists() and not self.out.is_dir():
            raise SurveyError(f"--out {self.out} is a file; give a folder for the survey")
        try:
            probe_writable(self.out)
        except OSError as exc:
            raise SurveyError(f"cannot write in {self.out}: {exc.strerror or exc}; give a folder you can "
                              "write to") from None
        self.setup = resolve(cfg)
        prior_sha = sha256_file(cfg.prior) if cfg.prior is not None and self._load_prior() else None
        identity = cfg.identity(prior_sha)
        state = read_state(self.out)
        if state is not None and state.identity != identity:
            raise SurveyConflictError(f"{self.out} holds a survey with other settings; resume it with "
                                      f"{cfg.flags(state.identity)}, or use another --out")
        host = check_host([self.setup.profile], None, cfg.on_busy, connection=self.setup.connection or None)
        self._host = host.to_dict() if host is not None else None
        self.state = replace(state or SurveyState(identity), host=self._host)
        self._save()
        self._emit(SurveyOpened(cfg.device, cfg.budget_s, round(self.state.spent_s, 3), len(self.state.rounds),
                                host.warning if host is not None else None))

    def _load_prior(self) -> bool:
        from blox_lat import predict

        self.prior = predict.load(self.config.prior)
        if self.prior.device == self.config.device:
            raise SurveyError(f"--prior {self.config.prior} is a predictor of {self.config.device!r} itself; "
                              "give another device's predictor, or drop --prior")
        return True

    # -- steps ------------------------------------------------------------------------------

    def _save(self, *, now: bool = True) -> None:
        t = time.monotonic()
        if now or t - self._saved >= SAVE_EVERY_S:
            write_state(self.out, self.state)
            self._saved = t

    def ready_setup(self) -> Setup:
        """The resolved setup of a survey that has started (:class:`SurveyError` before)."""
        if self.setup is None:
            raise SurveyError("the survey has not started: call run() first")
        return self.setup

    def _probe(self) -> None:
        """Time the anchor models alone once (their campaign resumes like any other)."""
        from blox_lat.harness import DEFAULT_ANCHORS, choose_anchors

        if self.state.probe_models:
            return
        setup = self.ready_setup()
        base = self.state.probe or StepCost()

        def on_cost(cost: StepCost) -> None:
            self.state = replace(self.state, probe=base.plus(cost))
            self._save(now=False)

        archs = choose_anchors(max(setup.anchors, DEFAULT_ANCHORS))
        summary, cost = measure_round(archs, setup, self.out / PROBE, anchors=False, host_state=self._host,
                                      on_event=self._emit, on_cost=on_cost)
        done = summary.measured + summary.already_done
        if not done:
            raise SurveyError(f"no anchor model could be measured on {self.config.device!r} (see 'reason' in "
                              f"{summary.journal}); check the device with 'blox-lat devices check'")
        self.state = replace(self.state, probe=base.plus(cost), probe_models=done)
        self._save()
        self._emit(ProbeTimed(done, round(self.state.probe.wall_s, 3), round(self._per_model_s(), 3)))

    def _step(self) -> bool:
        """Do the next step (measure, fit or plan a round); False once the rounds are over."""
        last = self.state.rounds[-1] if self.state.rounds else None
        if last is not None and not last.measured:
            self._measure(last)
            return True
        if last is not None and last.fit is None:
            self._fit(last)
            return True
        decision = self._decide()
        if isinstance(decision, str):
            self.state = replace(self.state, stopped=decision)
            self._save()
            self._emit(SurveyStopped(decision))
            return False
        self._plan(*decision)
        return True

    def _measure(self, rnd: Round) -> None:
        from blox_lat import space as sp

        setup = self.ready_setup()
        base = rnd.cost

        def on_cost(cost: StepCost) -> None:
            self.state = self.state.with_round(replace(rnd, cost=base.plus(cost)))
            self._save(now=False)

        folder = self.out / (RETEST if rnd.kind == "retest" else CAMPAIGN)
        _summary, cost = measure_round([sp.from_index(i) for i in rnd.indices], setup, folder,
                                       host_state=self._host, on_event=self._emit, on_cost=on_cost)
        rnd = replace(rnd, cost=base.plus(cost), measured=True)
        self.state = self.state.with_round(rnd)
        self._save()
        self._emit(RoundMeasured(rnd.number, cost.measured, round(cost.wall_s, 3), round(self.state.spent_s, 3),
                                 self.config.budget_s))

    def _fit(self, rnd: Round) -> None:
        """Fit (or transfer from the prior) on everything measured; the figures go to the round."""
        from blox_lat import predict

        cfg = self.config
        data = predict.load_measurements(self.sources(), device=cfg.device, latency="auto")
        try:
            if self.prior is not None:
                p = predict.transfer(self.prior, data, seed=cfg.seed)
            else:
                p = predict.fit(data, seed=cfg.seed, allow_uncovered=True)
        except predict.TooFewModelsError as exc:
            figures: dict[str, Any] = {"error": str(exc), "models": len(data)}
        else:
            p.save(self.predictor_path(rnd.number), overwrite=True)
            figures = figures_of(p, cfg.level)
        self.state = self.state.with_round(replace(rnd, fit=figures))
        self._save()
        self._emit(RoundFitted(rnd.number, figures))

    def sources(self) -> list[Path]:
        """The campaign folders measured so far: the rounds', and the retest's once it has a journal."""
        from blox_lat.harness import journal_path

        retest = self.out / RETEST
        return [self.out / CAMPAIGN] + ([retest] if journal_path(retest).is_file() else [])

    def predictor_path(self, number: int) -> Path:
        return self.out / PREDICTORS / f"round-{number:02d}.json"

    # -- planning ---------------------------------------------------------------------------

    def _per_model_s(self) -> float:
        """Seconds one more model costs: from the rounds measured, else from the probe (its
        models' cost, plus the anchors' share of a set or of ``anchor_every`` models)."""
        setup = self.ready_setup()
        costs = [r.cost for r in self.state.rounds if r.cost.measured]
        measured = sum(c.measured for c in costs)
        if measured >= MIN_ROUND:
            return sum(c.wall_s for c in costs) / measured
        probe = self.state.probe or StepCost()
        share = setup.anchors / setup.models_per_anchor_run()
        return max(probe.wall_s, 1e-3) / max(1, self.state.probe_models) * (1 + share)

    def _decide(self) -> tuple[str, int] | str:
        """The next round (plan, models), or why the rounds are over."""
        cfg, st = self.config, self.state
        fit = next((r.fit for r in reversed(st.rounds) if r.fit is not None), None)
        per = self._per_model_s()
        left = cfg.budget_s - st.spent_s
        affordable = max(0, int(left // per))
        if not st.rounds:
            return self._first_round(affordable, per)
        fitted = fit is not None and "error" not in fit
        retest = min(cfg.retest, len(st.rounds[0].indices))
        if retest and fitted and not any(r.kind == "retest" for r in st.rounds) and affordable >= retest:
            return "retest", retest  # right after the first round; not counted by --max-rounds
        if fitted and cfg.target_width is not None and fit["median_halfwidth_pct"] <= cfg.target_width * 100:
            return (f"target reached: the median 90 % interval half-width is {fit['median_halfwidth_pct']:.2f} %, "
                    f"at most {cfg.target_width * 100:g} %")
        rounds = sum(r.kind != "retest" for r in st.rounds)
        if cfg.max_rounds is not None and rounds >= cfg.max_rounds:
            return f"{rounds} round(s) done, as --max-rounds {cfg.max_rounds} asked"
        room = 91125 - len(st.measured_indices())
        if room <= 0:
            return "every model of the space is measured"
        if affordable < MIN_ROUND:
            return (f"budget spent: {st.spent_s:.0f} s of {cfg.budget_s:.0f} s; {MIN_ROUND} more models would "
                    f"cost about {MIN_ROUND * per:.0f} s")
        return "next", min(room, affordable, max(MIN_ROUND, -(-affordable // 2)))

    def _first_round(self, affordable: int, per: float) -> tuple[str, int]:
        cfg = self.config
        least = MIN_PRIOR if self.prior is not None else MIN_BALANCED
        if affordable < least:
            need = self.state.spent_s + least * per
            why = "a transfer from the prior" if self.prior is not None else "a fit without a prior (every block once per stage)"
            raise SurveyError(f"the budget buys about {affordable} models on {cfg.device!r} ({per:.2f} s each, from "
                              f"the probe) and {why} needs {least}: give --budget {need:.0f}s or more"
                              + ("" if self.prior is not None else ", or --prior"))
        if cfg.first_round is not None:
            if cfg.first_round < least:
                raise SurveyError(f"a first round of {cfg.first_round} models: give at least {least}")
            return "balanced", cfg.first_round
        if self.prior is not None:
            return "balanced", max(MIN_PRIOR, min(MAX_PRIOR, affordable // 4))
        return "balanced", max(MIN_BALANCED, min(MAX_BALANCED, affordable // 2))

    def _plan(self, kind: str, n: int) -> None:
        import numpy as np

        from blox_lat import predict

        cfg = self.config
        number = len(self.state.rounds) + 1
        if kind == "retest":
            picks = list(np.random.default_rng(cfg.seed).permutation(self.state.rounds[0].indices)[:n])
            header = [f"survey round {number}: {n} models of round 1 measured again (test-retest)"]
        elif kind == "balanced":
            picks = predict.plan_balanced(n, cfg.seed)
            header = [f"survey round {number}: balanced design of {n} models (seed {cfg.seed})"]
        else:
            measured = np.asarray(self.state.measured_indices(), dtype=np.int64)
            picks = predict.plan_next(measured, n, seed=cfg.seed + number)
            header = [f"survey round {number}: the {n} least certain of the models not yet measured"]
        predict.write_plan(self.out / PLANS / f"round-{number:02d}.txt", picks, header, overwrite=True)
        self.state = self.state.with_round(Round(number, kind, tuple(int(i) for i in picks)))
        self._save()
        self._emit(RoundPlanned(number, kind, n, round(cfg.budget_s - self.state.spent_s, 3),
                                round(self._per_model_s(), 3)))

    # -- publish ----------------------------------------------------------------------------

    def last_fitted(self) -> Round | None:
        return next((r for r in reversed(self.state.rounds) if r.fit is not None and "error" not in r.fit), None)

    def _publish(self) -> None:
        """The predictor file, the release and the report, from the last fitted round (again
        only when rounds were added since they were made)."""
        from blox_lat import dataset, predict, report

        outputs = [self.out / PREDICTOR, self.out / RELEASE, self.out / REPORT]
        if self.state.published == len(self.state.rounds) and all(p.exists() for p in outputs):
            return
        last = self.last_fitted()
        preds = []
        if last is not None:
            shutil.copyfile(self.predictor_path(last.number), self.out / f".{PREDICTOR}.tmp")
            (self.out / f".{PREDICTOR}.tmp").replace(self.out / PREDICTOR)
            self._emit(Published("predictor", str(self.out / PREDICTOR)))
            preds = [predict.pred_section(self.out / PREDICTOR, level=self.config.level)]
        release = self.out / RELEASE
        if (release / "dataset.json").is_file():
            shutil.rmtree(release)  # the survey's own release, made from fewer rounds
        dataset.build(self.sources(), release, f"1.{len(self.state.rounds)}.0", predictions=preds)
        self._emit(Published("release", str(release)))
        # drawn in this process: a fork pool after a remote campaign's threads can hang
        report.build_report([release], self.out / REPORT, force=True, jobs=1)
        self._emit(Published("report", str(self.out / REPORT / "report.html")))
        self.state = replace(self.state, published=len(self.state.rounds))
        self._save()


def survey(config: SurveyConfig, *, on_event: Callable[[Any], None] | None = None) -> SurveyResult:
    """Run (or resume) the survey ``config`` describes: :class:`Survey` ``.run()``."""
    return Survey(config, on_event=on_event).run()
