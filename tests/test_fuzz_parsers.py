"""Property-based fuzzing of the parsers that read what users write (issue 13).

For selectors, device TOML, journal lines, export ``-O`` options and Blox-format files the
property is the same: any input either parses to a valid value or raises the project's typed
error (a :class:`~blox_lat.errors.BloxLatError`), never another exception, which the CLI would
show as a traceback. Where a text form exists, it round-trips.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from blox_lat import space as sp
from blox_lat.errors import BloxLatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUM_MODELS = 91_125


def _tmpdir() -> Path:
    """A fresh folder per example (hypothesis reruns a test body; pytest's tmp_path is per test)."""
    return Path(tempfile.mkdtemp(prefix="blox-fuzz-"))


# --- selectors (blox_lat/space/_selector.py) ------------------------------------------------

_index = st.integers(-5, NUM_MODELS + 5)
_selector_item = st.one_of(
    _index.map(str),
    st.tuples(st.one_of(st.just(""), _index.map(str)), st.one_of(st.just(""), _index.map(str)))
    .filter(lambda ab: ab[0] != "" or ab[1] != "")  # no ':' alone (the whole space)
    .map(lambda ab: f"{ab[0]}:{ab[1]}")
    .filter(lambda s: _range_size(s) <= 200),
    st.builds(lambda n, seed: f"random:{n}" + ("" if seed is None else f":{seed}"),
              st.integers(0, 30), st.none() | st.integers(0, 2**70)),
    st.sampled_from(["random", "random:", "random:x", "random:1:2:3", "@", "[", "]", "[[[0]]]", "a/b/c",
                     "seq.conv.conv/seq.conv.conv/seq.conv.conv", "0x10", "1e3", "-1", "+1", "٣", "00012"]),
    st.text(alphabet="0123456789abcdef", min_size=30, max_size=34),
    st.text(max_size=20).filter(lambda s: s.strip() != "all"),
)


def _range_size(item: str) -> int:
    a, _, b = item.partition(":")
    try:
        start = int(a) if a else 0
        stop = int(b) if b else NUM_MODELS
    except ValueError:
        return 0
    return max(0, stop - start)


@FUZZ
@given(st.lists(_selector_item, max_size=4).map(",".join))
@example("[" * 50_000)
@example("0:3,[[[0],[1,1,1,1]],[[1],[1,1,0,0]],[[0],[0,1,1,0]]]")
def test_selector_parses_or_raises_typed_error(text):
    try:
        archs = sp.select(text)
    except BloxLatError:
        return
    assert all(isinstance(a, sp.Arch) for a in archs)
    assert len({a.index for a in archs}) == len(archs)  # first-seen order, no duplicates


@FUZZ
@given(st.text(max_size=12))
def test_shard_spec_parses_or_raises_typed_error(spec):
    try:
        k, n = sp.parse_shard(spec)
    except BloxLatError:
        return
    assert 1 <= k <= n


_model = st.integers(0, NUM_MODELS - 1).map(sp.from_index)


@FUZZ
@given(_model)
def test_every_text_form_of_a_model_names_it(arch):
    """Index, hash, vector text and block string resolve back to the same model."""
    for name in (str(arch.index), arch.hash, arch.hash.upper(), arch.vector_text, json.dumps(arch.vector_list),
                 arch.name, f"  {arch.name} "):
        assert sp.resolve(name) == arch, name
    assert sp.select(arch.vector_text) == [arch]


@FUZZ
@given(st.lists(_model, min_size=1, max_size=8), st.sampled_from(["index", "hash", "vector", "name"]))
def test_a_selector_of_names_round_trips(archs, form):
    text = ",".join({"index": lambda a: str(a.index), "hash": lambda a: a.hash,
                     "vector": lambda a: a.vector_text, "name": lambda a: a.name}[form](a) for a in archs)
    unique = list(dict.fromkeys(archs))
    assert sp.select(text) == unique


@FUZZ
@given(st.integers(0, 500), st.integers(1, 300), st.integers(1, 7))
def test_shards_partition_a_selection(start, length, n):
    archs = sp.select(f"{start}:{start + length}")
    shards = [sp.shard(archs, f"{k}/{n}") for k in range(1, n + 1)]
    assert sorted(a.index for s in shards for a in s) == [a.index for a in archs]


# --- device TOML (blox_lat/devices/_profiles.py) ---------------------------------------------

_toml_key = st.sampled_from(["description", "transport", "runtime", "format", "batch", "input_size", "precision",
                             "options", "connection", "colour"])
_toml_scalar = st.one_of(
    st.sampled_from(["local", "ssh", "adb", "onnxruntime", "torchscript", "snpe", "onnx", "onnx-int8", "dlc",
                     "fp32", "fp16", "int8", "lots", ""]),
    st.integers(-2**63, 2**63 - 1), st.booleans(), st.floats(allow_nan=True), st.text(max_size=8),
)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return _toml_string(value)


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes, minus its surrogate pairs, which TOML rejects)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


