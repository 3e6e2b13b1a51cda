"""The bad-input suite (issue 13): every command, fed input a user can get wrong.

Each case runs in its own folder (the working directory, so default output paths land there
too) with the files its ``setup`` writes, and must end with the documented exit status (2 for
bad input), exactly one line on stderr that names the problem, no traceback, and every file
that was in the folder before unchanged (sha256 of each, before and after).

Most cases run in-process through click's runner (``cli`` keeps its main-with-standalone
semantics there: SystemExit with the status, the error on stderr); a few run the installed
console script as a subprocess.

Cases whose fix is in flight carry ``xfail(strict=True)``: the moment the fix lands they pass,
strict turns that into a failure, and the mark must come off.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli

GOLDEN = Path(__file__).parent / "golden" / "dataset"
#: a folder nobody may create, not even root (permission bits do not stop root)
UNWRITABLE = "/sys/blox-lat-bad-input/out"
HASH0 = "39554afd1b33a44663e653ad10137b9a"


# --- setups: each writes the pre-existing files of a case into its folder ---------------------

def _write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return setup


def _all(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for s in setups:
            s(d)
    return setup


def _journal(name: str = "camp", indices=(0, 1)) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        from blox_lat.dataset import _synthetic as syn

        syn.write_journal(d / name, "cpu", list(indices), samples=20)
    return setup


def _journal_edit(edit: Callable[[list[str]], list[str]], name: str = "camp") -> Callable[[Path], None]:
    """A synthetic journal whose lines ``edit`` changes (lines without their newline)."""
    def setup(d: Path) -> None:
        _journal(name)(d)
        path = d / name / "journal.jsonl"
        lines = edit(path.read_text().splitlines())
        path.write_text("".join(line + "\n" for line in lines))
    return setup


def _drop_key(key: str, line: int = 1) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        record = json.loads(lines[line])
        del record[key]
        return [*lines[:line], json.dumps(record), *lines[line + 1:]]
    return edit


def _set_key(key: str, value, line: int = 1) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        record = json.loads(lines[line])
        record[key] = value
        return [*lines[:line], json.dumps(record), *lines[line + 1:]]
    return edit


def _release(edit: Callable[[Path], None] | None = None, name: str = "rel") -> Callable[[Path], None]:
    """A copy of the golden release, optionally edited."""
    def setup(d: Path) -> None:
        shutil.copytree(GOLDEN / "release-1.0.0", d / name)
        for path in (d / name).rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if edit is not None:
            edit(d / name)
    return setup


def _current_release(edit: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """A small release built now, at the current schema (the golden one predates the manifest digest)."""
    def setup(d: Path) -> None:
        from blox_lat.dataset import _synthetic, build

        _synthetic.write_journal(d / "src", "cpu", range(3))
        build([d / "src"], d / "rel", "1.0.0", static=False)
        shutil.rmtree(d / "src")
        if edit is not None:
            edit(d / "rel")
    return setup


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(rel: Path) -> None:
        data = json.loads((rel / "dataset.json").read_text())
        change(data)
        (rel / "dataset.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return edit


def _manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(rel: Path) -> None:
        data = json.loads((rel / "dataset.json").read_text())
        change(data)
        (rel / "dataset.json").write_text(json.dumps(data, indent=2))
    return _release(edit)


def _flip_byte(relpath: str, offset: int = 100) -> Callable[[Path], None]:
    def edit(rel: Path) -> None:
        target = rel / relpath
        data = bytearray(target.read_bytes())
        data[offset] ^= 0x01
        target.write_bytes(bytes(data))
    return _release(edit)


def _first_section_file(change: Callable[[str], str]) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        sections = data["sections"]
        first = next(iter(sections.values()) if isinstance(sections, dict) else iter(sections))
        first["file"] = change(first["file"])
    return edit


def _escaping_section(d: Path) -> None:
    """A release whose first section's file is a byte-exact copy kept outside the release."""
    def edit(data: dict) -> None:
        first = next(iter(data["sections"].values()))
        shutil.copy(d / "rel" / first["file"], d / "outside.parquet")
        first["file"] = "../outside.parquet"
    _manifest(edit)(d)


