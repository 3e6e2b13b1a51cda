"""Qualcomm SNPE wrapper: ONNX -> DLC -> 8-bit DLC -> HTP-prepared DLC (Snapdragon 888 = sm8350).

The SDK is found from ``SNPE_ROOT`` (tools in ``$SNPE_ROOT/bin/x86_64-linux-clang``) or, when that
is unset, from PATH, and checked up front: a missing tool raises :class:`SnpeNotFoundError`
naming it and the fix. Tools run with argument lists and an explicit environment dict (no
shell); a failing tool raises :class:`SnpeToolError` carrying the tail of its output.

Steps (flags as documented by Qualcomm for SNPE 1.x/2.x):

1. ``snpe-onnx-to-dlc --input_network model.onnx --output_path model.dlc``
2. ``snpe-dlc-quant --input_dlc model.dlc --input_list inputs.txt --output_dlc model_q.dlc``
   (``snpe-dlc-quantize`` with the same flags on older SDKs); the list names float32 raw files,
   one input each, in SNPE's NHWC layout.
3. ``snpe-dlc-graph-prepare --input_dlc model_q.dlc --output_dlc model_htp.dlc --htp_socs sm8350``

Verified here against stand-in executables (tests/fakesnpe) only; the real SDK is unverified.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from blox_lat.exporters._errors import SnpeNotFoundError, SnpeToolError

BIN_SUBDIR = Path("bin") / "x86_64-linux-clang"
LIB_SUBDIR = Path("lib") / "x86_64-linux-clang"
CONVERTER = "snpe-onnx-to-dlc"
QUANTIZERS = ("snpe-dlc-quant", "snpe-dlc-quantize")
PREPARE = "snpe-dlc-graph-prepare"
TOOL_TIMEOUT_S = 1800
_SDK_PREFIXES = ("SNPE_", "QNN_", "QAIRT_")
_FIX = (
    "install the Qualcomm SNPE/QAIRT SDK and set SNPE_ROOT to its root (the folder holding "
    "bin/x86_64-linux-clang), or put its bin folder on PATH (source $SNPE_ROOT/bin/envsetup.sh)"
)
_VERSION_RE = re.compile(r"^\s*version\s*:\s*['\"]?([0-9][0-9A-Za-z.\-_]*)['\"]?\s*$", re.MULTILINE)
_DIR_VERSION_RE = re.compile(r"(\d+\.\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class SnpeSdk:
    """Where the SNPE tools are and the environment to run them with."""

    root: Path | None
    converter: Path
    quantizer: Path
    prepare: Path
    version: str
    env: tuple[tuple[str, str], ...]

    def environ(self) -> dict[str, str]:
        return dict(self.env)


def find_sdk(environ: dict[str, str] | None = None) -> SnpeSdk:
    """Locate and check the SDK (``SNPE_ROOT`` first, then PATH); errors name the missing tool."""
    environ = dict(os.environ if environ is None else environ)
    root_text = environ.get("SNPE_ROOT", "").strip()
    if root_text:
        root: Path | None = Path(root_text).expanduser()
        if not root.is_dir():
            raise SnpeNotFoundError(f"SNPE_ROOT={root_text!r} is not a folder; {_FIX}")
        search = str(root / BIN_SUBDIR)
        where = f"$SNPE_ROOT/{BIN_SUBDIR}"
    else:
        root = None
        search = environ.get("PATH", "")
        where = "PATH (SNPE_ROOT is not set)"

    def tool(name: str) -> Path | None:
        found = shutil.which(name, path=search)
        return Path(found) if found else None

    converter = tool(CONVERTER)
    if converter is None:
        raise SnpeNotFoundError(f"SNPE tool {CONVERTER} not found in {where}; {_FIX}")
    quantizer = next((p for p in map(tool, QUANTIZERS) if p is not None), None)
    if quantizer is None:
        raise SnpeNotFoundError(f"SNPE tool {QUANTIZERS[0]} (or {QUANTIZERS[1]}) not found in {where}; {_FIX}")
    prepare = tool(PREPARE)
    if prepare is None:
        raise SnpeNotFoundError(f"SNPE tool {PREPARE} not found in {where}; {_FIX}")
    if root is None:
        root = converter.parent.parent.parent if converter.parent.name == BIN_SUBDIR.name else None
    env = _tool_env(environ, root, converter.parent)
    return SnpeSdk(root, converter, quantizer, prepare, _sdk_version(root), tuple(sorted(env.items())))


def _tool_env(environ: dict[str, str], root: Path | None, bin_dir: Path) -> dict[str, str]:
    """The explicit environment the tools run with (only what they need)."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PYTHONHOME")
    env = {k: environ[k] for k in keep if k in environ}
    env.update({k: v for k, v in environ.items() if k.startswith(_SDK_PREFIXES)})  # the SDK's own settings
    env["PATH"] = os.pathsep.join([str(bin_dir), environ.get("PATH", "/usr/bin:/bin")])
    if root is not None:
        env["SNPE_ROOT"] = str(root)
        libs = [str(root / LIB_SUBDIR)] + ([environ["LD_LIBRARY_PATH"]] if environ.get("LD_LIBRARY_PATH") else [])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        py = [str(root / "lib" / "python")] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(py)
    return env