_toml_table = st.dictionaries(
    _toml_key,
    st.one_of(_toml_scalar, st.dictionaries(st.sampled_from(["threads", "device", "host", "port", "runtime", "x"]),
                                            _toml_scalar, max_size=3)),
    max_size=9,
)


def _toml_text(devices: dict) -> str:
    out = []
    for name, table in devices.items():
        out.append(f"[devices.{_toml_string(name)}]")
        out.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
    return "\n".join(out) + "\n"


@FUZZ
@given(st.dictionaries(st.sampled_from(["mine", "a.b", "x y", "", "cpu", "box-2", "ü"]), _toml_table, max_size=3))
def test_device_toml_parses_or_raises_typed_error(devices):
    from blox_lat.devices._profiles import DeviceProfile, _parse_toml

    try:
        profiles = _parse_toml(_toml_text(devices), "fuzz.toml")
    except BloxLatError:
        return
    assert all(isinstance(p, DeviceProfile) for p in profiles)


@FUZZ
@given(st.text(max_size=200))
@example("[devices.x]\n[devices.x.options]\n[devices.x.options.y]\n")
@example("devices.x = 1\n")
@example("[[devices]]\n")
def test_device_toml_text_never_raises_untyped(text):
    from blox_lat.devices._profiles import _parse_toml

    try:
        _parse_toml(text, "fuzz.toml")
    except BloxLatError:
        pass


_profile = st.builds(
    dict,
    transport=st.just("local"),
    runtime_format=st.sampled_from([("onnxruntime", "onnx"), ("onnxruntime", "onnx-int8"), ("torchscript", "torchscript")]),
    batch=st.integers(1, 4096),
    input_size=st.integers(1, 512),
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    description=st.text(max_size=20),
    threads=st.integers(1, 64),
)


@FUZZ
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True), _profile)
def test_device_profile_round_trips_through_toml(name, p):
    """A profile written as TOML (the form ``devices show`` describes) reads back equal."""
    from blox_lat.devices._profiles import _parse_toml

    runtime, fmt = p["runtime_format"]
    table = {"transport": p["transport"], "runtime": runtime, "format": fmt, "batch": p["batch"],
             "input_size": p["input_size"], "precision": p["precision"], "description": p["description"],
             "options": {"threads": p["threads"]}}
    (profile,) = _parse_toml(_toml_text({name: table}), "fuzz.toml")
    data = profile.to_dict()
    again = {k: v for k, v in data.items() if k != "name"}
    (back,) = _parse_toml(_toml_text({name: {**again, "description": profile.description}}), "fuzz.toml")
    assert back == profile and back.name == name


# --- journal lines (blox_lat/harness/_journal.py) ------------------------------------------

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
_json = st.recursive(_json_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)
_journal_record = st.fixed_dictionaries(
    {},
    optional={"schema": st.one_of(st.integers(-2, 3), st.text(max_size=3), st.floats(), _json),
              "kind": st.sampled_from(["environment", "measurement", "other"]) | _json,
              "model_hash": st.sampled_from(["39554afd1b33a44663e653ad10137b9a"]) | _json,
              "status": st.sampled_from(["ok", "failed"]) | _json,
              "measurement": _json},
)
_journal_line = st.one_of(
    _journal_record.map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
    st.sampled_from(['{"schema": 1e400}', '{"schema": NaN}', '{"schema": "1"}', '{"schema": [1]}', "\ufeff{}"]),
)


