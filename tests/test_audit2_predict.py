"""``blox-lat predict`` fed input a user can get wrong (issue 24, the outside audit's findings).

The contract of tests/test_bad_inputs.py: exit status 2, exactly one stderr line starting
``blox-lat: error:`` that names the problem, no traceback, every pre-existing file unchanged.
Predictor files are edited copies of the golden schema-1 file (no fit needed); journals are the
synthetic ones of ``blox_lat.dataset._synthetic`` over a balanced plan, so a fit would succeed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from test_bad_inputs import ENV, UNWRITABLE, Case, _all, _check, _digests, _write, invoke_in

from blox_lat import predict as pr

GOLDEN = Path(__file__).parent / "golden" / "predict" / "predictor-v1.json"


# --- setups ----------------------------------------------------------------------------------

def _predictor(edit: Callable[[dict], None] | None = None, name: str = "p.json") -> Callable[[Path], None]:
    """The golden predictor file (device cpu, additive, 60 models), optionally edited."""
    def setup(d: Path) -> None:
        doc = json.loads(GOLDEN.read_text())
        if edit is not None:
            edit(doc)
        (d / name).write_text(json.dumps(doc))
    return setup


def _cost(value: float, stage: int = 1, block: int = 7) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        doc["model"]["costs"][stage][block] = value
    return edit


def _all_costs(value: float) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        doc["model"]["costs"] = [[value] * 45 for _ in range(3)]
    return edit


def _doc(key: str, value) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        doc[key] = value
    return edit


def _bounds(level: str, pair: list[float]) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        doc["interval"]["bounds"][level] = pair
    return edit


def _campaign(name: str = "camp", device: str = "cpu", n: int = 60, precision: str = "fp32") -> Callable[[Path], None]:
    """A synthetic journal of a balanced plan of ``n`` models (every (stage, block) pair seen)."""
    def setup(d: Path) -> None:
        from blox_lat.dataset import _synthetic as syn

        syn.write_journal(d / name, device, pr.plan_balanced(n, 0), samples=20, precision=precision)
    return setup


def _measurements(edit: Callable[[int, dict], None], name: str = "camp") -> Callable[[Path], None]:
    """The campaign with ``edit(line_number, record)`` applied to each measurement line."""
    def setup(d: Path) -> None:
        _campaign(name)(d)
        path = d / name / "journal.jsonl"
        lines = path.read_text().splitlines()
        out = []
        for number, line in enumerate(lines, start=1):
            record = json.loads(line)
            if record.get("kind") == "measurement":
                edit(number, record)
            out.append(json.dumps(record))
        path.write_text("".join(line + "\n" for line in out))
    return setup


def _latency_at(line: int, value) -> Callable[[Path], None]:
    def edit(number: int, record: dict) -> None:
        if number == line:
            record["measurement"]["latency_ms"] = value
    return _measurements(edit)


def _corrected_at(line: int, value) -> Callable[[Path], None]:
    """Every measurement timed with anchors (level 1, its raw latency as the corrected one),
    line ``line``'s corrected latency set to ``value``; the anchors line they name is appended."""
    def edit(number: int, record: dict) -> None:
        record.update(schema=2, level=1.0, set_id="s1",
                      latency_corrected_ms=value if number == line else record["measurement"]["latency_ms"])

    def setup(d: Path) -> None:
        _measurements(edit)(d)
        path = d / "camp" / "journal.jsonl"
        first = next(json.loads(t) for t in path.read_text().splitlines() if '"measurement"' in t)
        anchors = {"schema": 2, "kind": "anchors", "set_id": "s1", "attempt": 1, "device": first["device"],
                   "campaign_id": first["campaign_id"], "env_id": first["env_id"],
                   "anchors": [{"model_hash": first["model_hash"], "model_index": first["model_index"],
                                "latency_ms": 1.0}],
                   "reference_ms": [1.0], "level": 1.0, "members": 0, "recorded_at": first["recorded_at"]}
        with open(path, "a") as fh:
            fh.write(json.dumps(anchors) + "\n")
    return setup


def _pieces_doc(path: Path) -> dict:
    """A pieces document of all 140 pieces (made-up latencies), written to ``path``."""
    doc = {"format": "blox-lat-pieces", "schema_version": 1, "device": "cpu", "setting": {}, "protocol": None,
           "measured_at": "2026-01-01T00:00:00Z",
           "pieces": {name: {"latency_ms": 0.01 * (1 + i % 5)} for i, name in enumerate(pr.all_pieces())}}
    path.write_text(json.dumps(doc))
    return doc