def _sdk_version(root: Path | None) -> str:
    """From ``$SNPE_ROOT/sdk.yaml`` (``version: X``), else the root folder's name, else unknown."""
    if root is None:
        return "unknown"
    meta = root / "sdk.yaml"
    if meta.is_file():
        match = _VERSION_RE.search(meta.read_text(errors="replace"))
        if match:
            return match.group(1)
    match = _DIR_VERSION_RE.search(root.name)
    return match.group(1) if match else "unknown"


def run_tool(sdk: SnpeSdk, exe: Path, args: Sequence[str], cwd: Path, expect: Path) -> str:
    """Run one tool (argument list, explicit env); returns its output, raises on any failure."""
    cmd = [str(exe), *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=sdk.environ(), capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SnpeToolError(f"{exe.name} did not finish within {TOOL_TIMEOUT_S} s; check the SDK install") from exc
    except OSError as exc:
        raise SnpeToolError(f"cannot run {exe}: {exc.strerror}; check it is an executable SNPE tool") from exc
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-5:]) or "(no output)"
        raise SnpeToolError(f"{exe.name} failed with exit status {proc.returncode}: {tail}")
    if not expect.is_file() or expect.stat().st_size == 0:
        raise SnpeToolError(f"{exe.name} exited 0 but wrote no {expect.name}; output: {output.strip()[-300:]}")
    return output


def write_input_list(calibration: Sequence[np.ndarray], folder: Path) -> Path:
    """One float32 NHWC raw file per calibration image and the input list naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    count = 0
    for batch in calibration:
        for image in batch:
            raw = folder / f"calib_{count:05d}.raw"
            np.ascontiguousarray(np.transpose(image, (1, 2, 0)), dtype=np.float32).tofile(raw)
            lines.append(str(raw))
            count += 1
    listing = folder / "input_list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def export_dlc(onnx_path: Path, out: Path, calibration: Sequence[np.ndarray], htp_socs: str = "sm8350",
               sdk: SnpeSdk | None = None) -> dict:
    """fp32 ONNX -> quantised, HTP-prepared DLC at ``out``; returns what ran (for the record)."""
    if not re.fullmatch(r"[a-z0-9_,]+", htp_socs):
        raise SnpeToolError(f"htp_socs must look like sm8350 (comma-separated SoC names), got {htp_socs!r}")
    sdk = sdk or find_sdk()
    work = out.parent
    fp32_dlc, quant_dlc = work / "model_fp32.dlc", work / "model_quant.dlc"
    listing = write_input_list(calibration, work / "calib")
    run_tool(sdk, sdk.converter, ["--input_network", str(onnx_path), "--output_path", str(fp32_dlc)], work, fp32_dlc)
    run_tool(sdk, sdk.quantizer, ["--input_dlc", str(fp32_dlc), "--input_list", str(listing),
                                  "--output_dlc", str(quant_dlc)], work, quant_dlc)
    run_tool(sdk, sdk.prepare, ["--input_dlc", str(quant_dlc), "--output_dlc", str(out), "--htp_socs", htp_socs],
             work, out)
    return {"snpe_version": sdk.version, "quantizer": sdk.quantizer.name, "htp_socs": htp_socs,
            "calibration_images": sum(len(b) for b in calibration), "device_verified": False}
