"""Device profiles: a named, frozen description of *where and how* a model is timed.

A profile = transport (``local``/``ssh``/``adb``) + runtime + artifact format + batch + input
size + precision + runtime options (+ connection settings for remote transports). Built-in
profiles are written below in the same TOML form users write; user profiles come from TOML
files in the config directory (``$BLOX_LAT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/blox-lat``,
else ``~/.config/blox-lat``: ``devices.toml`` and ``devices/*.toml``) and from files passed
explicitly (``--device-file``). Nothing is read at import time; a :class:`ProfileRegistry` is
built by :func:`load_profiles` when asked.

User TOML::

    [devices.my-laptop]
    description = "my laptop, 4 onnxruntime threads"
    transport = "local"          # local | ssh | adb
    runtime = "onnxruntime"      # onnxruntime | torchscript | snpe
    format = "onnx"              # onnx | onnx-int8 | torchscript | dlc
    batch = 1
    input_size = 32
    precision = "fp32"
    [devices.my-laptop.options]  # runtime options, see blox_lat.harness.get_runtime(...).options
    threads = 4
    [devices.my-laptop.connection]  # remote transports only: host, user, port, serial...

Options and the connection port are checked when a profile is built (``devices/_options.py``),
so ``blox-lat devices validate`` refuses what a campaign would fail on later.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a core dependency there)
    import tomli as tomllib

from blox_lat.devices._options import RUNTIME_FORMATS, check_options, check_port
from blox_lat.errors import BloxLatError

__all__ = [
    "BUILTIN_PROFILES_TOML",
    "DEFAULT_DEVICE",
    "DeviceProfile",
    "ProfileError",
    "ProfileRegistry",
    "UnknownProfileError",
    "config_dir",
    "get_device",
    "list_devices",
    "load_profiles",
]

DEFAULT_DEVICE = "cpu"

TRANSPORTS = ("local", "ssh", "adb")
PRECISIONS = ("fp32", "fp16", "int8")

BUILTIN_PROFILES_TOML = """
[devices.cpu]
description = "this host's CPU, onnxruntime fp32, 1 thread, batch 1 (the default device)"
transport = "local"
runtime = "onnxruntime"
format = "onnx"
batch = 1
precision = "fp32"
options = { threads = 1 }

[devices.cpu-int8]
description = "this host's CPU, onnxruntime with a static int8 QDQ model, 1 thread, batch 1"
transport = "local"
runtime = "onnxruntime"
format = "onnx-int8"
batch = 1
precision = "int8"
options = { threads = 1 }

[devices.cpu-torchscript]
description = "this host's CPU, frozen TorchScript + optimize_for_inference, 1 thread, batch 1"
transport = "local"
runtime = "torchscript"
format = "torchscript"
batch = 1
precision = "fp32"
options = { threads = 1, device = "cpu" }

[devices.sd888]
description = "the paper's phone: Snapdragon 888 Hexagon 780 DSP, SNPE int8 DLC, batch 1"
transport = "adb"
runtime = "snpe"
format = "dlc"
batch = 1
precision = "int8"
options = { runtime = "dsp", perf_profile = "burst", htp_soc = "sm8350" }

[devices.gtx1080ti]
description = "the paper's desktop GPU: GTX 1080 Ti, TorchScript on CUDA, batch 256"
transport = "ssh"
runtime = "torchscript"
format = "torchscript"
batch = 256
precision = "fp32"
options = { device = "cuda" }
"""

_ALLOWED_KEYS = {
    "description", "transport", "runtime", "format", "batch", "input_size", "precision",
    "options", "connection",
}


class ProfileError(BloxLatError, ValueError):
    """A device profile (built-in or TOML) is malformed; the message names the file and key."""


class UnknownProfileError(BloxLatError, LookupError):
    """No profile has this name."""


@dataclass(frozen=True)
class DeviceProfile:
    """One device setting. Two measurements are comparable iff their profiles are equal."""

    name: str
    transport: str
    runtime: str
    format: str
    batch: int = 1
    input_size: int = 32
    precision: str = "fp32"
    options: Mapping[str, Any] = field(default_factory=dict)
    connection: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "builtin"

    def __post_init__(self) -> None:
        where = f"device {self.name!r} ({self.source})"
        if not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ProfileError(f"{where}: a device name uses letters, digits, '-', '_' or '.'")
        if self.transport not in TRANSPORTS:
            raise ProfileError(f"{where}: transport {self.transport!r} unknown; use one of {', '.join(TRANSPORTS)}")
        if self.runtime not in RUNTIME_FORMATS:
            raise ProfileError(
                f"{where}: runtime {self.runtime!r} unknown; use one of {', '.join(RUNTIME_FORMATS)}"
            )
        if self.format not in RUNTIME_FORMATS[self.runtime]:
            raise ProfileError(
                f"{where}: runtime {self.runtime!r} cannot run format {self.format!r}; "
                f"use format {' or '.join(repr(f) for f in RUNTIME_FORMATS[self.runtime])}"
            )
        for key in ("batch", "input_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ProfileError(f"{where}: {key} must be a positive integer, got {value!r}")
        if self.precision not in PRECISIONS:
            raise ProfileError(f"{where}: precision {self.precision!r} unknown; use one of {', '.join(PRECISIONS)}")
        for key in ("options", "connection"):
            value = getattr(self, key)
            if not isinstance(value, Mapping):
                raise ProfileError(f"{where}: {key} must be a table, got {type(value).__name__}")
            object.__setattr__(self, key, MappingProxyType(dict(value)))
        problem = check_options(self.runtime, self.options)
        if problem:
            raise ProfileError(f"{where}: {problem}")
        if "port" in self.connection:
            try:
                check_port(self.connection["port"])
            except ValueError as exc:
                raise ProfileError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The journal form (``profile`` field): what the measurement depends on."""
        return {
            "name": self.name,
            "transport": self.transport,
            "runtime": self.runtime,
            "format": self.format,
            "batch": self.batch,
            "input_size": self.input_size,
            "precision": self.precision,
            "options": dict(self.options),
        }

    def describe(self) -> dict[str, Any]:
        """Everything, for ``blox-lat devices show``."""
        return {**self.to_dict(), "connection": dict(self.connection),
                "description": self.description, "source": self.source}

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any], source: str) -> DeviceProfile:
        if not isinstance(table, Mapping):
            raise ProfileError(f"{source}: [devices.{name}] must be a table")
        unknown = sorted(set(table) - _ALLOWED_KEYS)
        if unknown:
            raise ProfileError(
                f"{source}: [devices.{name}] has unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(_ALLOWED_KEYS))}"
            )
        missing = [k for k in ("transport", "runtime", "format") if k not in table]
        if missing:
            raise ProfileError(f"{source}: [devices.{name}] lacks {', '.join(missing)}")
        return cls(name=name, source=source, **table)


