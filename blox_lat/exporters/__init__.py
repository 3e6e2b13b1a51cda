"""Exporters: each Blox model in the format its device runs, in a content-addressed store.

Formats (:func:`list_formats`): ``torchscript`` (desktop GPU, batch 256), ``onnx`` (fp32) and
``onnx-int8`` (QDQ, per-channel) for CPUs, ``dlc`` (Qualcomm SNPE, 8-bit, HTP-prepared for
sm8350). :func:`export` makes one verified :class:`Artifact`; :func:`stream_artifacts` exports
ahead of a consumer. Weights are fresh and deterministic per model (see ``_weights``).
torch, onnx and onnxruntime are imported only when an export runs.
"""

from blox_lat.exporters._compose import _onnx_piece as onnx_piece
from blox_lat.exporters._errors import ExportError, SnpeNotFoundError, SnpeToolError, VerificationError
from blox_lat.exporters._export import check_packages, check_toolchain, export
from blox_lat.exporters._format import ExportFormat, ExportJob, ExportOption
from blox_lat.exporters._formats import get_format, list_formats, register_format, unregister_format
from blox_lat.exporters._snpe import _FIX as SNPE_FIX
from blox_lat.exporters._snpe import BIN_SUBDIR as SNPE_HOST_BIN_SUBDIR
from blox_lat.exporters._snpe import _sdk_version as snpe_sdk_version
from blox_lat.exporters._snpe import _tool_env as snpe_tool_env
from blox_lat.exporters._store import ArtifactStore
from blox_lat.exporters._stream import stream_artifacts
from blox_lat.exporters._types import Artifact, ArtifactKey, ExportFailure

__all__ = [
    "SNPE_FIX",
    "SNPE_HOST_BIN_SUBDIR",
    "Artifact",
    "ArtifactKey",
    "ArtifactStore",
    "ExportError",
    "ExportFailure",
    "ExportFormat",
    "ExportJob",
    "ExportOption",
    "SnpeNotFoundError",
    "SnpeToolError",
    "VerificationError",
    "check_packages",
    "check_toolchain",
    "export",
    "get_format",
    "list_formats",
    "onnx_piece",
    "register_format",
    "stream_artifacts",
    "snpe_sdk_version",
    "snpe_tool_env",
    "unregister_format",
]
