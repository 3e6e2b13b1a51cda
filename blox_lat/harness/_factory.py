"""``get_runner``: the runner that drives a device profile, chosen by transport and runtime.

Local profiles get a worker subprocess; remote ones a transport to the device and the runner
their runtime names in :data:`_REMOTE_RUNNERS` (the blox-lat worker run remotely by default).
A new remote runtime with its own device tool adds one entry there. This module sits above
``_runners`` and ``_snpe_runner`` so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from blox_lat.harness._runners import (
    DEFAULT_TIMEOUT_S,
    LocalWorkerRunner,
    Runner,
    RunnerUnavailableError,
    ThermalGuard,
    TransportRunner,
)
from blox_lat.harness._timing import get_runtime

__all__ = ["get_runner"]


def _worker_runner(transport: Any, settings: dict[str, Any], timeout_s: float,
                   affinity: Sequence[int] | None) -> Runner:
    return TransportRunner(transport, workdir=settings["workdir"], python=settings["python"],
                           timeout_s=timeout_s, affinity=affinity)


def _snpe_runner(transport: Any, settings: dict[str, Any], timeout_s: float,
                 affinity: Sequence[int] | None) -> Runner:
    from blox_lat.harness._snpe_runner import SnpeRunner  # imported when a phone is measured

    return SnpeRunner(transport, workdir=settings["workdir"], snpe_root=settings.get("snpe_root"),
                      timeout_s=timeout_s)


#: remote runners by runtime name; runtimes not listed run the blox-lat worker on the device
_REMOTE_RUNNERS: dict[str, Callable[[Any, dict[str, Any], float, Sequence[int] | None], Runner]] = {
    "snpe": _snpe_runner,
}


def get_runner(profile: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S,
               affinity: Sequence[int] | None = None, connection: dict[str, Any] | None = None) -> Runner:
    """The runner for a profile: a local worker, or a transport to the device it names.

    ``connection`` overrides keys of the profile's connection table (``--connect KEY=VALUE``);
    a key the profile's transport does not take is refused (:class:`~blox_lat.devices.ProfileError`),
    on a local device too, whose worker runs with the connection's ``python`` when one is given.
    Remote profiles whose ``options`` carry ``thermal_max_c`` wait for the device to cool down
    before each model (``thermal_timeout_s``, default 300 s).
    """
    from blox_lat.devices import connection_settings, open_transport

    spec = get_runtime(profile.runtime)
    if profile.transport == "local":
        if not spec.local:
            raise RunnerUnavailableError(
                f"device {profile.name!r}: runtime {profile.runtime!r} cannot run locally; "
                "use a profile with runtime 'onnxruntime' or 'torchscript'"
            )
        connection_settings(profile, connection)  # a key the local transport does not take is refused
        python = {**dict(profile.connection), **dict(connection or {})}.get("python")
        return LocalWorkerRunner(timeout_s=timeout_s, affinity=affinity, **({"python": python} if python else {}))

    settings = connection_settings(profile, connection)
    transport = open_transport(profile, connection)
    make = _REMOTE_RUNNERS.get(profile.runtime, _worker_runner)
    runner = make(transport, settings, timeout_s, affinity)
    max_c = dict(profile.options).get("thermal_max_c")
    if max_c is not None:
        runner = ThermalGuard(runner, max_c=float(max_c),
                              timeout_s=float(dict(profile.options).get("thermal_timeout_s", 300.0)))
    return runner
