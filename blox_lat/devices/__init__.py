"""Devices: named profiles (where and how a model is timed) and transports (how to reach it).

Profiles: :func:`list_devices`, :func:`get_device`, :func:`load_profiles` (built-ins
``cpu``, ``cpu-int8``, ``cpu-torchscript``, ``sd888``, ``gtx1080ti`` plus user TOML files).
Transports: :class:`Transport` with :class:`LocalTransport`, :class:`SshTransport` and
:class:`AdbTransport` (paramiko / adb-shell imported only when a connection is opened), opened
from a profile by :func:`open_transport`; device facts (:func:`read_device_facts`), thermal
waits and the parser of SNPE's per-layer CSV (:func:`parse_diagview_csv`). The host this
process runs on, sampled over a short window (:func:`sample_host` -> :class:`HostState`): is it
quiet enough to time models on, and who else uses its cores; the same for an SSH host
(:func:`sample_remote_host`).
"""

from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._adb_devices import AdbUnavailable, list_adb_devices
from blox_lat.devices._connect import connection_settings, open_transport, parse_connect_options
from blox_lat.devices._facts import read_device_facts, read_temperatures, wait_until_cool
from blox_lat.devices._host import (
    BUSY_CORE_SHARE,
    NOT_CHECKED,
    BusyProcess,
    HostState,
    format_cpus,
    sample_device_hosts,
    sample_host,
    sample_remote_host,
)
from blox_lat.devices._local import LocalTransport
from blox_lat.devices._profiles import (
    DEFAULT_DEVICE,
    DeviceProfile,
    ProfileError,
    ProfileRegistry,
    UnknownProfileError,
    config_dir,
    get_device,
    list_devices,
    load_profiles,
)
from blox_lat.devices._snpe_parse import DiagviewLayer, SnpeOutputError, parse_diagview_csv, parse_diagview_layers
from blox_lat.devices._ssh import SshTransport
from blox_lat.devices._transport import (
    AuthenticationError,
    CommandFailedError,
    CommandResult,
    CommandTimeoutError,
    ConnectionLostError,
    HostKeyError,
    RetryPolicy,
    Transport,
    TransportError,
    with_reconnect,
)

__all__ = [
    "BUSY_CORE_SHARE",
    "DEFAULT_DEVICE",
    "NOT_CHECKED",
    "AdbTransport",
    "AdbUnavailable",
    "AuthenticationError",
    "BusyProcess",
    "CommandFailedError",
    "CommandResult",
    "CommandTimeoutError",
    "ConnectionLostError",
    "DeviceProfile",
    "HostKeyError",
    "HostState",
    "LocalTransport",
    "ProfileError",
    "ProfileRegistry",
    "RetryPolicy",
    "SnpeOutputError",
    "DiagviewLayer",
    "SshTransport",
    "Transport",
    "TransportError",
    "UnknownProfileError",
    "config_dir",
    "connection_settings",
    "format_cpus",
    "get_device",
    "list_adb_devices",
    "list_devices",
    "load_profiles",
    "open_transport",
    "parse_connect_options",
    "parse_diagview_csv",
    "parse_diagview_layers",
    "read_device_facts",
    "read_temperatures",
    "sample_device_hosts",
    "sample_host",
    "sample_remote_host",
    "wait_until_cool",
    "with_reconnect",
]
