"""``blox-lat measure`` against the findings of the second outside audit (issue 24).

Each test feeds the command what the audit fed it: a file name too long for the file system, a
rerun with ``--skip-failed`` of a campaign whose models all failed, journals whose lines lack a
device or a measurement, anchors lines with a NaN or no reference, a connection option the
device's transport does not take, and a campaign folder or journal that is a symbolic link.
Refusals follow the bad-input contract of tests/test_bad_inputs.py: exit status 2, one stderr
line ``blox-lat: error: ...`` naming the problem and the fix, no traceback, and every file that
was there before unchanged.

The resumed campaigns are real: one small anchored, interleaved campaign is measured once per
module (onnxruntime in a real worker) and copied into each test's folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_bad_inputs import ENV, Case, _check, _digests

from blox_lat.cli.main import cli
from blox_lat.harness import CampaignConfig, read_journal

#: the protocol of the module's campaign: two models and one anchor timed together, two rounds
PROTOCOL = ("--runs", "20", "--runs-per-group", "10", "--warmup-runs", "2", "--warmup-s", "0",
            "--interleave", "2", "--anchors", "1", "--max-attempts", "1")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def measured(tmp_path_factory, store):
    """A finished anchored campaign of models 0 and 1 (copied, never changed, by the tests)."""
    out = tmp_path_factory.mktemp("measured") / "camp"
    result = CliRunner().invoke(cli, ["measure", "0,1", *PROTOCOL, "--out", str(out), "--store", str(store), "-q"])
    assert result.exit_code == 0, result.output
    return out


def _pending(finding: int):
    """A test of a finding whose fix has not landed: strict, so the fix must take the mark off."""
    return pytest.mark.xfail(strict=True, reason=f"issue 24 finding {finding}")


def _invoke(args: list[str]):
    result = CliRunner().invoke(cli, args, env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    return result


def _refused(folder: Path, args: list[str], fragment: str) -> str:
    """Run ``args`` in ``folder`` and hold it to the bad-input contract; the one stderr line."""
    before = _digests(folder)
    result = _invoke(args)
    _check(result.exit_code, result.stderr, Case("audit2", tuple(args), fragment), before, folder)
    return result.stderr.strip()


def _lines(journal: Path) -> list[dict]:
    return [json.loads(line) for line in journal.read_text().splitlines()]


def _rewrite(journal: Path, lines: list[dict]) -> None:
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _copy(measured: Path, folder: Path, name: str = "camp") -> Path:
    shutil.copytree(measured, folder / name)
    return folder / name


def _number(lines: list[dict], kind: str, nth: int = 0) -> int:
    """The 1-based line number of the ``nth`` line of ``kind``."""
    return [i for i, line in enumerate(lines, start=1) if line.get("kind") == kind][nth]


# --- 1. a file name too long for the file system -----------------------------------------------

def test_an_out_name_too_long_for_the_file_system_is_one_line(folder):
    line = _refused(folder, ["measure", "0:1", "--runs", "10", "--out", str(folder / ("x" * 300))], "too long")
    assert "--out" in line
    assert list(folder.iterdir()) == []


def test_an_out_path_under_a_name_too_long_is_one_line(folder):
    _refused(folder, ["measure", "0:1", "--runs", "10", "--out", str(folder / ("y" * 300) / "camp")], "too long")


# --- 2. --skip-failed on a campaign whose models all failed --------------------------------------

def test_skip_failed_on_a_campaign_of_failures_says_so_and_exits_1(folder, store):
    args = ["measure", "0", "--runs", "10", "--interleave", "1", "--anchors", "0", "--timeout", "0.001",
            "--out", str(folder / "camp"), "--store", str(store)]
    first = _invoke(args)
    assert first.exit_code == 1, first.output  # the model failed: what exit status a failure gets
    journal = folder / "camp" / "journal.jsonl"
    assert [r["status"] for r in read_journal(journal, kind="measurement")] == ["failed"]
    before = journal.read_bytes()
    again = _invoke([*args, "--skip-failed"])
    assert again.exit_code == first.exit_code == 1, again.output
    assert "skipped" in again.stderr and "failed in an earlier run" in again.stderr, again.stderr
    assert "without --skip-failed" in again.stderr, again.stderr
    assert "skipped (failed before)  1" in again.stdout, again.stdout
    assert journal.read_bytes() == before  # nothing to measure: not even an environment line
    as_json = _invoke([*args, "--skip-failed", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["skipped_failed"] == 1


# --- 3. journal lines without a device or a measurement ------------------------------------------

@pytest.mark.parametrize("edit, field", [
    (lambda line: line.pop("device"), "device"),
    (lambda line: line.update(device=7), "device"),
    (lambda line: line.update(measurement=None), "measurement"),
    (lambda line: line.pop("measurement"), "measurement"),
])
def test_a_measurement_line_without_device_or_measurement_is_refused_with_its_line(folder, measured, store, edit,
                                                                                   field):
    camp = _copy(measured, folder)
    lines = _lines(camp / "journal.jsonl")
    number = _number(lines, "measurement", 1)
    edit(lines[number - 1])
    _rewrite(camp / "journal.jsonl", lines)
    line = _refused(folder, ["measure", "0,1", *PROTOCOL, "--out", str(camp), "--store", str(store)],
                    f"journal.jsonl:{number}:")
    assert field in line.split(f"journal.jsonl:{number}:", 1)[1] and "remove that line" in line
    # the dataset reader rejects the same journal
    built = _invoke(["dataset", "build", "--from", str(camp), "--out", str(folder / "rel"), "--version", "1.0.0",
                     "--no-static"])
    assert built.exit_code == 2, built.output


def test_a_failed_line_without_a_measurement_still_resumes(folder, measured, store):
    """A failed model has no measurement: that line is fine (and the model is retried)."""
    camp = _copy(measured, folder)
    lines = _lines(camp / "journal.jsonl")
    number = _number(lines, "measurement", 1)
    lines[number - 1].update(status="failed", reason="edited", measurement=None)
    _rewrite(camp / "journal.jsonl", lines)
    result = _invoke(["measure", "0,1", *PROTOCOL, "--out", str(camp), "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["measured"] == 1


# --- 4 and 7. anchors lines with a NaN or no reference -------------------------------------------

def _bad_anchors(folder: Path, measured: Path, change) -> tuple[Path, int]:
    camp = _copy(measured, folder)
    lines = _lines(camp / "journal.jsonl")
    number = _number(lines, "anchors")
    change(lines[number - 1])
    _rewrite(camp / "journal.jsonl", lines)
    return camp, number


def test_a_nan_reference_is_refused_with_its_line_before_anything_is_appended(folder, measured, store):
    camp, number = _bad_anchors(folder, measured, lambda a: a.update(reference_ms=[math.nan]))
    line = _refused(folder, ["measure", "0:3", *PROTOCOL, "--out", str(camp), "--store", str(store)],
                    f"journal.jsonl:{number}:")
    assert "reference_ms" in line and "remove that line" in line


def test_an_anchors_line_without_references_is_refused_up_front(folder, measured, store):
    camp, number = _bad_anchors(folder, measured, lambda a: a.update(anchors=[], reference_ms=[]))
    line = _refused(folder, ["measure", "0:3", *PROTOCOL, "--out", str(camp), "--store", str(store)],
                    f"journal.jsonl:{number}:")
    assert "0 anchor latencies" not in line and "remove that line" in line
    assert sorted(p.name for p in camp.iterdir()) == sorted(p.name for p in measured.iterdir())  # no set.partial.jsonl


def test_an_anchors_line_of_other_anchors_is_refused_up_front(folder, measured, store):
    """A first anchors line naming other anchors than the environment's cannot give the reference."""
    camp, number = _bad_anchors(folder, measured, lambda a: a.update(
        anchors=[*a["anchors"], {**a["anchors"][0], "model_hash": "f" * 32}], reference_ms=a["reference_ms"] * 2))
    line = _refused(folder, ["measure", "0:3", *PROTOCOL, "--out", str(camp), "--store", str(store)],
                    f"journal.jsonl:{number}:")
    assert "anchor" in line and "remove that line" in line
    assert not (camp / "set.partial.jsonl").exists()


