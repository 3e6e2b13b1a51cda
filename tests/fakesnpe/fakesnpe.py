"""Stand-ins for the Qualcomm SNPE tools, checking the arguments and files the real ones need.

Installed as ``bin/x86_64-linux-clang/<tool>`` (thin launchers). Behaviour for tests:
``SNPE_FAKE_FAIL=<tool name>`` makes that tool fail (exit 3, message on stderr);
``SNPE_FAKE_LOG=<file>`` appends one JSON line per call (tool, argv, SNPE_ROOT, cwd).
Flags follow Qualcomm's documentation: snpe-onnx-to-dlc --input_network/-i --output_path/-o;
snpe-dlc-quant(ize) --input_dlc --input_list --output_dlc; snpe-dlc-graph-prepare --input_dlc
--output_dlc --htp_socs.
"""

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

MAGIC = b"FAKEDLC1"
RAW_BYTES = 3 * 32 * 32 * 4
LAYER_RE = re.compile(rb"(?:stem|head|cell_[0-2]_[0-9]{1,2}|reduction_[0-2])/[A-Za-z]+_[0-9]+")
SOCS = {"sm8350", "sm8450", "sm8550", "sm8650", "sm7325", "qcs6490"}


def fail(tool, message, code=2):
    sys.stderr.write(f"{tool}: ERROR: {message}\n")
    sys.exit(code)


def main(tool):
    if os.environ.get("SNPE_FAKE_LOG"):
        with open(os.environ["SNPE_FAKE_LOG"], "a") as fh:
            fh.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "snpe_root": os.environ.get("SNPE_ROOT"),
                                 "cwd": os.getcwd()}) + "\n")
    parser = argparse.ArgumentParser(prog=tool)
    if tool == "snpe-onnx-to-dlc":
        parser.add_argument("--input_network", "-i", required=True)
        parser.add_argument("--output_path", "-o")
    else:
        parser.add_argument("--input_dlc", required=True)
        parser.add_argument("--output_dlc")
    if tool in ("snpe-dlc-quant", "snpe-dlc-quantize"):
        parser.add_argument("--input_list", required=True)
    if tool == "snpe-dlc-graph-prepare":
        parser.add_argument("--htp_socs", required=True)
    args = parser.parse_args()
    if os.environ.get("SNPE_FAKE_FAIL") == tool:
        fail(tool, "simulated failure requested by SNPE_FAKE_FAIL", 3)

    if tool == "snpe-onnx-to-dlc":
        src = Path(args.input_network)
        if not src.is_file() or src.suffix != ".onnx":
            fail(tool, f"input network {src} is not an .onnx file")
        data = src.read_bytes()
        if not data or data[0] != 0x08:  # ModelProto starts with ir_version (field 1, varint)
            fail(tool, f"{src} is not an ONNX model")
        out = Path(args.output_path or src.with_suffix(".dlc"))
        # the layer names the real converter keeps from the ONNX node names (blox-lat's piece prefixes)
        names = list(dict.fromkeys(m.decode() for m in LAYER_RE.findall(data)))
        out.write_bytes(MAGIC + b" fp32 " + hashlib.sha256(data).hexdigest().encode() + b"\n"
                        + ("layers " + ",".join(names) + "\n").encode())
        print(f"INFO: Conversion completed successfully: {out}")
        return
    src = Path(args.input_dlc)
    if not src.is_file() or not src.read_bytes().startswith(MAGIC):
        fail(tool, f"{src} is not a DLC")
    body = src.read_bytes()
    if tool in ("snpe-dlc-quant", "snpe-dlc-quantize"):
        listing = Path(args.input_list)
        if not listing.is_file():
            fail(tool, f"input list {listing} not found")
        lines = [line.strip() for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            fail(tool, "input list is empty")
        for line in lines:
            raw = Path(line.split(":=")[-1])
            if not raw.is_file():
                fail(tool, f"raw input {raw} not found")
            if raw.stat().st_size != RAW_BYTES:
                fail(tool, f"raw input {raw} has {raw.stat().st_size} bytes, expected {RAW_BYTES}")
        out = Path(args.output_dlc or src.with_name(src.stem + "_quantized.dlc"))
        out.write_bytes(body.replace(b" fp32 ", b" int8 ") + f"calibrated on {len(lines)} inputs\n".encode())
        print(f"INFO: Quantized {len(lines)} inputs; saved {out}")
        return
    socs = args.htp_socs.split(",")
    if any(s not in SOCS for s in socs):
        fail(tool, f"unsupported SoC in --htp_socs {args.htp_socs}")
    if b" int8 " not in body:
        fail(tool, "graph preparation for HTP needs a quantized DLC")
    out = Path(args.output_dlc or src)
    out.write_bytes(body + f"htp cache for {args.htp_socs}\n".encode())
    print(f"INFO: Graph prepared for {args.htp_socs}: {out}")