_TRANSFER = _all(_predictor(), _campaign("int8", device="cpu-int8", n=45, precision="int8"))


def _prior(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    return _all(_predictor(edit), _campaign("int8", device="cpu-int8", n=45, precision="int8"))


# --- the cases ---------------------------------------------------------------------------------

C = Case
CASES = [
    # finding 1: tracebacks
    C("fit-out-unwritable", ("predict", "fit", "{d}/camp", "--out", UNWRITABLE), "blox-lat-bad-input", _campaign()),
    C("plan-out-unwritable", ("predict", "plan", "45", "--out", UNWRITABLE), "blox-lat-bad-input"),
    C("next-plan-out-unwritable", ("predict", "plan", "--next", "5", "--from", "{d}/p.json", "--out", UNWRITABLE),
      "blox-lat-bad-input", _predictor()),
    C("all-out-unwritable", ("predict", "all", "{d}/p.json", "--out", UNWRITABLE), "blox-lat-bad-input", _predictor()),
    C("transfer-out-unwritable", ("predict", "transfer", "{d}/p.json", "{d}/int8", "--out", UNWRITABLE),
      "blox-lat-bad-input", _TRANSFER),
    C("pieces-fit-out-unwritable", ("predict", "pieces", "fit", "{d}/pieces.json", "--out", UNWRITABLE),
      "blox-lat-bad-input", lambda d: _pieces_doc(d / "pieces.json")),
    C("fit-out-is-a-folder-force", ("predict", "fit", "{d}/camp", "--out", "{d}/outdir", "--force"),
      "is a directory", _all(_campaign(), _write("outdir/keep.txt", "keep\n"))),
    C("all-out-is-a-folder-force", ("predict", "all", "{d}/p.json", "--out", "{d}/outdir", "--force"),
      "is a directory", _all(_predictor(), _write("outdir/keep.txt", "keep\n"))),
    C("plan-out-is-a-folder-force", ("predict", "plan", "45", "--out", "{d}/outdir", "--force"),
      "is a directory", _write("outdir/keep.txt", "keep\n")),
    C("fit-out-exists", ("predict", "fit", "{d}/camp", "--out", "{d}/p.json"), "exists",
      _all(_campaign(), _predictor())),
    C("fit-seed-negative", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json", "--seed", "-1"),
      "re:--seed.*-1.*(0 or more|non-negative)", _campaign()),
    C("plan-seed-negative", ("predict", "plan", "45", "--seed", "-1", "--out", "{d}/plan.txt"),
      "re:--seed.*-1.*(0 or more|non-negative)"),
    C("transfer-seed-negative", ("predict", "transfer", "{d}/p.json", "{d}/int8", "--out", "{d}/t.json",
                                 "--seed", "-1"), "re:--seed.*-1.*(0 or more|non-negative)", _TRANSFER),
    C("transfer-prior-nan", ("predict", "transfer", "{d}/p.json", "{d}/int8", "--out", "{d}/t.json"),
      "re:p\\.json.*model\\.costs.*nan", _prior(_cost(float("nan")))),
    C("transfer-prior-1e308", ("predict", "transfer", "{d}/p.json", "{d}/int8", "--out", "{d}/t.json"),
      "re:p\\.json.*model\\.costs", _prior(_all_costs(1e308))),
    C("transfer-prior-one-1e308", ("predict", "transfer", "{d}/p.json", "{d}/int8", "--out", "{d}/t.json"),
      "re:p\\.json.*model\\.costs\\[1\\]\\[7\\]", _prior(_cost(1e308))),

    # finding 2: wrong answers with exit 0
    C("all-predictor-nan", ("predict", "all", "{d}/p.json", "--out", "{d}/all.parquet"),
      "re:p\\.json.*model\\.costs\\[1\\]\\[7\\] is nan", _predictor(_cost(float("nan")))),
    C("all-predictor-inf", ("predict", "all", "{d}/p.json", "--out", "{d}/all.parquet"),
      "re:p\\.json.*model\\.costs\\[1\\]\\[7\\] is inf", _predictor(_cost(float("inf")))),
    C("show-predictor-nan", ("predict", "show", "{d}/p.json"), "re:p\\.json.*model\\.costs.*nan",
      _predictor(_cost(float("nan")))),
    C("show-predictor-intercept-inf", ("predict", "show", "{d}/p.json", "--models", "0"),
      "re:p\\.json.*model\\.intercept is -?inf", _predictor(lambda doc: doc["model"].update(intercept=float("-inf")))),
    C("show-predictor-scores-nan", ("predict", "show", "{d}/p.json"), "re:p\\.json.*interval\\.scores.*nan",
      _predictor(lambda doc: doc["interval"]["scores"].__setitem__(3, float("nan")))),
    C("next-plan-predictor-nan", ("predict", "plan", "--next", "5", "--from", "{d}/p.json", "--out", "{d}/n.txt"),
      "re:p\\.json.*model\\.costs.*nan", _predictor(_cost(float("nan")))),
    C("show-family-unknown", ("predict", "show", "{d}/p.json"), "re:p\\.json.*family 'magic'",
      _predictor(_doc("family", "magic"))),
    C("all-family-unknown", ("predict", "all", "{d}/p.json", "--out", "{d}/all.parquet"),
      "re:p\\.json.*family 'magic'", _predictor(_doc("family", "magic"))),
    C("show-bounds-negated", ("predict", "show", "{d}/p.json"), "re:p\\.json.*interval\\.bounds.*0\\.9",
      _predictor(_bounds("0.9", [0.1381585596179027, -0.12609719980747286]))),
    C("all-bounds-negative-width", ("predict", "all", "{d}/p.json", "--out", "{d}/all.parquet"),
      "re:p\\.json.*interval\\.bounds.*0\\.5", _predictor(_bounds("0.5", [0.3, -0.3]))),
    C("show-bounds-not-the-scores", ("predict", "show", "{d}/p.json"), "re:p\\.json.*interval\\.bounds.*0\\.95",
      _predictor(_bounds("0.95", [-2.0, 2.0]))),
    C("pieces-measure-names-none", ("predict", "pieces", "measure", "--pieces", ",", "--out", "{d}/pieces.json"),
      "names no pieces"),
    C("pieces-measure-names-blanks", ("predict", "pieces", "measure", "--pieces", " , ,", "--out", "{d}/pieces.json"),
      "names no pieces"),
    C("pieces-measure-names-empty", ("predict", "pieces", "measure", "--pieces", "", "--out", "{d}/pieces.json"),
      "names no pieces"),

    # finding 3: messages
    C("fit-latency-nan", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:3: measurement\\.latency_ms is nan; must be a finite positive number of milliseconds",
      _latency_at(3, float("nan"))),
    C("fit-latency-negative", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:3: measurement\\.latency_ms is -5; must be a finite positive number", _latency_at(3, -5)),
    C("fit-latency-zero", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:4: measurement\\.latency_ms is 0; must be a finite positive number", _latency_at(4, 0)),
    C("fit-latency-text", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:3: measurement\\.latency_ms is 'x'; must be a finite positive number", _latency_at(3, "x")),
    C("fit-latency-missing", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:3: measurement\\.latency_ms is None; must be a finite positive number", _measurements(
          lambda number, record: record["measurement"].pop("latency_ms") if number == 3 else None)),
    C("fit-model-index-missing", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:5: .*model_index", _measurements(
          lambda number, record: record.pop("model_index") if number == 5 else None)),
    C("fit-corrected-nan", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json", "--latency", "corrected"),
      "re:journal\\.jsonl:6: latency_corrected_ms is nan; must be a finite positive number", _corrected_at(6, float("nan"))),
    C("fit-corrected-negative", ("predict", "fit", "{d}/camp", "--out", "{d}/new.json"),
      "re:journal\\.jsonl:6: latency_corrected_ms is -2.5; must be a finite positive number", _corrected_at(6, -2.5)),
    C("plan-count-negative", ("predict", "plan", "-5", "--out", "{d}/plan.txt"),
      "re:-5.*must be a positive integer"),
    C("plan-count-negative-after-options", ("predict", "plan", "--seed", "3", "-12", "--out", "{d}/plan.txt"),
      "re:N -12: .*must be a positive integer"),
    C("plan-unknown-option-stays-unknown", ("predict", "plan", "45", "-x", "--out", "{d}/plan.txt"),
      "No such option"),
]

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"

#: case or test -> the audit finding whose fix is in flight (xfail, strict: the fix lands, the entry goes)
PENDING: dict[str, str] = {}


def _pending(name: str) -> tuple:
    if name not in PENDING:
        return ()
    return (pytest.mark.xfail(strict=True, reason=f"issue 24 finding {PENDING[name]}"),)


def _param(case: Case):
    return pytest.param(case, id=case.id, marks=_pending(case.id))


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_predict_bad_input(case: Case, folder: Path):
    if case.setup is not None:
        case.setup(folder)
    before = _digests(folder)
    result = invoke_in(case.args, folder)
    _check(result.exit_code, result.stderr, case, before, folder)
    assert not any(p.name.endswith(".tmp") for p in folder.rglob("*")), "a temporary file was left behind"


#: run as a real process too: numpy's RuntimeWarnings print there (pytest catches them in-process)
SUBPROCESS_CASES = ["fit-corrected-negative", "transfer-prior-1e308", "all-predictor-nan", "plan-count-negative",
                    "fit-out-unwritable"]


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.id in SUBPROCESS_CASES])
def test_predict_bad_input_console_script(case: Case, folder: Path):
    exe = shutil.which("blox-lat", path=str(Path(sys.executable).parent)) or shutil.which("blox-lat")
    argv = [exe] if exe else [sys.executable, "-m", "blox_lat"]
    if case.setup is not None:
        case.setup(folder)
    before = _digests(folder)
    env = {k: v for k, v in os.environ.items() if k not in ENV and k != "PYTHONWARNINGS"}
    env.update({k: v for k, v in ENV.items() if v is not None and k != "PATH"})
    proc = subprocess.run([*argv, *(a.replace("{d}", str(folder)) for a in case.args)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=folder)
    _check(proc.returncode, proc.stderr, case, before, folder)


# --- the library: one validation at load, every consumer through it --------------------------

def test_dataset_pred_section_refuses_at_load_like_predict_all(folder: Path):
    """``dataset build --pred`` reads the file through the same loader and gets the same message."""
    _predictor(_cost(float("nan")))(folder)
    with pytest.raises(pr.PredictorFileError, match=r"p\.json: model\.costs\[1\]\[7\] is nan"):
        pr.pred_section(folder / "p.json")


def test_valid_predictors_of_every_method_still_load(folder: Path):
    """The load checks refuse nothing that blox-lat writes: fit (golden), pieces and transfer."""
    golden = pr.load(GOLDEN)
    pieces = pr.from_pieces(_pieces_doc(folder / "pieces-doc.json"))
    pr.load(pieces.save(folder / "pieces.json"))
    idx = golden.training["indices"][:30]
    data = pr.from_arrays(idx, 2.0 * golden.predict(idx).latency_ms, device="cpu-int8")
    moved = pr.transfer(golden, data)
    assert pr.load(moved.save(folder / "t.json")).family == "transfer"


def test_library_refuses_negative_seeds():
    data = pr.from_arrays(pr.plan_balanced(60, 0), [1.0 + i % 7 for i in range(60)])
    with pytest.raises(pr.PredictError, match="seed"):
        pr.fit(data, seed=-1)
    with pytest.raises(pr.PredictError, match="seed"):
        pr.plan_balanced(45, seed=-3)


def test_library_refuses_an_empty_piece_list():
    with pytest.raises(pr.PiecesError, match="names no pieces"):
        pr.measure_pieces([], device="cpu")


def test_library_writers_name_the_path_they_cannot_write(folder: Path):
    p = pr.load(GOLDEN)
    with pytest.raises(pr.PredictError, match="blox-lat-bad-input"):
        p.save(UNWRITABLE)
    with pytest.raises(pr.PredictError, match="blox-lat-bad-input"):
        pr.write_plan(UNWRITABLE, [0, 1], ["header"])
    (folder / "d").mkdir()
    with pytest.raises(pr.PredictError, match="is a directory"):
        p.save(folder / "d", overwrite=True)


def test_a_training_set_from_arrays_names_the_bad_model():
    with pytest.raises(pr.PredictError, match=r"latency of model 7 is nan; latencies must be finite positive"):
        pr.from_arrays([3, 7, 9], [1.0, float("nan"), 2.0])