@FUZZ
@given(st.lists(_journal_line, max_size=6), st.booleans())
@example(['{"schema": 1e400}'], False)
@example(['{"schema": "x"}'], False)
def test_journal_lines_read_or_raise_typed_error(lines, torn_tail):
    from blox_lat.harness._journal import read_journal

    path = _tmpdir() / "journal.jsonl"
    path.write_text("".join(line + "\n" for line in lines) + ("{\"torn" if torn_tail else ""), encoding="utf-8")
    try:
        records = list(read_journal(path))
    except BloxLatError:
        return
    assert all(isinstance(r, dict) for r in records)


@FUZZ
@given(st.binary(max_size=300))
def test_journal_bytes_read_or_raise_typed_error(data):
    from blox_lat.harness._journal import read_journal

    path = _tmpdir() / "journal.jsonl"
    path.write_bytes(data)
    try:
        list(read_journal(path))
    except BloxLatError:
        pass


_finite_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@FUZZ
@given(st.lists(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "schema"), _finite_json, max_size=4),
                max_size=5))
def test_journal_round_trips(records):
    """What ``Journal.append`` writes (strict JSON: no NaN or infinity), ``read_journal`` yields back."""
    from blox_lat.harness._journal import Journal, read_journal

    path = _tmpdir() / "journal.jsonl"
    records = [{"schema": 1, **r} for r in records]
    with Journal(path) as journal:
        for record in records:
            journal.append(record)
    assert list(read_journal(path)) == records


# --- export -O options (blox_lat/exporters/_formats.py, cli/export.py) ----------------------

_option_name = st.sampled_from(["opset", "calibration", "calibration_samples", "quantizer", "allow_pickle",
                                "min_top1_agreement", "htp_socs", "colour", ""])
_option_value = st.one_of(
    st.sampled_from(["17", "21", "9", "0", "1", "16", "10001", "pieces", "whole", "yes", "no", "random", "nan",
                     "inf", "-0.0", "0.5", "1e-3", "٣", "17 ", "sm8350", "/nonexistent/cifar", "\x00"]),
    st.text(max_size=8),
)


@FUZZ
@given(st.sampled_from(["torchscript", "onnx", "onnx-int8", "dlc"]),
       st.dictionaries(_option_name, _option_value, max_size=4))
@example("onnx-int8", {"calibration": "\x00"})
@example("onnx", {"opset": "١٧"})
def test_export_options_parse_or_raise_typed_error(fmt, options):
    from blox_lat.exporters._formats import get_format, normalise_options

    try:
        result = normalise_options(get_format(fmt), options)
    except BloxLatError:
        return
    assert dict(result).keys() == {o.name for o in get_format(fmt).options}
    if "calibration" not in options:  # a calibration path is replaced by its identity
        assert normalise_options(get_format(fmt), dict(result)) == result  # idempotent


@FUZZ
@given(st.lists(st.text(max_size=12), max_size=4))
def test_cli_option_pairs_parse_or_raise_usage_error(pairs):
    import click

    from blox_lat.cli.export import _parse_options

    try:
        parsed = _parse_options(tuple(pairs))
    except click.UsageError:
        return
    assert all(name and name == name.strip() for name in parsed)


# --- Blox-format files (blox_lat/dataset/_bloxfmt.py) ---------------------------------------

_SPACE = ('{"shape": [[[3], [3, 2, 2, 2]], [[3], [3, 2, 2, 2]], [[3], [3, 2, 2, 2]]], '
          '"nodes": 2, "stages": 3, "ops": ["conv", "mbconv", "bconv"]}')
_COLUMNS = ["model_hash", "latency", "params", "flops", "arch_vec", "val_top1", "test_top1", "train_time_s",
            "train_loss", "seed", "extra"]
