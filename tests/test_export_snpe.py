"""The DLC wrapper's contract, against stand-in SNPE tools (tests/fakesnpe); the real SDK is unverified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blox_lat import exporters as ex
from blox_lat.exporters import _snpe

FAKE_ROOT = Path(__file__).resolve().parent / "fakesnpe"
FAKE_BIN = FAKE_ROOT / "bin" / "x86_64-linux-clang"


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("SNPE_FAKE_LOG", str(path))
    monkeypatch.delenv("SNPE_FAKE_FAIL", raising=False)
    return path


def _calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dlc_export_with_snpe_root(tmp_path, monkeypatch, log):
    monkeypatch.setenv("SNPE_ROOT", str(FAKE_ROOT))
    art = ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path / "s"))
    assert art.path.suffix == ".dlc"
    body = art.path.read_bytes()
    assert body.startswith(b"FAKEDLC1 int8") and b"calibrated on 16 inputs" in body and b"htp cache for sm8350" in body
    assert dict(art.key.toolchain)["snpe"] == "2.99.0.fake"
    assert art.verification["onnx_max_rel_err"] <= 1e-4 and art.verification["device_verified"] is False
    calls = _calls(log)
    assert [c["tool"] for c in calls] == ["snpe-onnx-to-dlc", "snpe-dlc-quant", "snpe-dlc-graph-prepare"]
    conv, quant, prep = (c["argv"] for c in calls)
    assert conv[0] == "--input_network" and conv[1].endswith(".onnx") and conv[2] == "--output_path"
    assert quant[0::2] == ["--input_dlc", "--input_list", "--output_dlc"] and quant[1] == conv[3]
    assert prep[0::2] == ["--input_dlc", "--output_dlc", "--htp_socs"] and prep[1] == quant[5] and prep[5] == "sm8350"
    assert all(c["snpe_root"] == str(FAKE_ROOT) for c in calls)
    # the same request again is served from the store without running any tool
    ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path / "s"))
    assert len(_calls(log)) == 3


def test_dlc_export_with_tools_on_path(tmp_path, monkeypatch, log):
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("PATH", f"{FAKE_BIN}:{__import__('os').environ['PATH']}")
    sdk = _snpe.find_sdk()
    assert sdk.converter.parent == FAKE_BIN and sdk.root == FAKE_ROOT
    art = ex.export(1, "dlc", store=ex.ArtifactStore(tmp_path), options={"htp_socs": "sm8450"})
    assert art.path.read_bytes().endswith(b"htp cache for sm8450\n")


def test_older_sdk_quantize_tool_is_used(tmp_path, monkeypatch, log):
    root = tmp_path / "snpe-1.68.0.3932"
    bin_dir = root / "bin" / "x86_64-linux-clang"
    bin_dir.mkdir(parents=True)
    for tool in ("snpe-onnx-to-dlc", "snpe-dlc-graph-prepare"):
        (bin_dir / tool).symlink_to(FAKE_BIN / tool)
    launcher = (FAKE_BIN / "snpe-dlc-quant").read_text().replace('main("snpe-dlc-quant")', 'main("snpe-dlc-quantize")')
    launcher = launcher.replace("parents[2]", "parents[0]") .replace(
        "sys.path.insert(0, str(Path(__file__).resolve().parents[0]))", f"sys.path.insert(0, {str(FAKE_ROOT)!r})")
    (bin_dir / "snpe-dlc-quantize").write_text(launcher)
    (bin_dir / "snpe-dlc-quantize").chmod(0o755)
    monkeypatch.setenv("SNPE_ROOT", str(root))
    sdk = _snpe.find_sdk()
    assert sdk.quantizer.name == "snpe-dlc-quantize" and sdk.version == "1.68.0.3932"
    ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path / "s"))
    assert [c["tool"] for c in _calls(log)][1] == "snpe-dlc-quantize"


def test_missing_sdk_names_the_tool_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(ex.SnpeNotFoundError, match="snpe-onnx-to-dlc.*SNPE_ROOT"):
        ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path))
    monkeypatch.setenv("SNPE_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(ex.SnpeNotFoundError, match="SNPE_ROOT=.*not a folder"):
        _snpe.find_sdk()
    partial = tmp_path / "partial" / "bin" / "x86_64-linux-clang"
    partial.mkdir(parents=True)
    (partial / "snpe-onnx-to-dlc").symlink_to(FAKE_BIN / "snpe-onnx-to-dlc")
    (partial / "snpe-dlc-quant").symlink_to(FAKE_BIN / "snpe-dlc-quant")
    monkeypatch.setenv("SNPE_ROOT", str(tmp_path / "partial"))
    with pytest.raises(ex.SnpeNotFoundError, match="snpe-dlc-graph-prepare"):
        _snpe.find_sdk()
    assert not list((tmp_path / "objects").glob("*/*"))


@pytest.mark.parametrize("tool", ["snpe-onnx-to-dlc", "snpe-dlc-quant", "snpe-dlc-graph-prepare"])
def test_failing_tool_is_an_error_with_its_output(tmp_path, monkeypatch, log, tool):
    monkeypatch.setenv("SNPE_ROOT", str(FAKE_ROOT))
    monkeypatch.setenv("SNPE_FAKE_FAIL", tool)
    store = ex.ArtifactStore(tmp_path)
    with pytest.raises(ex.SnpeToolError, match=f"{tool} failed with exit status 3.*simulated failure"):
        ex.export(0, "dlc", store=store)
    assert store.manifest() == [] and not list((tmp_path / "objects").glob("*/*"))


def test_bad_soc_is_rejected_by_the_tool(tmp_path, monkeypatch, log):
    monkeypatch.setenv("SNPE_ROOT", str(FAKE_ROOT))
    with pytest.raises(ex.SnpeToolError, match="unsupported SoC"):
        ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path), options={"htp_socs": "sm9999"})
    with pytest.raises(ex.SnpeToolError, match="htp_socs must look like"):
        ex.export(0, "dlc", store=ex.ArtifactStore(tmp_path), options={"htp_socs": "sm8350; rm -rf /"})


def test_tool_env_is_explicit(monkeypatch):
    env = _snpe._tool_env({"PATH": "/usr/bin", "SECRET_TOKEN": "x", "HOME": "/root"}, FAKE_ROOT, FAKE_BIN)
    env = _snpe._tool_env({"PATH": "/usr/bin", "SECRET_TOKEN": "x", "HOME": "/root", "SNPE_LOG": "1"}, FAKE_ROOT, FAKE_BIN)
    assert "SECRET_TOKEN" not in env and env["SNPE_LOG"] == "1" and env["SNPE_ROOT"] == str(FAKE_ROOT)
    assert env["PATH"].split(":")[0] == str(FAKE_BIN) and env["LD_LIBRARY_PATH"].endswith("lib/x86_64-linux-clang")
