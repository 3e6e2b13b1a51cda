"""Exporters: formats, keys, store, the fast and naive exporters, verification, streaming."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from blox_lat import exporters as ex
from blox_lat import space as sp
from blox_lat.errors import BloxLatError

MODELS = sp.select("0:3")  # share stage-1/2 blocks, so pieces are reused


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ex.ArtifactStore(tmp_path_factory.mktemp("store"))


def test_formats_registry():
    names = [f.name for f in ex.list_formats()]
    assert names == ["torchscript", "onnx", "onnx-int8", "dlc"]
    assert ex.get_format("torchscript").default_batch == 256
    assert ex.get_format("onnx").suffix == ".onnx" and ex.get_format("dlc").suffix == ".dlc"
    with pytest.raises(ex.ExportError, match="torchscript, onnx, onnx-int8, dlc"):
        ex.get_format("tflite")
    assert issubclass(ex.SnpeNotFoundError, ex.ExportError) and issubclass(ex.ExportError, BloxLatError)


def test_key_digest_is_canonical(tmp_path):
    a = ex.ArtifactKey("ab" * 16, "onnx", 1, (("opset", "17"),), (("torch", "2"),))
    b = ex.ArtifactKey.from_dict(json.loads(json.dumps(a.to_dict())))
    assert a == b and a.digest() == b.digest() and len(a.digest()) == 64
    assert a.digest() != ex.ArtifactKey("ab" * 16, "onnx", 2, a.options, a.toolchain).digest()
    # defaults are filled in: an explicit default shares the key (and the file)
    s = ex.ArtifactStore(tmp_path)
    one = ex.export(0, "onnx", store=s, options={"opset": "17"}, verify=False)
    two = ex.export(0, "onnx", store=s, verify=False)
    assert one.path == two.path


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"format": "onnx", "options": {"opset": "11"}}, "opset"),
        ({"format": "onnx", "options": {"bogus": "1"}}, "no option bogus"),
        ({"format": "onnx", "batch": 0}, "batch"),
        ({"format": "onnx-int8", "options": {"calibration": "/nonexistent/cifar"}}, "does not exist"),
        ({"format": "onnx", "method": "magic"}, "method"),
    ],
)
def test_bad_requests_are_typed_errors(tmp_path, kwargs, match):
    with pytest.raises(ex.ExportError, match=match):
        ex.export(0, store=ex.ArtifactStore(tmp_path), **kwargs)
    assert not list((tmp_path / "objects").glob("*/*"))


def test_store_rejects_file_root(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ex.ExportError, match="is a file"):
        ex.ArtifactStore(tmp_path / "f")


def test_fast_onnx_equals_direct_model_and_naive_export(store, tmp_path):
    import onnx
    import torch

    from blox_lat.exporters import _naive, _verify, _weights

    for arch in MODELS:
        art = ex.export(arch, "onnx", store=store)
        assert art.format == "onnx" and art.model_hash == arch.hash and art.batch == 1
        assert art.verification["max_rel_err"] <= 1e-4
        model = onnx.load(str(art.path))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version >= 17
        x = _verify.verification_input(1, seed=7)
        with torch.no_grad():
            direct = _weights.seeded_model(arch)(torch.from_numpy(x)).numpy()
        assert _verify.rel_err(_verify.run_onnx(art.path, x), direct) <= 1e-4
    # the composed graph is the graph a direct export makes (same operators, same weights)
    naive = tmp_path / "naive.onnx"
    _naive.export_onnx(MODELS[1], naive, 1)
    fast, ref = onnx.load(str(ex.export(MODELS[1], "onnx", store=store).path)), onnx.load(str(naive))
    assert sorted(n.op_type for n in fast.graph.node) == sorted(n.op_type for n in ref.graph.node)
    assert sum(np.prod(i.dims) for i in fast.graph.initializer) == sum(np.prod(i.dims) for i in ref.graph.initializer)
    x = _verify.verification_input(1, seed=3)
    assert _verify.rel_err(_verify.run_onnx(naive, x), _verify.run_onnx(str(ex.export(MODELS[1], "onnx", store=store).path), x)) <= 1e-5


def test_memoised_reference_equals_direct_model():
    import torch

    from blox_lat.exporters import _compose, _verify, _weights

    x = _verify.verification_input(2, seed=5)
    for arch in MODELS:
        with torch.no_grad():
            direct = _weights.seeded_model(arch)(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(_compose.torch_reference(arch)(x), direct)
        np.testing.assert_array_equal(_compose.torch_reference(arch)(x), direct)  # memoised path


def test_weights_are_deterministic_per_model():
    import torch

    from blox_lat.exporters import _weights

    a, b = _weights.seeded_model(MODELS[0]), _weights.seeded_model(MODELS[0])
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    c = _weights.seeded_model(MODELS[1])
    # stage 0 holds different blocks (both end in a conv op): different pieces, different weights
    assert not torch.equal(a.stages[0][0].op1[0][0].weight, c.stages[0][0].op1[0][0].weight)
    # stage 1 holds the same block: same piece, same weights
    assert torch.equal(a.stages[1][0].op1[0][0].weight, c.stages[1][0].op1[0][0].weight)


def test_torchscript_loads_and_matches(store):
    import torch

    from blox_lat.exporters import _verify, _weights

    art = ex.export(MODELS[2], "torchscript", batch=256, store=store)
    assert art.path.suffix == ".pt" and art.batch == 256
    loaded = torch.jit.load(str(art.path))
    x = _verify.verification_input(3, seed=11)
    with torch.no_grad():
        got = loaded(torch.from_numpy(x)).numpy()
        want = _weights.seeded_model(MODELS[2])(torch.from_numpy(x)).numpy()
    assert _verify.rel_err(got, want) <= 1e-4
    assert not any(True for _ in loaded.parameters())  # frozen: weights are constants


def test_int8_has_quantised_operators(store):
    import onnx

    art = ex.export(MODELS[0], "onnx-int8", store=store)
    assert 0.0 <= art.verification["top1_agreement"] <= 1.0
    model = onnx.load(str(art.path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    inits = {i.name: i for i in model.graph.initializer}
    int8_weights = [i for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert int8_weights, "conv weights are stored as int8"
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in inits and len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1]
    assert per_channel, "weights are quantised per channel"
    assert art.bytes < ex.export(MODELS[0], "onnx", store=store).bytes / 2


@pytest.mark.parametrize("batch", [1, 2])
def test_int8_from_piece_templates_is_quantize_static_of_the_whole_model(tmp_path, batch):
    """The composed int8 model has quantize_static's nodes and (to float rounding) its values."""
    import collections
    import logging

    import onnx
    from onnx import numpy_helper

    from blox_lat.exporters import _compose, _naive, _quant, _verify
    from blox_lat.exporters._calib import calibration_inputs

    logging.getLogger().setLevel(logging.ERROR)
    calib = calibration_inputs("random", 4, batch)
    held_out = calibration_inputs("random", 3, batch, seed=1)
    arch = sp.resolve(12345)  # squeeze-excitation blocks, several convolutions per cell
    data, logits = _quant.int8_bytes(arch, batch, 17, calib, held_out, tmp_path / "pieces")
    ours = onnx.load_from_string(data)
    onnx.checker.check_model(ours)
    _compose.export_onnx(arch, tmp_path / "f.onnx", batch)
    _naive.quantize_int8(tmp_path / "f.onnx", tmp_path / "q.onnx", calib)
    ref = onnx.load(str(tmp_path / "q.onnx"))

    def nodes(model):
        return collections.Counter((n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node)

    assert nodes(ours) == nodes(ref)
    got = {i.name: numpy_helper.to_array(i) for i in ours.graph.initializer}
    want = {i.name: numpy_helper.to_array(i) for i in ref.graph.initializer}
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        # scales come from a batched calibration run: equal to float rounding, int32 biases to 1 LSB
        np.testing.assert_allclose(got[name].astype(np.float64), value.astype(np.float64), rtol=1e-5,
                                   atol=1.0 if value.dtype == np.int32 else 0, err_msg=name)
    x = held_out[0]
    np.testing.assert_allclose(logits[:batch], _verify.run_onnx(str(tmp_path / "f.onnx"), x), rtol=1e-4, atol=1e-4)
    assert _verify.rel_err(_verify.run_onnx(data, x), _verify.run_onnx(str(tmp_path / "q.onnx"), x)) < 0.05


def test_int8_quantizer_option(tmp_path):
    s = ex.ArtifactStore(tmp_path)
    whole = ex.export(MODELS[0], "onnx-int8", store=s, options={"quantizer": "whole"})
    pieces = ex.export(MODELS[0], "onnx-int8", store=s)
    assert pieces.path != whole.path and pieces.verification["quantizer"] == "pieces"
    assert "quantizer" not in whole.verification
    with pytest.raises(ex.ExportError, match="quantizer must be pieces or whole"):
        ex.export(MODELS[0], "onnx-int8", store=s, options={"quantizer": "layer"})
    with pytest.raises(ex.ExportError, match="quantizer=whole"):
        ex.export(MODELS[0], "onnx-int8", store=s, method="naive")
    assert ex.export(MODELS[0], "onnx-int8", store=s, options={"quantizer": "whole"}, method="naive").path == whole.path


def test_int8_with_cifar_calibration(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(40, 3072), dtype=np.uint8)
    with open(folder / "test", "wb") as fh:
        pickle.dump({b"data": data, b"fine_labels": list(range(40))}, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": [b"c"] * 100}, fh)
    from blox_lat.exporters._calib import CIFAR_MEAN, CIFAR_STD, calibration_inputs

    # the python release is pickles: never unpickled without the explicit opt-in
    with pytest.raises(ex.ExportError, match="allow_pickle=yes"):
        calibration_inputs(str(folder), 4, 2)
    with pytest.raises(ex.ExportError, match="allow_pickle=yes"):
        ex.export(MODELS[0], "onnx-int8", store=ex.ArtifactStore(tmp_path / "s0"), options={"calibration": str(folder)})
    batches = calibration_inputs(str(folder), 4, 2, allow_pickle=True)
    assert len(batches) == 4 and batches[0].shape == (2, 3, 32, 32)
    first = (data.reshape(-1, 3, 32, 32).astype(np.float32) / 255 - CIFAR_MEAN) / CIFAR_STD
    assert any(np.allclose(batches[0][0], img) for img in first)
    art = ex.export(MODELS[0], "onnx-int8", store=ex.ArtifactStore(tmp_path / "s"),
                    options={"calibration": str(folder), "calibration_samples": "4", "allow_pickle": "yes"})
    assert dict(art.key.options)["calibration"] == f"cifar100:{folder.resolve()}"
    # the binary release needs no opt-in and gives the same images
    binary = tmp_path / "cifar-100-binary"
    binary.mkdir()
    labels = np.arange(40, dtype=np.uint8)[:, None]
    (binary / "test.bin").write_bytes(np.hstack([labels // 5, labels, data]).astype(np.uint8).tobytes())
    same = calibration_inputs(str(binary), 4, 2)
    assert all(np.array_equal(a, b) for a, b in zip(same, batches))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "test").write_bytes(b"not a pickle")
    (tmp_path / "bad" / "meta").write_bytes(b"not a pickle")
    with pytest.raises(ex.ExportError, match="not a CIFAR-100"):
        calibration_inputs(str(tmp_path / "bad"), 1, 1, allow_pickle=True)


def test_verification_failure_is_an_error(tmp_path, monkeypatch):
    from blox_lat.exporters import _compose

    real = _compose.torch_reference
    monkeypatch.setattr(_compose, "torch_reference", lambda arch: (lambda x: real(arch)(x) + 1.0))
    s = ex.ArtifactStore(tmp_path)
    with pytest.raises(ex.VerificationError, match="relative max error"):
        ex.export(MODELS[0], "onnx", store=s)
    assert s.manifest() == [] and not list((tmp_path / "objects").glob("*/*"))


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_failed_background_write_is_an_error_and_publishes_nothing(tmp_path, monkeypatch, fmt):
    """The artifact is written on a helper thread while it is verified: a failed write (disk full)
    still fails the export, and nothing reaches the store."""
    import pathlib

    real = pathlib.Path.write_bytes

    def full_disk(self, data):
        if self.name.startswith("model"):
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", full_disk)
    s = ex.ArtifactStore(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        ex.export(MODELS[0], fmt, store=s)
    assert s.manifest() == [] and not list((tmp_path / "objects").glob("*/*"))


def test_store_reexport_is_noop_and_manifest(store):
    art = ex.export(MODELS[0], "onnx", store=store)
    mtime = art.path.stat().st_mtime_ns
    again = ex.export(MODELS[0], "onnx", store=store)
    assert again.path == art.path and again.sha256 == art.sha256 and art.path.stat().st_mtime_ns == mtime
    entries = [e for e in store.manifest() if e["digest"] == art.key.digest()]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["model_hash"] == MODELS[0].hash and entry["sha256"] == art.sha256 and entry["bytes"] == art.bytes
    assert entry["format"] == "onnx" and entry["toolchain"]["onnx"] and entry["schema"] == 1
    assert store.verify(art)
    lines = (store.root / "manifest.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["digest"] == art.key.digest() for line in lines) == 1


def test_truncated_artifact_is_not_served(tmp_path):
    s = ex.ArtifactStore(tmp_path)
    art = ex.export(MODELS[0], "onnx", store=s, verify=False)
    art.path.write_bytes(art.path.read_bytes()[:100])
    assert s.get(art.key) is None
    fresh = ex.export(MODELS[0], "onnx", store=s, verify=False)
    assert fresh.bytes == art.bytes and s.verify(fresh)


def test_eviction_is_lru_and_size_bounded(tmp_path):
    import os

    s = ex.ArtifactStore(tmp_path)
    arts = [ex.export(a, "onnx", store=s, verify=False) for a in MODELS]
    os.utime(s._record_path(arts[0].key.digest()), (1, 1))  # oldest use
    os.utime(s._record_path(arts[1].key.digest()), (2, 2))
    limit = arts[2].bytes + arts[1].bytes
    removed = s.evict(limit)
    assert [r.key for r in removed] == [arts[0].key]
    assert s.get(arts[0].key) is None and s.get(arts[1].key) is not None
    assert s.total_bytes() <= limit
    assert {e["digest"] for e in s.manifest()} == {arts[1].key.digest(), arts[2].key.digest()}
    bounded = ex.ArtifactStore(tmp_path, max_bytes=arts[2].bytes + 1)
    ex.export(MODELS[0], "onnx", store=bounded, verify=False)
    assert bounded.total_bytes() <= arts[2].bytes + 1 + 1_000_000
    assert len(list(bounded.artifacts())) == 1


def test_stream_in_order_with_failures(store):
    names = [a.hash for a in MODELS]
    out = list(ex.stream_artifacts(MODELS, "onnx", store=store, lookahead=2))
    assert [a.model_hash for a in out] == names and all(isinstance(a, ex.Artifact) for a in out)
    with pytest.raises(ex.ExportError):
        ex.stream_artifacts(MODELS, "nope", store=store)
    with pytest.raises(ex.ExportError, match="lookahead"):
        ex.stream_artifacts(MODELS, "onnx", store=store, lookahead=0)


def test_stream_is_bounded_and_stops_on_close(tmp_path, monkeypatch):
    import threading

    from blox_lat.exporters import _stream

    started = []
    gate = threading.Event()
    real = _stream._export_one

    def slow(index, *args):
        started.append(index)
        gate.wait(5)
        return real(index, *args)

    monkeypatch.setattr(_stream, "_export_one", slow)
    archs = sp.select("0:12")
    gen = ex.stream_artifacts(archs, "onnx", store=ex.ArtifactStore(tmp_path), lookahead=3, verify=False)
    gate.set()
    first = next(gen)
    assert first.model_hash == archs[0].hash
    assert len(started) <= 1 + 3  # consumed one, at most `lookahead` submitted ahead
    gen.close()
    n = len(started)
    assert n <= 5
    assert len(started) == n  # nothing more starts after close


def test_stream_reports_failures_and_goes_on(tmp_path, monkeypatch):
    from blox_lat.exporters import _compose

    real = _compose.onnx_bytes

    def broken(arch, *args, **kw):
        if arch.index == 1:
            raise ex.ExportError("simulated failure")
        return real(arch, *args, **kw)

    monkeypatch.setattr(_compose, "onnx_bytes", broken)
    out = list(ex.stream_artifacts(MODELS, "onnx", store=ex.ArtifactStore(tmp_path), verify=False))
    assert isinstance(out[1], ex.ExportFailure) and out[1].reason == "simulated failure"
    assert out[1].model_index == 1 and out[1].format == "onnx"
    assert isinstance(out[0], ex.Artifact) and isinstance(out[2], ex.Artifact)


@pytest.mark.parametrize("piece", ["stem", "cell/0/0", "cell/1/20", "cell/2/44", "reduction/0", "reduction/2", "head"])
def test_emitted_piece_equals_torch_export_of_the_piece(piece):
    """The direct emitter writes the operators and weights torch.onnx.export writes."""
    import onnx
    import onnxruntime as ort

    from blox_lat.exporters import _compose

    graphs = []
    for make in (_compose._export_piece, _compose._export_piece_torch):
        g = onnx.GraphProto()
        g.ParseFromString(make(piece, "x", "y", 1, 17))
        graphs.append(g)
    emitted, torch_made = graphs
    assert sorted(n.op_type for n in emitted.node) == sorted(n.op_type for n in torch_made.node)
    assert sum(np.prod(i.dims) for i in emitted.initializer) == sum(np.prod(i.dims) for i in torch_made.initializer)
    c, h, w = _compose._stage_shape(piece)
    x = np.random.default_rng(0).standard_normal((1, c, h, w)).astype(np.float32)
    outs = []
    for g in graphs:
        from onnx import TensorProto, helper

        model = helper.make_model(
            helper.make_graph(g.node, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], g.initializer),
            opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"x": x})[0])
    assert np.max(np.abs(outs[0] - outs[1])) <= 1e-5 * max(1.0, float(np.max(np.abs(outs[1]))))


def test_piece_modules_hold_exactly_the_seeded_models_state():
    """Every parameter and buffer of a cached piece module equals the same piece inside a model
    built directly, so the fast exporters export (and verify against) the model's own weights."""
    import torch

    from blox_lat.exporters import _compose, _weights

    for arch in sp.sample(6, seed=21):
        model = _weights.seeded_model(arch)
        parts = {"stem": model.stem, "head": model.classifier}
        for stage, block in enumerate(arch.blocks):
            parts[f"cell/{stage}/{block}"] = model.stages[stage][0]
            parts[f"reduction/{stage}"] = model.stages[stage][1]
        for name, direct in parts.items():
            want = direct.state_dict()
            got = _compose.piece_module(name).state_dict()
            if name == "head":
                got = {k.removeprefix("classifier."): v for k, v in got.items()}
            assert list(got) == list(want), name
            for key in want:
                assert torch.equal(got[key], want[key]), (name, key)


def test_a_piece_exported_under_other_tensor_names_uses_those_names():
    """The piece cache keys on the tensor names too: the bytes name them, so a piece asked for
    with other names (the predictor's standalone pieces) must not get the composer's copy."""
    import onnx

    from blox_lat.exporters import onnx_piece

    names = []
    for src, dst in (("a_in", "a_out"), ("b_in", "b_out")):
        graph = onnx.GraphProto()
        graph.ParseFromString(onnx_piece("stem", src, dst, 1, 17, None))
        produced = {o for n in graph.node for o in n.output}
        consumed = {i for n in graph.node for i in n.input}
        names.append((src in consumed, dst in produced))
    assert names == [(True, True), (True, True)]
