"""Audit issue 24: ``report`` and ``compare`` at their edges.

1. an ``--out`` nobody can write (under /sys, /proc, a read-only file system, below a file):
   one line, exit 2, not a traceback;
2. ``--out`` a symbolic link with ``--force``: the link's folder gets the new report, the link
   stays, nothing (no ``.NAME.old-*`` link) is left beside it;
3. Ctrl-C while the figures are drawn by the worker pool: the usual one line and exit 130, no
   ``Process ForkPoolWorker-N:`` lines or worker tracebacks;
4. a zero or negative latency in a source is refused in one line (it printed numpy
   RuntimeWarnings and bogus ratios, or crashed), and warnings a library emits before an error
   never precede the error line.

The bad-input contract is the one of ``test_bad_inputs.py`` (its helpers are reused).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bad_inputs import ENV, UNWRITABLE, Case, _check, _digests, _journal, _write, invoke_in

_invoke = invoke_in


def _argv() -> list[str]:
    exe = shutil.which("blox-lat", path=str(Path(sys.executable).parent)) or shutil.which("blox-lat")
    return [exe] if exe else [sys.executable, "-m", "blox_lat"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update({k: v for k, v in ENV.items() if v is not None and k != "PATH"})
    return env


def _run(args: list[str], d: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*_argv(), *(a.replace("{d}", str(d)) for a in args)], capture_output=True, text=True,
                          timeout=300, env=_env(), cwd=d, **kw)


# --- 1. an unwritable --out --------------------------------------------------------------------

UNWRITABLE_OUTS = [
    pytest.param("/sys/blox-lat-audit2-report", "blox-lat-audit2-report", id="parent-is-sysfs"),
    pytest.param("/proc/blox-lat-audit2-report", "blox-lat-audit2-report", id="parent-is-procfs"),
    pytest.param(UNWRITABLE, "blox-lat-bad-input", id="parent-missing-under-sysfs"),
    pytest.param("{d}/file/out", "file", id="parent-is-a-file"),
]


@pytest.mark.parametrize("out, fragment", UNWRITABLE_OUTS)
def test_report_to_an_unwritable_out_is_one_line(folder, out, fragment):
    _all = [_journal(), _write("file", "I am a file\n")]
    for setup in _all:
        setup(folder)
    before = _digests(folder)
    result = _invoke(["report", "{d}/camp", "--out", out], folder)
    _check(result.exit_code, result.stderr, Case("report-out-unwritable", (), fragment), before, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["camp", "file"]  # no temporary folder left


def _read_only_mount_works(mountpoint: Path) -> bool:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o ro none '{mountpoint}' && ! touch '{mountpoint}/x' 2>/dev/null"],
                           capture_output=True, text=True, timeout=60) if shutil.which("unshare") else None
    return probe is not None and probe.returncode == 0


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_report_onto_a_read_only_file_system_is_one_line(folder, force):
    """A real read-only file system: a tmpfs mounted ``ro`` in a private mount namespace."""
    ro = folder / "ro"
    ro.mkdir()
    if not _read_only_mount_works(ro):
        pytest.skip("cannot mount a read-only tmpfs here (no user namespaces)")
    _journal()(folder)
    before = _digests(folder)
    script = (f"mount -t tmpfs -o ro none '{ro}' && exec \"$@\"")
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", *_argv(), "report",
            str(folder / "camp"), "--out", str(ro / "rep"), *(["--force"] if force else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env(), cwd=folder)
    _check(proc.returncode, proc.stderr, Case("report-out-read-only", (), "rep"), before, folder)
    assert "read-only" in proc.stderr.lower(), proc.stderr


# --- 2. --out a symbolic link, with --force ---------------------------------------------------

def _report_sources(d: Path) -> list[str]:
    return [s["path"] for s in json.loads((d / "report.json").read_text())["sources"]]


def test_force_onto_a_symlinked_out_replaces_the_links_folder_and_leaves_nothing(folder):
    _journal("one")(folder)
    _journal("two", indices=(0, 1, 2))(folder)
    assert _invoke(["report", "{d}/one", "--out", "{d}/real"], folder).exit_code == 0
    (folder / "link").symlink_to("real")
    result = _invoke(["report", "{d}/two", "--out", "{d}/link", "--force"], folder)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["link", "one", "real", "two"]  # no .link.old-*, no .tmp
    assert (folder / "link").is_symlink() and os.readlink(folder / "link") == "real"
    assert _report_sources(folder / "real") == [str(folder / "two")]  # the link's folder holds the new report
    assert sorted(p.name for p in (folder / "real").iterdir()) == ["figures", "report.html", "report.json"]


def test_a_dangling_symlinked_out_gets_the_report_where_it_points(folder):
    _journal()(folder)
    (folder / "link").symlink_to("target")
    result = _invoke(["report", "{d}/camp", "--out", "{d}/link"], folder)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["camp", "link", "target"]
    assert (folder / "link").is_symlink() and _report_sources(folder / "target") == [str(folder / "camp")]


def test_a_symlinked_out_without_force_is_refused_as_existing(folder):
    _journal()(folder)
    assert _invoke(["report", "{d}/camp", "--out", "{d}/real"], folder).exit_code == 0
    (folder / "link").symlink_to("real")
    before = _digests(folder)
    result = _invoke(["report", "{d}/camp", "--out", "{d}/link"], folder)
    _check(result.exit_code, result.stderr, Case("report-link-exists", (), "exists"), before, folder)


def test_replace_dir_puts_the_old_folder_back_when_the_new_one_cannot_move_in(tmp_path):
    from blox_lat._fs import replace_dir

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old\n")
    with pytest.raises(OSError):
        replace_dir(tmp_path / "missing-tmp", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "old.txt").read_text() == "old\n"


# --- 3. Ctrl-C while the worker pool draws the figures ----------------------------------------

@pytest.fixture(scope="module")
def big_sources(tmp_path_factory) -> list[Path]:
    """Three devices of 1,000 models: 17 figures, a few seconds of drawing."""
    from blox_lat.dataset import _synthetic as syn

    root = tmp_path_factory.mktemp("big")
    for device in ("cpu", "gpu", "dsp"):
        syn.write_journal(root / device, device, range(0, 3000, 3), samples=20, campaign=f"c-{device}")
    return [root / device for device in ("cpu", "gpu", "dsp")]


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork")
@pytest.mark.parametrize("whom", ["process-group", "parent-only"])
def test_ctrl_c_while_drawing_is_one_line_and_130(folder, big_sources, whom):
    """Ctrl-C in a terminal signals the whole foreground group (parent and workers);
    ``kill -INT`` only the parent. Either way: one line, 130, nothing left behind."""
    proc = subprocess.Popen([*_argv(), "report", *map(str, big_sources), "--out", str(folder / "rep")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=folder,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not glob.glob(str(folder / ".rep.*" / "figures" / "*.png")):  # the pool is drawing
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the report never started drawing"
            time.sleep(0.01)
        if whom == "process-group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "blox-lat: interrupted", stderr
    assert sorted(p.name for p in folder.iterdir()) == []  # no report, no temporary folder


# --- 4. zero and negative latencies, warnings before an error ----------------------------------

def _latency(value: float, name: str = "camp", line: int = 1):
    """A synthetic journal whose ``line``-th measurement has latency (and group means) ``value``."""
    def setup(d: Path) -> None:
        _journal(name)(d)
        path = d / name / "journal.jsonl"
        lines = path.read_text().splitlines()
        record = json.loads(lines[line])
        record["measurement"]["latency_ms"] = value
        record["measurement"]["group_means_ms"] = [value] * len(record["measurement"]["group_means_ms"])
        lines[line] = json.dumps(record)
        path.write_text("".join(f"{x}\n" for x in lines))
    return setup


#: what the one journal reader says of the edited line (file:line, field, value)
ZERO = "re:journal\\.jsonl:2: measurement\\.latency_ms is 0\\.0"
NEGATIVE = "re:journal\\.jsonl:2: measurement\\.latency_ms is -1\\.0"
INFINITE = "re:journal\\.jsonl:2: measurement\\.latency_ms is inf"

LATENCY_CASES = [
    Case("compare-b-zero-latency", ("compare", "{d}/good", "{d}/camp"), ZERO, _latency(0.0)),
    Case("compare-a-zero-latency", ("compare", "{d}/camp", "{d}/good", "--relative"), ZERO, _latency(0.0)),
    Case("compare-b-negative-latency", ("compare", "{d}/good", "{d}/camp"), NEGATIVE, _latency(-1.0)),
    Case("compare-itself-negative", ("compare", "{d}/camp", "{d}/camp"), NEGATIVE, _latency(-1.0)),
    Case("report-zero-latency", ("report", "{d}/camp", "--out", "{d}/r"), ZERO, _latency(0.0)),
    Case("report-negative-latency", ("report", "{d}/camp", "--out", "{d}/r"), NEGATIVE, _latency(-1.0)),
    Case("report-infinite-latency", ("report", "{d}/camp", "--out", "{d}/r"), INFINITE,
         _latency(float("inf"))),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LATENCY_CASES])
def test_a_non_positive_latency_is_refused_in_one_line(case, folder):
    _journal("good", indices=(0, 1, 2))(folder)
    case.setup(folder)
    before = _digests(folder)
    result = _invoke(list(case.args), folder)
    _check(result.exit_code, result.stderr, case, before, folder)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LATENCY_CASES
                                  if c.id in ("compare-b-zero-latency", "report-negative-latency")])
def test_a_non_positive_latency_through_the_console_script(case, folder):
    """The real streams: no RuntimeWarning line before (or instead of) the error."""
    _journal("good", indices=(0, 1, 2))(folder)
    case.setup(folder)
    before = _digests(folder)
    proc = _run(list(case.args), folder)
    _check(proc.returncode, proc.stderr, case, before, folder)


def test_a_journal_with_a_zero_latency_never_reaches_a_release(folder):
    """One bad line, one answer: ``dataset build`` refuses the journal that report and compare
    refuse, naming the same line, so no release can carry the zero."""
    _latency(0.0, name="src")(folder)
    before = _digests(folder)
    result = _invoke(["dataset", "build", "--from", "{d}/src", "--out", "{d}/rel", "--version", "1.0.0",
                      "--no-static"], folder)
    _check(result.exit_code, result.stderr,
           Case("release-zero-latency", (), ZERO), before, folder)
    assert not (folder / "rel").exists()
