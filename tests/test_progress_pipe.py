"""``blox-lat measure`` progress without a terminal (issue 24 finding 8).

Through a pipe (``blox-lat measure 0:10 --runs 100 2>&1 | cat``) the interleaved models of a set
finish together at its end, so progress must come from rounds: a line at a steady interval
(``NOTE_EVERY_S``) with the campaign's ETA from the rounds done, flushed as written, and the
per-model lines' ETA from rounds too (a set's models share one ETA instead of counting it from
hundreds of seconds down to 0 in the same instant).

One test reads a real campaign's stderr from a real pipe, timing each line as it arrives (the
interval lowered in the child through the module constant); the others drive the progress
printer with a fake clock.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from blox_lat.cli import measure as cli_measure
from blox_lat.harness import CampaignStarted, MeasurementRecord, ModelDone, SetProgress, SetResumed

#: the child: ``blox-lat`` with NOTE_EVERY_S set from its first argument
CHILD = ("import sys, blox_lat.cli.measure as m; m.NOTE_EVERY_S = float(sys.argv.pop(1)); "
         "from blox_lat.cli.main import main; main()")
ETA = re.compile(r"ETA (\d+) s")


def _eta(line: str) -> int | None:
    found = ETA.search(line)
    return int(found.group(1)) if found else None


def test_through_a_pipe_lines_come_at_a_steady_interval_with_etas_from_rounds(tmp_path):
    every = 0.5
    argv = [sys.executable, "-c", CHILD, str(every), "measure", "0:8", "--runs", "200", "--runs-per-group", "10",
            "--warmup-runs", "2", "--warmup-s", "0", "--interleave", "4", "--anchors", "0", "--max-attempts", "1",
            "--out", str(tmp_path / "camp"), "--store", str(tmp_path / "store")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
    start = time.monotonic()
    arrived: list[tuple[float, str]] = []
    assert proc.stderr is not None
    for line in proc.stderr:  # each line as the child writes it (a pipe: no terminal, no bar)
        arrived.append((time.monotonic() - start, line.rstrip("\n")))
    assert proc.wait(timeout=300) == 0, arrived
    rounds = [(t, line) for t, line in arrived if "models timed together: round" in line]
    models = [(t, line) for t, line in arrived if line.startswith("[")]
    assert len(models) == 8, arrived
    first_model = models[0][0]
    before = [(t, line) for t, line in rounds if t < first_model]
    # the first set's rounds are told while it is timed, spread out, not at its end
    assert len(before) >= 2 and before[-1][0] - before[0][0] >= 2 * every, arrived
    assert first_model - before[0][0] >= 2 * every, arrived
    # a line at least every interval or so from the first round line to the end (slack for a busy host)
    times = [t for t, _ in arrived if t >= rounds[0][0]]
    assert max(b - a for a, b in zip(times, times[1:])) <= 6 * every, arrived
    # round lines: ETAs from the campaign's rounds, going down
    etas = [_eta(line) for _, line in rounds]
    assert all(e is not None for e in etas), rounds
    assert etas[-1] < etas[0], rounds
    assert all(b <= 1.5 * a + 2 for a, b in zip(etas, etas[1:])), rounds
    # a set's models end together and share the ETA of the rounds left (not 200 s ... 0 s)
    first_set, last_set = [_eta(line) for _, line in models[:4]], [_eta(line) for _, line in models[4:]]
    assert max(first_set) - min(first_set) <= 1 and min(first_set) > 0, models
    assert last_set == [0, 0, 0, 0], models


def _record(index: int) -> MeasurementRecord:
    return MeasurementRecord.from_dict({"model_index": index, "model_hash": f"{index:032x}",
                                        "measurement": {"latency_ms": 1.5}})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(cli_measure, "NOTE_EVERY_S", 0.0)
    return Clock()


def _started(progress, todo: int) -> None:
    progress(CampaignStarted(todo=todo, selected=todo, already_done=0, skipped_failed=0, env_id="", devices=["cpu"]))


def test_a_sets_models_share_the_eta_of_the_rounds_left(clock, capsys):
    progress = cli_measure._Progress(quiet=False, clock=clock)
    _started(progress, 20)  # two sets of ten models, ten rounds each
    clock.now = 10.0
    progress(SetProgress(models=10, round=5, rounds=10, attempt=1))
    clock.now = 20.0
    progress(SetProgress(models=10, round=10, rounds=10, attempt=1))
    for pos in range(1, 11):
        progress(ModelDone(record=_record(pos), position=pos, todo=20))
    err = capsys.readouterr().err.splitlines()
    assert err[1] == "  10 models timed together: round 5/10; campaign 25 % of its rounds, ETA 30 s"
    assert [_eta(line) for line in err[2:]] == [20] * 10  # not 180 s down to 20 s
    assert all("(30.0/min," in line for line in err[2:])


def test_a_round_line_counts_down_between_rounds_and_a_stalled_round_is_told(clock, capsys):
    progress = cli_measure._Progress(quiet=False, clock=clock)
    _started(progress, 10)
    clock.now = 10.0
    progress(SetProgress(models=10, round=5, rounds=10, attempt=1))
    clock.now = 14.0
    progress._note()  # what the ticker says when no round ended for an interval
    clock.now = 40.0
    progress._note()
    err = capsys.readouterr().err.splitlines()
    assert [_eta(line) for line in err[1:]] == [10, 6, 0]


def test_rounds_a_killed_run_kept_are_not_this_runs_work(clock, capsys):
    progress = cli_measure._Progress(quiet=False, clock=clock)
    _started(progress, 20)
    progress(SetResumed(models=12, attempt=1, rounds_kept=5, rounds=10))  # its 2 anchors count in models
    clock.now = 2.0
    progress(SetProgress(models=10, round=6, rounds=10, attempt=1))
    err = capsys.readouterr().err.splitlines()
    assert err[1] == "  10 models timed together: round 6/10; campaign 30 % of its rounds, ETA 28 s"


def test_a_re_measurement_adds_no_progress(clock, capsys):
    progress = cli_measure._Progress(quiet=False, clock=clock)
    _started(progress, 10)
    clock.now = 10.0
    progress(SetProgress(models=10, round=10, rounds=10, attempt=1))
    clock.now = 15.0
    progress(SetProgress(models=3, round=5, rounds=10, attempt=2))
    err = capsys.readouterr().err.splitlines()
    assert err[1] == ("  3 models timed together, re-measuring noisy ones: round 5/10; campaign 100 % of its rounds, "
                      "ETA 0 s")


def test_the_ticker_writes_when_nothing_else_does(monkeypatch, capsys):
    monkeypatch.setattr(cli_measure, "NOTE_EVERY_S", 0.1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    progress = cli_measure._Progress(quiet=False)
    progress.start()
    try:
        _started(progress, 10)
        progress(SetProgress(models=10, round=1, rounds=10, attempt=1))
        time.sleep(0.75)  # one long round: no event, yet lines
    finally:
        progress.stop()
    notes = [line for line in capsys.readouterr().err.splitlines() if "round 1/10" in line]
    assert 3 <= len(notes) <= 9, notes
    assert not progress.ticker.is_alive()
    quiet = cli_measure._Progress(quiet=True)
    quiet.start()
    assert quiet.ticker is None
