"""Devices: named profiles (where and how a model is timed) and transports (how to reach it).

Profiles: :func:`list_devices`, :func:`get_device`, :func:`load_profiles` (built-ins
``cpu``, ``cpu-int8``, ``cpu-torchscript``, ``sd888``, ``gtx1080ti`` plus user TOML files).
Transports: :class:`Transport` with :class:`LocalTransport`, :class:`SshTransport` and
:class:`AdbTransport` (paramiko / adb-shell imported only when a connection is opened).
"""

from blox_lat.devices._adb import AdbTransport
from blox_lat.devices._local import LocalTransport
from blox_lat.devices._profiles import (
    DEFAULT_DEVICE,
    DeviceProfile,
    ProfileError,
    ProfileRegistry,
    UnknownDeviceError,
    config_dir,
    get_device,
    list_devices,
    load_profiles,
)
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
    "DEFAULT_DEVICE",
    "AdbTransport",
    "AuthenticationError",
    "CommandFailedError",
    "CommandResult",
    "CommandTimeoutError",
    "ConnectionLostError",
    "DeviceProfile",
    "HostKeyError",
    "LocalTransport",
    "ProfileError",
    "ProfileRegistry",
    "RetryPolicy",
    "SshTransport",
    "Transport",
    "TransportError",
    "UnknownDeviceError",
    "config_dir",
    "get_device",
    "list_devices",
    "load_profiles",
    "with_reconnect",
]