def _parse_toml(text: str, source: str) -> list[DeviceProfile]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc})") from None
    extra = sorted(set(data) - {"devices"})
    if extra:
        raise ProfileError(f"{source}: only [devices.NAME] tables are allowed, found {', '.join(extra)}")
    devices = data.get("devices", {})
    if not isinstance(devices, dict):
        raise ProfileError(f"{source}: 'devices' must be a table of [devices.NAME] tables")
    return [DeviceProfile.from_table(name, table, source) for name, table in devices.items()]


class ProfileRegistry:
    """Built-in profiles plus user files; names are unique (a user file cannot shadow one)."""

    def __init__(self, profiles: Iterable[DeviceProfile] = ()) -> None:
        self._profiles: dict[str, DeviceProfile] = {}
        for profile in profiles:
            self._add(profile)

    def _add(self, profile: DeviceProfile) -> None:
        if profile.name in self._profiles:
            other = self._profiles[profile.name]
            raise ProfileError(
                f"device {profile.name!r} in {profile.source} is already defined in {other.source}: "
                "rename one of them"
            )
        self._profiles[profile.name] = profile

    def add_file(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read device file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ProfileError(
                f"device file {path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start}): TOML files are UTF-8; re-save it as UTF-8"
            ) from None
        for profile in _parse_toml(text, str(path)):
            self._add(profile)

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def profiles(self) -> list[DeviceProfile]:
        return [self._profiles[n] for n in self.names()]

    def get(self, name: str) -> DeviceProfile:
        try:
            return self._profiles[name]
        except KeyError:
            raise UnknownProfileError(
                f"unknown device {name!r}: known devices are {', '.join(self.names())} "
                "(add your own in a TOML file, see 'blox-lat devices --help')"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __len__(self) -> int:
        return len(self._profiles)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where user device files live (read when :func:`load_profiles` is called, not at import)."""
    env = os.environ if environ is None else environ
    if env.get("BLOX_LAT_CONFIG_DIR"):
        return Path(env["BLOX_LAT_CONFIG_DIR"])
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "blox-lat"
    return Path.home() / ".config" / "blox-lat"


def _config_files(directory: Path) -> list[Path]:
    files = []
    if (directory / "devices.toml").is_file():
        files.append(directory / "devices.toml")
    if (directory / "devices").is_dir():
        files.extend(sorted((directory / "devices").glob("*.toml")))
    return files


def load_profiles(
    device_files: Iterable[str | os.PathLike[str]] = (),
    *,
    config: str | os.PathLike[str] | None | bool = None,
) -> ProfileRegistry:
    """Built-ins + the config directory's files + ``device_files``.

    ``config=None`` uses :func:`config_dir`; a path uses that directory; ``False`` skips it.
    """
    registry = ProfileRegistry(_parse_toml(BUILTIN_PROFILES_TOML, "builtin"))
    if config is not False:
        directory = config_dir() if config is None or config is True else Path(config)
        for path in _config_files(directory):
            registry.add_file(path)
    for path in device_files:
        registry.add_file(path)
    return registry


def list_devices(device_files: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """Names of all known device profiles."""
    return load_profiles(device_files).names()


def get_device(name: str = DEFAULT_DEVICE, device_files: Iterable[str | os.PathLike[str]] = ()) -> DeviceProfile:
    """The profile called ``name`` (built-in, config directory or ``device_files``)."""
    return load_profiles(device_files).get(name)
