"""From a profile's ``connection`` table to an open-able :class:`Transport`.

Connection keys (TOML ``[devices.NAME.connection]``, or ``--connect KEY=VALUE`` on the CLI):

- ``ssh``: ``host`` (required), ``port`` (22), ``user``, ``key`` (private key path),
  ``known_hosts`` (default ``~/.ssh/known_hosts``), ``trust_new_host`` (false: an unknown host
  key is refused; true: it is accepted once and saved), ``python`` and ``workdir``.
- ``adb``: ``serial`` (``host:port`` for TCP, a USB serial, or absent for the only USB device),
  ``key`` (default ``~/.android/adbkey``, created 0600 on first use), ``python`` (for the
  onnxruntime/torchscript runner on boards with Python), ``workdir``, ``snpe_root``.
- ``local``: ``workdir`` only.

``workdir`` is where artifacts and the runner go on the device (default ``/tmp/blox-lat`` on
SSH hosts, ``/data/local/tmp/blox-lat`` on phones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blox_lat.devices._options import check_port
from blox_lat.devices._profiles import DeviceProfile, ProfileError
from blox_lat.devices._transport import Transport

__all__ = ["CONNECTION_KEYS", "connection_settings", "open_transport", "parse_connect_options"]

CONNECTION_KEYS = {
    "ssh": {"host", "port", "user", "key", "known_hosts", "trust_new_host", "python", "workdir",
            "connect_timeout_s"},
    "adb": {"serial", "key", "python", "workdir", "snpe_root", "connect_timeout_s", "auth_timeout_s"},
    "local": {"workdir", "python"},
}
DEFAULT_WORKDIR = {"ssh": "/tmp/blox-lat", "adb": "/data/local/tmp/blox-lat", "local": "/tmp/blox-lat"}
_BOOL = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def parse_connect_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["host=gpu-box", "port=2222"]`` -> ``{"host": "gpu-box", "port": "2222"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"--connect {item!r}: write KEY=VALUE, e.g. --connect host=gpu-box")
        out[key.strip()] = value
    return out


def connection_settings(profile: DeviceProfile, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The profile's connection table with ``overrides`` applied, checked and typed."""
    settings = {**dict(profile.connection), **dict(overrides or {})}
    allowed = CONNECTION_KEYS[profile.transport]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ProfileError(
            f"device {profile.name!r}: unknown connection key(s) {', '.join(unknown)} for the "
            f"{profile.transport} transport; allowed: {', '.join(sorted(allowed))}"
        )
    if "port" in settings:
        try:
            settings["port"] = check_port(settings["port"])
        except ValueError as exc:
            raise ProfileError(f"device {profile.name!r}: {exc}") from None
    for key in ("connect_timeout_s", "auth_timeout_s"):
        if key in settings:
            try:
                settings[key] = float(settings[key])
            except (TypeError, ValueError):
                raise ProfileError(f"device {profile.name!r}: connection {key} must be a number of seconds, "
                                   f"got {settings[key]!r}") from None
    if "trust_new_host" in settings and isinstance(settings["trust_new_host"], str):
        flag = _BOOL.get(settings["trust_new_host"].lower())
        if flag is None:
            raise ProfileError(f"device {profile.name!r}: trust_new_host must be true or false")
        settings["trust_new_host"] = flag
    settings.setdefault("workdir", DEFAULT_WORKDIR[profile.transport])
    settings.setdefault("python", "python3")
    if profile.transport == "ssh" and not settings.get("host"):
        raise ProfileError(
            f"device {profile.name!r} needs an SSH host: pass --connect host=NAME (and user=, key=) "
            f"or set [devices.{profile.name}.connection] host = \"...\" in a device file"
        )
    return settings


def open_transport(profile: DeviceProfile, overrides: Mapping[str, Any] | None = None) -> Transport:
    """A (not yet connected) transport for ``profile``; connection errors come on ``connect()``."""
    s = connection_settings(profile, overrides)
    if profile.transport == "ssh":
        from blox_lat.devices._ssh import SshTransport

        return SshTransport(
            host=s["host"], port=s.get("port", 22), user=s.get("user"), key_path=s.get("key"),
            known_hosts=s.get("known_hosts"), trust_new_host=bool(s.get("trust_new_host", False)),
            connect_timeout_s=s.get("connect_timeout_s", 10.0),
        )
    if profile.transport == "adb":
        from blox_lat.devices._adb import AdbTransport

        return AdbTransport(
            s.get("serial"), key_path=s.get("key"), connect_timeout_s=s.get("connect_timeout_s", 10.0),
            auth_timeout_s=s.get("auth_timeout_s", 30.0),
        )
    from blox_lat.devices._local import LocalTransport

    return LocalTransport()