_SPACE = ('{"shape": [[[3], [3, 2, 2, 2]], [[3], [3, 2, 2, 2]], [[3], [3, 2, 2, 2]]], '
          '"nodes": 2, "stages": 3, "ops": ["conv", "mbconv", "bconv"]}')


def _blox(body: str, *, columns='["model_hash", "latency"]', fmt='"csv"', space=_SPACE, kind='"benchmarking"',
          extra='device: "cpu"\n') -> str:
    """A reference-layout benchmarking file with the CSV ``body``."""
    return (f"---\nversion: 1\nsearch_space: {space}\ndataset_type: {kind}\ncolumns: {columns}\n"
            f"{extra}format: {fmt}\n---\n{body}")


def _blox_file(body: str, name: str = "blox-bench-cpu.csv", **kw) -> Callable[[Path], None]:
    return _write(name, _blox(body, **kw))


def _toml(text: str, name: str = "dev.toml") -> Callable[[Path], None]:
    return _write(name, text)


_GOOD_DEVICE = '[devices.mine]\ntransport = "local"\nruntime = "onnxruntime"\nformat = "onnx"\n'


def _device(extra: str = "", head: str = _GOOD_DEVICE) -> Callable[[Path], None]:
    return _toml(head + extra)


# --- the cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]           # "{d}" is the case's folder
    fragment: str                   # in the one stderr line ("re:..." for a regular expression)
    setup: Callable[[Path], None] | None = None
    status: int = 2
    marks: tuple = field(default_factory=tuple)


def _pending(item: str, who: str):
    return (pytest.mark.xfail(strict=True, reason=f"issue 13 item {item}: {who}"),)


