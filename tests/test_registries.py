"""Format and runtime registries: a new format or runtime is one module that registers itself.

The toy plugin below is that one module: a ``toy`` export format (a JSON file per model) and a
``toy-sleep`` runtime that runs it. It is written to a folder and imported from there, in this
process and (through ``sitecustomize``) in the measurement worker, so nothing else in blox-lat
names it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
import zipfile

import pytest

from blox_lat import exporters as ex
from blox_lat import harness as hn

PLUGIN = '''
"""A toy format and runtime, registered by register() (one module, one place)."""
import json
import time

from blox_lat import exporters as ex
from blox_lat import harness as hn


def _produce(job):
    job.out.write_text(json.dumps({"model": job.arch.hash, "sleep_us": int(job.options["sleep_us"])}))
    return {"verified": job.verify, "toy": True}


def _check_sleep(value):
    return None if value.isdigit() else f"sleep_us must be a whole number, got {value!r}"


def _load(path, options, batch, input_size):
    spec = json.loads(open(path).read())
    seconds = spec["sleep_us"] * 1e-6 * float(options.get("scale", 1))

    def run_once():
        time.sleep(seconds)

    return run_once, {"runtime": "toy-sleep", "model": spec["model"]}


FORMAT = ex.ExportFormat("toy", ".toy.json", "a JSON file per model (test only)", 1,
                         (ex.ExportOption("sleep_us", "200", "simulated latency", check=_check_sleep),),
                         produce=_produce, toolchain_check=lambda: {"toy-tool": "1.0"})
RUNTIME = hn.RuntimeSpec("toy-sleep", ("toy",), {"scale": 1}, "sleeps as long as the artifact says", load=_load)


def register():
    ex.register_format(FORMAT)
    hn.register_runtime(RUNTIME)
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The plugin module, registered; unregistered afterwards."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "blox_toy.py").write_text(PLUGIN)
    (folder / "sitecustomize.py").write_text("import blox_toy\nblox_toy.register()\n")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("blox_toy")
    module.register()
    yield types.SimpleNamespace(module=module, folder=folder)
    ex.unregister_format("toy")
    hn.unregister_runtime("toy-sleep")
    sys.modules.pop("blox_toy", None)


def test_builtin_formats_and_runtimes_are_registered():
    assert [f.name for f in ex.list_formats()] == ["torchscript", "onnx", "onnx-int8", "dlc"]
    assert hn.list_runtimes() == ["onnxruntime", "snpe", "torchscript"]
    assert [hn.get_runtime(n).local for n in hn.list_runtimes()] == [True, False, True]
    formats = {f.name for f in ex.list_formats()}
    for name in hn.list_runtimes():
        assert set(hn.get_runtime(name).formats) <= formats


def test_runtimes_agree_with_the_device_profile_rules():
    """Profiles are checked in ``devices`` (below the harness), so its rules must match."""
    from blox_lat.devices._options import RUNTIME_OPTIONS
    from blox_lat.devices._profiles import RUNTIME_FORMATS

    assert sorted(RUNTIME_FORMATS) == sorted(RUNTIME_OPTIONS) == hn.list_runtimes()
    for name in hn.list_runtimes():
        spec = hn.get_runtime(name)
        assert RUNTIME_FORMATS[name] == spec.formats
        assert set(spec.options) <= set(RUNTIME_OPTIONS[name])


def test_toy_format_exports_through_the_public_api(toy, tmp_path):
    assert "toy" in [f.name for f in ex.list_formats()]
    ex.check_toolchain("toy")
    store = ex.ArtifactStore(tmp_path / "store")
    art = ex.export(0, "toy", store=store, options={"sleep_us": "300"})
    assert art.format == "toy" and art.path.name.endswith(".toy.json") and art.path.is_file()
    assert dict(art.key.toolchain)["toy-tool"] == "1.0"
    assert dict(art.key.options) == {"sleep_us": "300"}
    assert art.verification == {"verified": True, "toy": True}
    assert ex.export(0, "toy", store=store, options={"sleep_us": "300"}).path == art.path  # stored once
    with pytest.raises(ex.ExportError, match="sleep_us must be a whole number"):
        ex.export(0, "toy", store=store, options={"sleep_us": "soon"})
    stream = list(ex.stream_artifacts([1, 2], "toy", store=store))
    assert [a.model_hash for a in stream] == [ex.export(i, "toy", store=store).model_hash for i in (1, 2)]


def test_toy_runtime_times_the_toy_artifact(toy, tmp_path):
    art = ex.export(0, "toy", store=ex.ArtifactStore(tmp_path / "store"), options={"sleep_us": "500"})
    spec = hn.get_runtime("toy-sleep")
    run_once, facts = spec.load(str(art.path), dict(spec.options), 1, 32)
    raw = hn.time_callable(run_once, groups=3, runs_per_group=4, warmup_min_runs=2, warmup_min_s=0.0)
    assert len(raw.samples_ns) == 12 and min(raw.samples_ns) >= 500_000
    assert facts == {"runtime": "toy-sleep", "model": art.model_hash}


def test_toy_runtime_runs_in_the_measurement_worker(toy, tmp_path):
    """The worker process registers the plugin itself (sitecustomize) and times the artifact."""
    art = ex.export(0, "toy", store=ex.ArtifactStore(tmp_path / "store"), options={"sleep_us": "500"})
    profile = types.SimpleNamespace(name="toy", runtime="toy-sleep", options={}, batch=1, input_size=32)
    protocol = hn.TimingProtocol(groups=3, runs_per_group=4, warmup_min_runs=2, warmup_min_s=0.0)
    path = os.pathsep.join([str(toy.folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with hn.LocalWorkerRunner(env={**os.environ, "PYTHONPATH": path}, timeout_s=120) as runner:
        raw = runner.measure(art, profile, protocol)
    assert len(raw.samples_ns) == 12 and min(raw.samples_ns) >= 500_000
    assert raw.facts["runtime"] == "toy-sleep" and raw.facts["model"] == art.model_hash


def test_taken_names_are_refused(toy):
    with pytest.raises(ex.ExportError, match="'onnx' is already registered"):
        ex.register_format(ex.get_format("onnx"))
    with pytest.raises(ex.ExportError, match="'toy' is already registered"):
        ex.register_format(toy.module.FORMAT)
    with pytest.raises(hn.RuntimeUnavailableError, match="'onnxruntime' is already registered"):
        hn.register_runtime(hn.get_runtime("onnxruntime"))
    with pytest.raises(hn.RuntimeUnavailableError, match="'toy-sleep' is already registered"):
        hn.register_runtime(toy.module.RUNTIME)
    assert ex.get_format("toy") is toy.module.FORMAT and hn.get_runtime("toy-sleep") is toy.module.RUNTIME


def test_bad_registrations_are_refused():
    with pytest.raises(ex.ExportError, match="takes an ExportFormat"):
        ex.register_format("onnx")
    with pytest.raises(ex.ExportError, match="format name 'a b'"):
        ex.register_format(ex.ExportFormat("a b", ".x", "", 1))
    with pytest.raises(hn.RuntimeUnavailableError, match="takes a RuntimeSpec"):
        hn.register_runtime({"name": "x"})
    with pytest.raises(hn.RuntimeUnavailableError, match="runtime name ''"):
        hn.register_runtime(hn.RuntimeSpec("", (), {}, ""))


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ex.ExportError, match="unknown export format 'tflite'; choose one of: torchscript, onnx"):
        ex.get_format("tflite")
    with pytest.raises(ex.ExportError, match="unknown export format"):
        ex.unregister_format("tflite")
    with pytest.raises(hn.RuntimeUnavailableError, match="unknown runtime 'tflite': choose one of onnxruntime, snpe"):
        hn.get_runtime("tflite")
    with pytest.raises(hn.RuntimeUnavailableError, match="unknown runtime"):
        hn.unregister_runtime("tflite")
    assert "toy" not in [f.name for f in ex.list_formats()] and "toy-sleep" not in hn.list_runtimes()


def test_the_runner_bundle_ships_every_runtime_module():
    from blox_lat.harness._bundle import runner_bundle

    names = set(zipfile.ZipFile(runner_bundle().path).namelist())
    assert {"blox_lat/harness/_runtimes.py", "blox_lat/harness/_runtime.py",
            "blox_lat/harness/_runtime_onnxruntime.py", "blox_lat/harness/_runtime_torchscript.py",
            "blox_lat/harness/_runtime_snpe.py"} <= names