_cell = st.one_of(
    st.sampled_from(["", "1.5", "-5", "nan", "inf", "-inf", "1e400", "0", "[1.0, 2.5]", "[", "[[1]]", "[1, [2]]",
                     '"x"', "39554afd1b33a44663e653ad10137b9a", "[[[0],[0,1,0,0]],[[0],[0,1,0,0]],[[0],[0,1,0,0]]]",
                     "[" * 3000, "{}", "null", "true", "1_000"]),
    st.text(max_size=12),
    st.floats().map(repr),
)
_header_value = st.one_of(st.sampled_from([_SPACE, '"csv"', '"pickle"', '["model_hash", "latency"]', "1", "[]", "{}",
                                           "null", '"x"', "[1, 2]", "&a", "!!python/object:os.system", "'", "{"]),
                          st.text(max_size=10).filter(lambda s: "\n" not in s and "\r" not in s))


@st.composite
def _blox_text(draw):
    columns = draw(st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=5))
    if draw(st.booleans()):
        columns = ["model_hash", *columns]
    header = {"version": "1", "search_space": _SPACE, "dataset_type": '"benchmarking"', "columns": json.dumps(columns),
              "format": '"csv"'}
    for key in draw(st.lists(st.sampled_from(list(header)), max_size=2)):
        if draw(st.booleans()):
            header.pop(key, None)
        else:
            header[key] = draw(_header_value)
    rows = draw(st.lists(st.lists(_cell, min_size=len(columns) - 1, max_size=len(columns) + 1), max_size=4))
    body = "".join(",".join(json.dumps(c) if "," in c else c for c in row) + "\r\n" for row in rows)
    return "---\n" + "".join(f"{k}: {v}\n" for k, v in header.items()) + "---\n" + body


@FUZZ
@given(_blox_text(), st.booleans())
@example("---\nversion: 1\nsearch_space: " + _SPACE + '\ndataset_type: "static"\ncolumns: ["model_hash", "params"]\n'
         'format: "csv"\n---\n39554afd1b33a44663e653ad10137b9a,inf\r\n', False)
def test_blox_files_read_or_raise_typed_error(text, allow_pickle):
    from blox_lat.dataset._bloxfmt import read_blox_file

    path = _tmpdir() / "blox-bench-cpu.csv"
    path.write_text(text, encoding="utf-8", newline="")
    try:
        header, rows = read_blox_file(path, allow_pickle=allow_pickle)
    except BloxLatError:
        return
    assert isinstance(header, dict) and all(isinstance(r, dict) for r in rows)


@FUZZ
@given(st.binary(max_size=400), st.booleans())
@example(b"---\nversion: 1\n---\n", False)
@example(b"---\n\xff\xfe: 1\n---\n", False)
def test_blox_bytes_read_or_raise_typed_error(data, allow_pickle):
    from blox_lat.dataset._bloxfmt import read_blox_file

    path = _tmpdir() / "blox-x.csv"
    path.write_bytes(data)
    try:
        read_blox_file(path, allow_pickle=allow_pickle)
    except BloxLatError:
        pass


_latency = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@FUZZ
@given(st.lists(st.tuples(_model, _latency), max_size=8, unique_by=lambda t: t[0].index))
def test_blox_bench_file_round_trips(rows):
    """``write_blox_file`` then ``read_blox_file`` gives the same hashes and latencies."""
    from blox_lat.dataset._bloxfmt import read_blox_file, reference_header, write_blox_file

    path = _tmpdir() / "blox-bench-cpu.csv"
    header = reference_header("benchmarking", ["model_hash", "latency"], device="cpu")
    write_blox_file(path, header, [[a.hash, lat] for a, lat in rows])
    back_header, back = read_blox_file(path)
    assert back_header["columns"] == ["model_hash", "latency"] and back_header["device"] == "cpu"
    assert [(r["model_hash"], r["latency"]) for r in back] == [(a.hash, lat) for a, lat in rows]


@FUZZ
@given(st.binary(max_size=200))
@example(b'[devices.x]\ntransport = "caf\xe9"\n')
def test_device_file_bytes_load_or_raise_typed_error(data):
    """A device file is read from disk as bytes: non-UTF-8 ones too must fail with a ProfileError."""
    from blox_lat.devices._profiles import ProfileRegistry

    path = _tmpdir() / "dev.toml"
    path.write_bytes(data)
    try:
        ProfileRegistry().add_file(path)
    except BloxLatError:
        pass