C = Case
CASES = [
    # space: selectors and model names
    C("space-index-out-of-range", ("space", "show", "99999"), "outside 0..91124"),
    C("space-vector-bad-json", ("space", "show", "[[[0],[1,1,1,1]]"), "not valid JSON"),
    C("space-vector-invalid-stage", ("space", "show", "[[[0],[1,1,1,1]],[[0],[1,0,0,0]],[[0],[1,1,1,1]]]"),
      "stage 1 is invalid"),
    C("space-vector-wrong-shape", ("space", "show", "[1,2,3]"), "stage 0 must look like"),
    C("space-name-nonsense", ("space", "show", "nonsense"), "does not name a model"),
    C("space-blocks-unknown", ("space", "show", "seq.conv.conv/bogus/conv"), "bogus"),
    C("space-hash-unknown", ("space", "show", "f" * 32), "no Blox model has hash"),
    C("space-vector-deeply-nested", ("space", "show", "[" * 100_000), "nests too deeply"),
    C("selector-range-reversed", ("space", "list", "5:3"), "index range"),
    C("selector-range-too-far", ("space", "list", "0:99999999"), "index range"),
    C("selector-random-bad", ("space", "list", "random:x"), "bad random selector"),
    C("selector-random-too-many", ("space", "list", "random:999999"), "more models than the space has"),
    C("selector-empty", ("space", "list", " "), "empty model selector"),
    C("selector-file-missing", ("space", "list", "@{d}/nothing.txt"), "cannot read selector file"),
    C("selector-file-not-utf8", ("space", "list", "@{d}/sel.txt"), "not UTF-8",
      _write("sel.txt", b"0\n\xff\xfe\n")),
    C("selector-file-empty", ("space", "list", "@{d}/sel.txt"), "names no models", _write("sel.txt", "# none\n\n")),
    C("selector-file-bad-line", ("space", "list", "@{d}/sel.txt"), "line 2", _write("sel.txt", "0\nbogus\n")),
    C("selector-file-includes-itself", ("space", "list", "@{d}/sel.txt"), "too deeply",
      lambda d: (d / "sel.txt").write_text(f"@{d}/sel.txt\n")),
    C("selector-file-is-a-folder", ("space", "list", "@{d}"), "cannot read selector file"),
    C("shard-out-of-range", ("space", "list", "0:3", "--shard", "4/3"), "bad shard"),
    C("shard-zero", ("space", "list", "0:3", "--shard", "0/3"), "bad shard"),
    C("shard-not-k-of-n", ("space", "list", "0:3", "--shard", "half"), "bad shard"),
    C("space-unknown-command", ("space", "frobnicate"), "No such command"),
    C("space-missing-argument", ("space", "show"), "Missing argument"),

    # export: formats, -O options, batch, jobs, store
    C("export-unknown-format", ("export", "0:2", "-f", "tflite", "-o", "{d}/s"), "unknown export format"),
    C("export-opset-too-old", ("export", "0:2", "-f", "onnx", "-O", "opset=9", "-o", "{d}/s"), "opset"),
    C("export-option-no-equals", ("export", "0", "-f", "onnx", "-O", "noequals", "-o", "{d}/s"), "NAME=VALUE"),
    C("export-option-no-name", ("export", "0", "-f", "onnx", "-O", "=17", "-o", "{d}/s"), "NAME=VALUE"),
    C("export-option-unknown", ("export", "0", "-f", "onnx", "-O", "colour=red", "-o", "{d}/s"), "takes no option colour"),
    C("export-calibration-samples-zero",
      ("export", "0", "-f", "onnx-int8", "-O", "calibration_samples=0", "-o", "{d}/s"), "calibration_samples"),
    C("export-agreement-above-1",
      ("export", "0", "-f", "onnx-int8", "-O", "min_top1_agreement=2", "-o", "{d}/s"), "min_top1_agreement"),
    C("export-agreement-nan",
      ("export", "0", "-f", "onnx-int8", "-O", "min_top1_agreement=nan", "-o", "{d}/s"), "min_top1_agreement"),
    C("export-quantizer-unknown", ("export", "0", "-f", "onnx-int8", "-O", "quantizer=fast", "-o", "{d}/s"), "quantizer"),
    C("export-allow-pickle-maybe", ("export", "0", "-f", "onnx-int8", "-O", "allow_pickle=maybe", "-o", "{d}/s"),
      "allow_pickle"),
    C("export-calibration-missing",
      ("export", "0", "-f", "onnx-int8", "-O", "calibration={d}/no-cifar", "-o", "{d}/s"), "no-cifar"),
    C("export-calibration-not-cifar",
      ("export", "0", "-f", "onnx-int8", "-O", "calibration={d}/cifar.tar.gz", "-o", "{d}/s"), "cifar.tar.gz",
      _write("cifar.tar.gz", b"not a tarball")),
    C("export-batch-zero", ("export", "0", "-f", "onnx", "--batch", "0", "-o", "{d}/s"), "batch"),
    C("export-batch-huge", ("export", "0", "-f", "onnx", "--batch", "5000", "-o", "{d}/s"), "batch"),
    C("export-batch-not-int", ("export", "0", "-f", "onnx", "--batch", "one", "-o", "{d}/s"), "--batch"),
    C("export-jobs-zero", ("export", "0", "-f", "onnx", "--jobs", "0", "-o", "{d}/s"), "jobs"),
    C("export-method-unknown", ("export", "0", "-f", "onnx", "--method", "slow", "-o", "{d}/s"), "--method"),
    C("export-store-is-a-file", ("export", "0", "-f", "onnx", "-o", "{d}/store"), "store",
      _write("store", "I am a file\n")),
    C("export-selects-nothing", ("export", ",,", "-f", "onnx", "-o", "{d}/s"), "names no models"),
    C("export-dlc-without-sdk", ("export", "0:5", "-f", "dlc", "-o", "{d}/s"), "SNPE"),

    # measure: options, devices, connections, journals, paths
    C("measure-model-unknown", ("measure", "nonsense-model", "--out", "{d}/c"), "does not name a model"),
    C("measure-runs-not-multiple", ("measure", "0", "--runs", "25", "--out", "{d}/c"), "multiple of the group size"),
    C("measure-runs-zero", ("measure", "0", "--runs", "0", "--out", "{d}/c"), "--runs"),
    C("measure-device-unknown", ("measure", "0", "--device", "nope", "--out", "{d}/c"), "unknown device 'nope'"),
    C("measure-ssh-without-host", ("measure", "0", "--device", "gtx1080ti", "--out", "{d}/c"), "needs an SSH host"),
    C("measure-connect-no-equals", ("measure", "0", "--device", "gtx1080ti", "--connect", "nokey", "--out", "{d}/c"),
      "KEY=VALUE"),
    C("measure-connect-unknown-key",
      ("measure", "0", "--device", "gtx1080ti", "--connect", "host=h", "--connect", "colour=red", "--out", "{d}/c"),
      "unknown connection key"),
    C("measure-connect-port-not-number",
      ("measure", "0", "--device", "gtx1080ti", "--connect", "host=h", "--connect", "port=abc", "--out", "{d}/c"),
      "port"),
    C("measure-connect-port-out-of-range",
      ("measure", "0", "--device", "gtx1080ti", "--connect", "host=127.0.0.1", "--connect", "port=99999",
       "--connect", "connect_timeout_s=1", "--out", "{d}/c"), "65535"),
    C("measure-connect-timeout-not-number",
      ("measure", "0", "--device", "gtx1080ti", "--connect", "host=h", "--connect", "connect_timeout_s=soon",
       "--out", "{d}/c"), "connect_timeout_s"),
    C("measure-connect-trust-maybe",
      ("measure", "0", "--device", "gtx1080ti", "--connect", "host=h", "--connect", "trust_new_host=maybe",
       "--out", "{d}/c"), "trust_new_host"),
    C("measure-farm-mixed-profiles", ("measure", "0", "--device", "cpu", "--device", "cpu-int8", "--out", "{d}/c"),
      "measure differently"),
    C("measure-affinity-garbage", ("measure", "0", "--affinity", "x", "--out", "{d}/c"), "--affinity"),
    C("measure-affinity-absent-cpu", ("measure", "0", "--affinity", "99", "--runs", "10", "--out", "{d}/c"),
      "affinity"),
    C("measure-shard-bad", ("measure", "0", "--shard", "3/2", "--out", "{d}/c"), "bad shard"),
    C("measure-device-file-missing", ("measure", "0", "--device-file", "{d}/none.toml", "--out", "{d}/c"),
      "cannot read device file"),
    C("measure-interleave-zero", ("measure", "0", "--interleave", "0", "--out", "{d}/c"), "--interleave"),
    C("measure-rounds-without-interleave", ("measure", "0", "--interleave", "1", "--rounds", "5", "--out", "{d}/c"),
      "--rounds"),
    C("measure-timeout-zero", ("measure", "0", "--timeout", "0", "--out", "{d}/c"), "--timeout"),
    C("measure-lookahead-zero", ("measure", "0", "--lookahead", "0", "--out", "{d}/c"), "--lookahead"),
    C("measure-rewarm-too-many", ("measure", "0", "--rewarm-runs", "5000", "--out", "{d}/c"), "--rewarm-runs"),
    C("measure-record-as-escapes", ("measure", "0", "--runs", "10", "--record-as", "../../esc"), "record-as"),
    C("measure-record-as-slash", ("measure", "0", "--runs", "10", "--record-as", "a/b"), "record-as"),
    C("measure-out-is-a-file", ("measure", "0", "--runs", "10", "--out", "{d}/c"), "c", _write("c", "file\n")),
    C("measure-out-unwritable", ("measure", "0", "--runs", "10", "--out", UNWRITABLE), "blox-lat-bad-input"),
    C("measure-store-is-a-file", ("measure", "0", "--runs", "10", "--store", "{d}/store", "--out", "{d}/c"), "store",
      _write("store", "file\n")),
    C("measure-journal-damaged", ("measure", "0", "--runs", "10", "--out", "{d}/camp"), "damaged journal line",
      _journal_edit(lambda lines: [lines[0], lines[1][:40], *lines[2:]])),
    C("measure-journal-not-an-object", ("measure", "0", "--runs", "10", "--out", "{d}/camp"), "not a JSON object",
      _journal_edit(lambda lines: [lines[0], "[1, 2]", *lines[1:]])),
    C("measure-journal-newer-schema", ("measure", "0", "--runs", "10", "--out", "{d}/camp"), "newer",
      _journal_edit(_set_key("schema", 99))),
    C("measure-journal-missing-model-hash", ("measure", "0", "--runs", "10", "--out", "{d}/camp"), "model_hash",
      _journal_edit(_drop_key("model_hash"))),

    # devices: profiles and TOML
    C("toml-syntax", ("devices", "validate", "{d}/dev.toml"), "not valid TOML", _toml("[devices.x\n")),
    C("toml-unknown-key", ("devices", "validate", "{d}/dev.toml"), "unknown key(s) colour", _device('colour = "red"\n')),
    C("toml-transport-unknown", ("devices", "validate", "{d}/dev.toml"), "transport 'pigeon'",
      _device(head='[devices.mine]\ntransport = "pigeon"\nruntime = "onnxruntime"\nformat = "onnx"\n')),
    C("toml-runtime-format-mismatch", ("devices", "validate", "{d}/dev.toml"), "cannot run format",
      _device(head='[devices.mine]\ntransport = "local"\nruntime = "snpe"\nformat = "onnx"\n')),
    C("toml-batch-zero", ("devices", "validate", "{d}/dev.toml"), "batch must be a positive integer",
      _device("batch = 0\n")),
    C("toml-batch-bool", ("devices", "validate", "{d}/dev.toml"), "batch must be a positive integer",
      _device("batch = true\n")),
    C("toml-precision-unknown", ("devices", "validate", "{d}/dev.toml"), "precision 'fp8'", _device('precision = "fp8"\n')),
    C("toml-missing-keys", ("devices", "validate", "{d}/dev.toml"), "lacks format",
      _toml('[devices.mine]\ntransport = "local"\nruntime = "onnxruntime"\n')),
    C("toml-bad-name", ("devices", "validate", "{d}/dev.toml"), "device name",
      _device(head='[devices."my laptop"]\ntransport = "local"\nruntime = "onnxruntime"\nformat = "onnx"\n')),
    C("toml-extra-table", ("devices", "validate", "{d}/dev.toml"), "only [devices.NAME] tables", _toml("[other]\nx = 1\n")),
    C("toml-devices-not-table", ("devices", "validate", "{d}/dev.toml"), "'devices' must be a table", _toml("devices = 5\n")),
    C("toml-options-not-table", ("devices", "validate", "{d}/dev.toml"), "options must be a table", _device('options = "x"\n')),
    C("toml-shadows-builtin", ("devices", "validate", "{d}/dev.toml"), "already defined",
      _device(head='[devices.cpu]\ntransport = "local"\nruntime = "onnxruntime"\nformat = "onnx"\n')),
    C("toml-threads-not-a-number", ("devices", "validate", "{d}/dev.toml"), "threads",
      _device('options = { threads = "lots" }\n')),
    C("toml-threads-negative", ("devices", "validate", "{d}/dev.toml"), "threads", _device("options = { threads = -3 }\n")),
    C("toml-not-utf8", ("devices", "validate", "{d}/dev.toml"), "dev.toml",
      _write("dev.toml", _GOOD_DEVICE.encode() + b'description = "caf\xe9"\n')),
    C("toml-port-out-of-range", ("devices", "validate", "{d}/dev.toml"), "65535",
      _device(head='[devices.box]\ntransport = "ssh"\nruntime = "torchscript"\nformat = "torchscript"\n'
                   '[devices.box.connection]\nhost = "h"\nport = 99999\n')),
    C("toml-file-missing", ("devices", "validate", "{d}/none.toml"), "cannot read device file"),
    C("toml-path-is-a-folder", ("devices", "validate", "{d}"), "is a directory"),
    C("devices-show-unknown", ("devices", "show", "nope"), "unknown device 'nope'"),
    C("devices-check-unknown", ("devices", "check", "nope"), "unknown device 'nope'"),
    C("devices-check-ssh-without-host", ("devices", "check", "gtx1080ti"), "needs an SSH host"),
    C("devices-list-bad-file", ("devices", "list", "--no-adb", "--device-file", "{d}/dev.toml"), "not valid TOML",
      _toml("= 1\n")),

    # dataset: releases, journals, Blox-format archives
    C("build-release-exists", ("dataset", "build", "--from", "{d}/camp", "--out", "{d}/rel", "--version", "1.0.1",
                               "--no-static"), "exists", _all(_journal(), _release())),
    C("build-version-bad", ("dataset", "build", "--from", "{d}/camp", "--out", "{d}/new", "--version", "one",
                            "--no-static"), "version", _journal()),
    C("build-source-missing", ("dataset", "build", "--from", "{d}/nothing", "--out", "{d}/new", "--version", "1.0.0",
                               "--no-static"), "nothing"),
    C("build-jobs-zero", ("dataset", "build", "--from", "{d}/camp", "--out", "{d}/new", "--version", "1.0.0",
                          "--jobs", "0"), "--jobs", _journal()),
    C("build-journal-damaged", ("dataset", "build", "--from", "{d}/camp", "--out", "{d}/new", "--version", "1.0.0",
                                "--no-static"), "damaged journal line",
      _journal_edit(lambda lines: [lines[0], "{oops", *lines[1:]])),
    C("build-journal-missing-model-hash", ("dataset", "build", "--from", "{d}/camp", "--out", "{d}/new", "--version",
                                           "1.0.0", "--no-static"), "re:model[_ ]hash", _journal_edit(_drop_key("model_hash"))),
    C("build-out-unwritable", ("dataset", "build", "--from", "{d}/camp", "--out", UNWRITABLE, "--version", "1.0.0",
                               "--no-static"), "blox-lat-bad-input", _journal()),
    C("blox-not-a-blox-file", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                               "1.0.0", "--no-static"), "not a Blox dataset file",
      _write("blox-bench-cpu.csv", "model_hash,latency\n")),
    C("blox-header-unterminated", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new",
                                   "--version", "1.0.0", "--no-static"), "no header end",
      _write("blox-bench-cpu.csv", "---\nversion: 1\n")),
    C("blox-other-space", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                           "1.0.0", "--no-static"), "another search space",
      _blox_file(f"{HASH0},1.5\n", space='{"ops": ["a"], "stages": 3, "nodes": 2}')),
    C("blox-pickle-refused", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                              "1.0.0", "--no-static"), "pickle", _blox_file("\x80\x04N.", fmt='"pickle"')),
    C("blox-row-too-short", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                             "1.0.0", "--no-static"), "row 1 has 1 values", _blox_file(f"{HASH0}\n")),
    C("blox-latency-text", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                            "1.0.0", "--no-static"), "cannot parse", _blox_file(f"{HASH0},fast\n")),
    C("blox-latency-negative", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                                "1.0.0", "--no-static"), "-5", _blox_file(f"{HASH0},-5\n")),
    C("blox-latency-nan", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                           "1.0.0", "--no-static"), "nan", _blox_file(f"{HASH0},nan\n")),
    C("blox-latency-inf", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                           "1.0.0", "--no-static"), "inf", _blox_file(f"{HASH0},inf\n")),
    C("blox-payload-not-utf8", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new", "--version",
                                "1.0.0", "--no-static"), "blox-bench-cpu.csv",
      _write("blox-bench-cpu.csv", _blox("").encode() + HASH0.encode() + b",\xff\xfe\n")),
    C("blox-params-inf", ("dataset", "build", "--from", "{d}/blox-info.csv", "--out", "{d}/new", "--version",
                          "1.0.0", "--no-static"), "params",
      _blox_file(f"{HASH0},inf,1000,\"[[[0],[0,1,0,0]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]\"\n", name="blox-info.csv",
                 columns='["model_hash", "params", "flops", "arch_vec"]', kind='"static"', extra="")),
    C("blox-columns-not-a-list", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new",
                                  "--version", "1.0.0", "--no-static"), "columns must be a list",
      _blox_file(f"{HASH0},1.5\n", columns="null")),
    C("blox-ops-not-a-list", ("dataset", "build", "--from", "{d}/blox-bench-cpu.csv", "--out", "{d}/new",
                              "--version", "1.0.0", "--no-static"), "another search space",
      _blox_file(f"{HASH0},1.5\n", space='{"ops": 5, "stages": 3, "nodes": 2}')),
    C("blox-vector-too-deep", ("dataset", "build", "--from", "{d}/blox-info.csv", "--out", "{d}/new", "--version",
                               "1.0.0", "--no-static"), "cannot parse",
      _blox_file(f"{HASH0},1,1000,\"{'[' * 5000}\"\n", name="blox-info.csv",
                 columns='["model_hash", "params", "flops", "arch_vec"]', kind='"static"', extra="")),
    C("release-missing", ("dataset", "info", "{d}/nothing"), "nothing"),
    C("release-manifest-not-json", ("dataset", "info", "{d}/rel"), "dataset.json",
      _release(lambda rel: (rel / "dataset.json").write_text("{not json"))),
    C("release-schema-newer", ("dataset", "info", "{d}/rel"), "schema", _manifest(lambda m: m.update(schema_version=99))),
    C("release-section-tampered", ("dataset", "verify", "{d}/rel"), "sha256 mismatch", _flip_byte("sections/env/0.parquet")),
    C("release-manifest-edited", ("dataset", "verify", "{d}/rel"), "dataset.json",
      _current_release(_edit_manifest(lambda m: m.update(dataset_version="9.9.9")))),
    C("release-section-path-etc-passwd", ("dataset", "query", "0", "--release", "{d}/rel"),
      "re:^(?!.*the manifest says).*etc/passwd", _manifest(_first_section_file(lambda f: "../../../../../../etc/passwd"))),
    C("release-section-path-escapes", ("dataset", "query", "0", "--release", "{d}/rel"), "outside.parquet",
      _escaping_section),
    C("query-device-unknown", ("dataset", "query", "0", "--release", "{d}/rel", "--device", "tpu"), "tpu", _release()),
    C("query-model-unknown", ("dataset", "query", "99999999", "--release", "{d}/rel"), "99999999", _release()),
    C("diff-release-missing", ("dataset", "diff", "{d}/rel", "{d}/nothing"), "nothing", _release()),
    C("export-blox-out-exists", ("dataset", "export-blox", "{d}/rel", "--out", "{d}/rel"), "already exists", _release()),

    # report, compare, cluster: campaigns and releases read back, Slurm jobs
    C("report-source-missing", ("report", "{d}/nothing", "--out", "{d}/r"), "nothing"),
    C("report-out-exists", ("report", "{d}/camp", "--out", "{d}/camp"), "exists", _journal()),
    C("report-journal-damaged", ("report", "{d}/camp", "--out", "{d}/r"), "damaged journal line",
      _journal_edit(lambda lines: [lines[0], "{oops", *lines[1:]])),
    C("report-device-unknown", ("report", "{d}/camp", "--out", "{d}/r", "--device", "tpu"), "tpu", _journal()),
    C("compare-source-missing", ("compare", "{d}/camp", "{d}/nothing"), "nothing", _journal()),
    C("compare-confidence-above-1", ("compare", "{d}/camp", "{d}/camp", "--confidence", "2"), "confidence",
      _journal()),
    C("compare-device-unknown", ("compare", "{d}/camp", "{d}/camp", "--device", "tpu"), "tpu", _journal()),
    C("compare-journal-damaged", ("compare", "{d}/camp", "{d}/camp"), "damaged journal line",
      _journal_edit(lambda lines: [lines[0], "{oops", *lines[1:]])),
    C("cluster-job-unknown", ("cluster", "slurm", "frobnicate", "--shards", "2", "--dry-run"), "JOB is one of"),
    C("cluster-shards-zero", ("cluster", "slurm", "--shards", "0", "--dry-run", "measure", "0", "--out", "{d}/o"),
      "--shards"),
    C("cluster-status-missing", ("cluster", "status", "{d}/nothing"), "nothing"),

    # train: selectors, data, teachers, paths (all fail before any epoch)
    C("train-model-unknown", ("train", "normal", "nonsense", "--out", "{d}/t", "--device", "cpu"), "does not name a model"),
    C("train-data-missing", ("train", "normal", "0", "--out", "{d}/t", "--device", "cpu", "--data", "{d}/no-cifar"),
      "no-cifar"),
    C("train-data-not-cifar", ("train", "normal", "0", "--out", "{d}/t", "--device", "cpu", "--data", "{d}/c.tar.gz"),
      "c.tar.gz", _write("c.tar.gz", b"garbage")),
    C("train-fraction-without-teacher", ("train", "normal", "0", "--out", "{d}/t", "--fraction", "1/9"), "--teacher"),
    C("train-teacher-without-fraction", ("train", "normal", "0", "--out", "{d}/t", "--teacher", "{d}/t.pt"), "--fraction"),
    C("train-fraction-unknown", ("train", "normal", "0", "--out", "{d}/t", "--fraction", "1/2"), "--fraction"),
    C("train-device-unknown", ("train", "normal", "0", "--out", "{d}/t", "--device", "tpu"), "tpu"),
    C("train-shard-bad", ("train", "normal", "0", "--out", "{d}/t", "--shard", "0/1", "--device", "cpu"), "bad shard"),
    C("train-distill-without-teacher", ("train", "distill", "0", "--out", "{d}/t"), "--teacher"),
    C("train-finetune-without-library", ("train", "finetune", "0", "--out", "{d}/t", "--teacher", "{d}/t.pt"),
      "--library"),
    C("train-out-missing", ("train", "normal", "0"), "--out"),
    C("train-out-unwritable", ("train", "normal", "0", "--out", UNWRITABLE, "--device", "cpu"), "blox-lat-bad-input"),
]

