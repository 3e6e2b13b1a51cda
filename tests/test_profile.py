"""Per-layer profiles on this host, for real: onnxruntime's profiler in the worker process, the
layer -> stage/block mapping on exported models, the journal, resume, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat import space as sp
from blox_lat.cli.main import cli
from blox_lat.harness import ModelFailedError, TimingProtocol
from blox_lat.profile import (
    PROFILES_NAME,
    ProfileRecord,
    ProfileRecordError,
    attribute,
    block_of_piece,
    piece_of_name,
    pieces_of_blocks,
    profile_models,
    read_profiles,
)

FAST = TimingProtocol(groups=3, runs_per_group=5, warmup_min_runs=3, warmup_min_s=0.0)
MODELS = ("0", "73948")  # a small model and one with squeeze-excite, dense and residual blocks


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from blox_lat.exporters import ArtifactStore

    return ArtifactStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, store):
    """Both models profiled on cpu and cpu-int8 (one folder per device)."""
    out = {}
    for device in ("cpu", "cpu-int8"):
        folder = tmp_path_factory.mktemp(device)
        out[device] = (folder, profile_models(list(MODELS), device, out=folder, runs=12, protocol=FAST, store=store))
    return out


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_every_exported_node_maps_to_a_piece_of_its_model(store, fmt):
    import onnx

    from blox_lat.exporters import export

    for name in MODELS:
        arch = sp.resolve(name)
        graph = onnx.load(export(arch, fmt, store=store).path).graph
        names = [n.name for n in graph.node]
        found = [piece_of_name(n, arch.blocks) for n in names]
        assert all(piece for piece, _ in found), [n for n, (p, _) in zip(names, found) if not p][:5]
        assert {p for p, _ in found} == set(pieces_of_blocks(arch.blocks))
        if fmt == "onnx-int8":  # the quantize/dequantize pairs between pieces are mapped by the boundary rule
            assert any(rule == "boundary" for _, rule in found)


def test_mapping_rules():
    blocks = (13, 23, 36)
    assert piece_of_name("cell_1_23/Conv_3", blocks) == ("cell/1/23", "name")
    assert piece_of_name("t0_nchwc", blocks) == ("stem", "boundary")
    assert piece_of_name("t3_DequantizeLinear/duplicated", blocks) == ("cell/1/23", "boundary")
    assert piece_of_name("t6_QuantizeLinear", blocks) == ("reduction/2", "boundary")
    assert piece_of_name("Transpose_token_12", blocks) == ("", "")
    assert piece_of_name("cell_9_1/Conv", blocks) == ("", "")  # no stage 9
    order = attribute(["Transpose", "stem/Conv_3", "ReorderOutput", "reduction_0/Add_13", "Reorder"], blocks)
    assert order == [("stem", "order"), ("stem", "name"), ("stem", "order"), ("reduction/0", "name"),
                     ("reduction/0", "order")]
    assert attribute(["aten::conv2d"], blocks, keeps_names=False) == [("", "")]
    assert block_of_piece("cell/2/36") == (2, sp.list_blocks()[36].name)
    assert block_of_piece("reduction/1") == (1, "reduction") and block_of_piece("head") == (None, "head")


@pytest.mark.parametrize("device,fused", [("cpu", "Conv"), ("cpu-int8", "QLinearConv")])
def test_profile_on_the_cpu_for_real(profiled, device, fused):
    _, summary = profiled[device]
    assert [r.model_index for r in summary.records] == [sp.resolve(m).index for m in MODELS]
    for rec in summary.records:
        assert rec.ok, rec.reason
        arch = sp.resolve(rec.model_hash)
        assert rec.load_ms > 0 and rec.first_inference_ms > 0 and rec.latency_ms > 0
        assert rec.peak_memory_mib is not None and rec.peak_memory_mib > 0 and rec.memory_how == "VmHWM"
        assert all(x.piece for x in rec.layers), "a layer of an exported model stayed unmapped"
        assert {x.provider for x in rec.layers} == {"CPUExecutionProvider"}
        assert fused in {x.op_type for x in rec.layers}
        assert [b.piece for b in rec.blocks] == pieces_of_blocks(arch.blocks)
        assert all(b.ms > 0 and b.layers > 0 for b in rec.blocks)
        assert [b.block for b in rec.blocks if b.piece.startswith("cell/")] == list(arch.block_names)
        assert sum(b.ms for b in rec.blocks) == pytest.approx(rec.layers_ms, rel=1e-6)
        # per run, not summed over the runs: the layers cost about one inference
        assert 0.2 * rec.latency_ms < rec.layers_ms < 3 * rec.latency_ms
        assert len(rec.profiled_ns) == 12 and len(rec.measurement["samples_ms"]) == FAST.total_runs


def test_records_are_journaled_and_resumed(profiled, store):
    folder, summary = profiled["cpu"]
    assert read_profiles(folder) == list(summary.records)
    again = profile_models(list(MODELS), "cpu", out=folder, runs=12, protocol=FAST, store=store)
    assert (again.profiled, again.skipped) == (0, 2) and again.records == summary.records
    more = profile_models(["0", "1"], "cpu", out=folder, runs=12, protocol=FAST, store=store)
    assert (more.profiled, more.skipped) == (1, 1)
    other_runs = profile_models(["1"], "cpu", out=folder, runs=6, protocol=FAST, store=store)
    assert other_runs.profiled == 1  # another number of profiled runs is another key
    assert len((folder / PROFILES_NAME).read_text().splitlines()) == 4


def test_a_failed_model_is_recorded_and_tried_again(tmp_path, store):
    class Failing:
        def profile_layers(self, artifact, profile, protocol, runs):
            raise ModelFailedError("worker crashed (killed by signal SIGKILL)")

        def close(self):
            pass

    first = profile_models(["0"], "cpu", out=tmp_path, runs=5, protocol=FAST, store=store, runner=Failing())
    assert first.failed == 1 and "SIGKILL" in first.records[0].reason
    second = profile_models(["0"], "cpu", out=tmp_path, runs=5, protocol=FAST, store=store)
    assert second.profiled == 1 and second.records[0].ok and second.failed == 0
    lines = [r.status for r in read_profiles(tmp_path)]
    assert lines == ["failed", "ok"]


def test_reader_names_file_and_line(tmp_path, profiled):
    folder, summary = profiled["cpu"]
    good = (folder / PROFILES_NAME).read_text().splitlines()[0]
    path = tmp_path / PROFILES_NAME
    path.write_text(good + "\n" + good[:50])  # a torn final line is skipped
    assert len(read_profiles(path)) == 1
    path.write_text(good + "\n{oops\n" + good + "\n")
    with pytest.raises(ProfileRecordError, match=rf"{PROFILES_NAME}:2: not JSON"):
        read_profiles(path)
    newer = json.loads(good) | {"schema": 99}
    path.write_text(json.dumps(newer) + "\n")
    with pytest.raises(ProfileRecordError, match=":1: schema 99"):
        read_profiles(path)
    broken = json.loads(good)
    del broken["latency_ms"]
    with pytest.raises(ProfileRecordError, match=":1: an ok profile carries its protocol latency"):
        ProfileRecord.from_dict(broken, f"{path}:1")


def test_cli_json_has_the_fields_of_the_issue(tmp_path, store):
    out = tmp_path / "p"
    r = CliRunner().invoke(cli, ["profile", "0", "--device", "cpu-int8", "--runs", "10", "--out", str(out),
                                 "--store", str(store.root), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    (model,) = data["models"]
    for key in ("load_ms", "first_inference_ms", "peak_memory_mib", "latency_ms", "layers", "blocks", "overhead"):
        assert model[key] is not None, key
    assert set(model["layers"][0]) >= {"name", "op_type", "stage", "block", "ms"}
    assert set(model["blocks"][0]) >= {"stage", "block", "ms"}
    assert [b["block"] for b in model["blocks"]][1] == sp.resolve("0").block_names[0]
    table = CliRunner().invoke(cli, ["profile", "0", "--device", "cpu-int8", "--runs", "10", "--out", str(out),
                                     "--store", str(store.root)])
    assert table.exit_code == 0 and "0 profiled now, 1 already there" in table.output
    assert "reduction" in table.output and "latency_ms" in table.output


@pytest.mark.parametrize("args,message", [
    (["--runs", "0"], "--runs"),
    (["--device", "nosuch"], "nosuch"),
    (["--timeout", "-1"], "--timeout"),
    (["--connect", "nokey"], "KEY=VALUE"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    r = CliRunner().invoke(cli, ["profile", "0", "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o" / PROFILES_NAME).exists()


def test_installed_command_refuses_a_bad_selector_and_a_file_as_out(tmp_path):
    exe = Path(sys.executable).with_name("blox-lat")
    (tmp_path / "file").write_text("x")
    for args in (["profile", "nonsense:selector"], ["profile", "0", "--out", str(tmp_path / "file")]):
        done = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / PROFILES_NAME).write_text("{not json\n")
    done = subprocess.run([str(exe), "profile", "0", "--out", str(damaged)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and f"{PROFILES_NAME}:1" in done.stderr and done.stderr.count("\n") == 1


def test_torchscript_on_the_cpu_keeps_no_names(tmp_path, store):
    """Frozen TorchScript loses module names: its layers are torch.profiler's ops, unmapped. On the
    CPU the convolutions that optimize_for_inference rewrote to MKLDNN prim ops are not recorded
    by torch.profiler, so the layers cover part of an inference only (docs/profile.md)."""
    pytest.importorskip("torch")
    summary = profile_models(["0"], "cpu-torchscript", out=tmp_path, runs=6, protocol=FAST, store=store)
    (rec,) = summary.records
    assert rec.ok, rec.reason
    assert rec.layers and all(x.piece == "" and x.stage is None for x in rec.layers)
    assert all(x.op_type.startswith("aten::") for x in rec.layers)
    assert rec.layers_ms < rec.latency_ms
    assert [b.piece for b in rec.blocks if b.layers] == [""]