# --- 5. connection options the transport does not take -------------------------------------------

def test_a_connection_option_of_no_local_use_is_refused(folder):
    line = _refused(folder, ["measure", "0", "--runs", "10", "--connect", "colour=blue", "--out", str(folder / "c")],
                    "colour")
    assert "local" in line and "workdir" in line  # what the transport does take
    assert not (folder / "c").exists()


def test_a_local_connection_python_is_the_worker_python(folder, store):
    """The key the local transport does take is used, not ignored: its worker runs with it."""
    line = _refused(folder, ["measure", "0", "--runs", "10", "--interleave", "1", "--anchors", "0", "--connect",
                             "python=/nonexistent/python", "--out", str(folder / "c"), "--store", str(store)],
                    "/nonexistent/python")
    assert "worker" in line


# --- 6. a campaign folder or journal that is a symbolic link -------------------------------------

def test_an_out_folder_that_is_a_symlink_is_refused(folder, measured, store):
    camp = _copy(measured, folder)
    (folder / "link").symlink_to(camp)
    line = _refused(folder, ["measure", "0:3", *PROTOCOL, "--out", str(folder / "link"), "--store", str(store)],
                    "symbolic link")
    assert str(camp) in line  # the real path to give instead


def test_a_journal_that_is_a_symlink_is_refused(folder, measured, store):
    camp = _copy(measured, folder, "other")
    (folder / "camp").mkdir()
    (folder / "camp" / "journal.jsonl").symlink_to(camp / "journal.jsonl")
    line = _refused(folder, ["measure", "0:3", *PROTOCOL, "--out", str(folder / "camp"), "--store", str(store)],
                    "symbolic link")
    assert str(camp) in line


def test_the_library_refuses_a_symlinked_campaign_folder_too(folder, measured):
    from blox_lat.devices import get_device
    from blox_lat.harness import CampaignSetupError, run_campaign

    (folder / "link").symlink_to(_copy(measured, folder))
    with pytest.raises(CampaignSetupError, match="symbolic link"):
        run_campaign([], CampaignConfig(devices=(get_device("cpu"),), out_dir=folder / "link", anchors=0))
    assert os.path.islink(folder / "link")