PENDING: dict[str, tuple[str, str]] = {
    # case id -> (issue 13 item, what is missing); a case whose fix lands turns XPASS and fails
}

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def _param(case: Case):
    marks = case.marks
    if case.id in PENDING:
        item, who = PENDING[case.id]
        marks = (*marks, *_pending(item, who))
    return pytest.param(case, id=case.id, marks=marks)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


ENV = {"BLOX_LAT_CONFIG_DIR": "/nonexistent/blox-lat-config", "SNPE_ROOT": None, "BLOX_LAT_CIFAR100": None,
       "BLOX_LAT_RELEASE": None, "PATH": "/usr/bin:/bin"}


def _check(status: int, stderr: str, expected: Case, before: dict[str, str], d: Path) -> None:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert status == expected.status, f"exit {status}, stderr: {stderr[-2000:]}"
    assert len(lines) == 1, f"{len(lines)} stderr lines: {stderr[-2000:]}"
    assert lines[0].startswith("blox-lat: error:"), lines[0]
    pattern = expected.fragment[3:] if expected.fragment.startswith("re:") else re.escape(expected.fragment)
    assert re.search(pattern, lines[0]), f"{expected.fragment!r} not in {lines[0]!r}"
    after = _digests(d)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert not changed, f"pre-existing files changed or removed: {changed}"


def invoke_in(args, d: Path):
    """``blox-lat ARGS`` in-process ("{d}" is the case's folder); only SystemExit may escape."""
    result = CliRunner().invoke(cli, [a.replace("{d}", str(d)) for a in args], env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    return result


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, folder: Path):
    if case.setup is not None:
        case.setup(folder)
    before = _digests(folder)
    result = invoke_in(case.args, folder)
    _check(result.exit_code, result.stderr, case, before, folder)


SUBPROCESS_CASES = ["selector-file-not-utf8", "export-option-unknown", "measure-journal-damaged", "toml-batch-zero",
                    "blox-other-space", "release-section-tampered", "train-fraction-without-teacher"]


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.id in SUBPROCESS_CASES])
def test_bad_input_console_script(case: Case, folder: Path):
    """The same contract through the installed script: a real process, real streams."""
    exe = shutil.which("blox-lat", path=str(Path(sys.executable).parent)) or shutil.which("blox-lat")
    argv = [exe] if exe else [sys.executable, "-m", "blox_lat"]
    if case.setup is not None:
        case.setup(folder)
    before = _digests(folder)
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update({k: v for k, v in ENV.items() if v is not None and k != "PATH"})
    proc = subprocess.run([*argv, *(a.replace("{d}", str(folder)) for a in case.args)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=folder)
    _check(proc.returncode, proc.stderr, case, before, folder)


def test_the_suite_is_big_enough():
    assert len(CASES) >= 60
    assert {c.args[0] for c in CASES} >= {"space", "export", "measure", "devices", "dataset", "train", "report",
                                          "compare", "cluster"}
