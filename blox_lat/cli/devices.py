"""``blox-lat devices``: the device profiles a campaign can use (built-in and user TOML)."""

from __future__ import annotations

import click

from blox_lat.cli._output import emit_json, emit_ndjson, emit_pairs, emit_table, json_option

_TOML_HELP = """Profiles come built in (cpu, cpu-int8, cpu-torchscript, sd888, gtx1080ti) or from
TOML files: $BLOX_LAT_CONFIG_DIR (else ~/.config/blox-lat) devices.toml and devices/*.toml,
plus every --device-file. A file holds tables like:

\b
  [devices.my-laptop]
  transport = "local"       # local | ssh | adb
  runtime = "onnxruntime"   # onnxruntime | torchscript | snpe
  format = "onnx"           # onnx | onnx-int8 | torchscript | dlc
  batch = 1
  precision = "fp32"
  options = { threads = 4 }
"""


def device_file_option(func):
    return click.option(
        "--device-file", "device_files", multiple=True, type=click.Path(dir_okay=False),
        help="A TOML file of extra device profiles (repeatable).",
    )(func)


@click.group(help="Device profiles: where and how models are timed.\n\n" + _TOML_HELP)
def devices() -> None:
    pass


@devices.command("list")
@device_file_option
@click.option("--adb/--no-adb", "with_adb", default=True, show_default=True,
              help="Also list the ADB devices this computer sees ('adb devices -l').")
@json_option("Print one JSON object per profile, then per ADB device (NDJSON, 'kind' tells which).")
def list_(device_files: tuple[str, ...], with_adb: bool, as_json: bool) -> None:
    """All known device profiles, and the ADB devices attached, with their state."""
    from blox_lat.devices import AdbUnavailable, list_adb_devices, load_profiles

    profiles = load_profiles(device_files).profiles()
    adb_devices, adb_note = [], None
    if with_adb:
        try:
            adb_devices = list_adb_devices()
        except AdbUnavailable as exc:
            adb_note = str(exc)
    if as_json:
        emit_ndjson([*({"kind": "profile", **p.describe()} for p in profiles),
                     *({"kind": "adb-device", **d.to_dict()} for d in adb_devices)])
        return
    rows = [{"name": p.name, "transport": p.transport, "runtime": p.runtime, "format": p.format,
             "batch": p.batch, "precision": p.precision, "source": p.source} for p in profiles]
    emit_table(rows, ["name", "transport", "runtime", "format", "batch", "precision", "source"])
    if with_adb:
        click.echo("")
        if adb_note:
            click.echo(f"ADB devices: unknown ({adb_note})")
        elif not adb_devices:
            click.echo("ADB devices: none attached")
        else:
            emit_table([{"adb serial": d.serial, "state": d.state,
                         "model": d.details.get("model", "")} for d in adb_devices],
                       ["adb serial", "state", "model"])


@devices.command()
@click.argument("name")
@device_file_option
@json_option()
def show(name: str, device_files: tuple[str, ...], as_json: bool) -> None:
    """One profile in full."""
    from blox_lat.devices import load_profiles

    data = load_profiles(device_files).get(name).describe()
    if as_json:
        emit_json(data)
    else:
        emit_pairs([(k, v) for k, v in data.items()])


@devices.command()
@click.argument("path", type=click.Path(dir_okay=False))
@json_option("Print the file and the profiles it defines as JSON.")
def validate(path: str, as_json: bool) -> None:
    """Validate a device TOML file and list the profiles it defines."""
    from blox_lat.devices import load_profiles

    registry = load_profiles([path], config=False)
    names = [p.name for p in registry.profiles() if p.source == path]
    if as_json:
        emit_json({"path": path, "ok": True, "profiles": names})
        return
    click.echo(f"{path}: {len(names)} profile(s) OK: {', '.join(names) or '(none)'}")


@devices.command()
@click.argument("name")
@device_file_option
@click.option("--connect", "connect", multiple=True, metavar="KEY=VALUE",
              help="Override a connection setting, e.g. host=gpu-box or serial=PHONE:5555.")
@click.option("--affinity", default=None, metavar="CPUS",
              help="Local and SSH devices: judge only these cores of the host, e.g. 1 or 0-3 (as measure "
                   "--affinity pins the worker)  [default: every core a worker there may use]")
@click.option("--window", "window_s", type=click.FloatRange(0.1, 60.0), default=1.0, show_default=True,
              metavar="SECONDS", help="Local and SSH devices: how long to watch the host's cores.")
@json_option("Print the steps and the host as JSON.")
def check(name: str, device_files: tuple[str, ...], connect: tuple[str, ...], affinity: str | None,
          window_s: float, as_json: bool) -> None:
    """Connect to device NAME and prove it can be measured, step by step.

    Steps: profile, connect (authentication and host key), file round trip through the work
    directory, runtime probe (runtime versions; for SNPE the DSP), device facts. Stops at the
    first failing step and exits with status 2.

    Then the host the device times on is watched for --window seconds (this machine for a local
    device, the remote machine for an SSH device, read over its connection): how busy the cores
    in use were and which other processes used them, load average, memory, governor, turbo,
    frequency and temperatures where readable, and a verdict, quiet or busy, with the reason
    (unknown where /proc cannot be read). An ADB device's host is 'not checked'. A busy host is
    reported, not failed (exit status 0).
    """
    from blox_lat.devices import NOT_CHECKED, HostState, load_profiles, parse_connect_options, sample_device_hosts
    from blox_lat.errors import BloxLatError
    from blox_lat.harness import check_device

    profile = load_profiles(device_files).get(name)
    cpus = _affinity(affinity, profile.transport == "local")
    connection = parse_connect_options(connect)

    def show(step) -> None:
        if not as_json:
            mark = "ok  " if step.ok else "FAIL"
            click.echo(f"{mark} {step.name:<16} {step.seconds:6.2f} s  {step.detail}")

    steps = check_device(profile, connection, on_step=show)
    failed = next((s for s in steps if not s.ok), None)
    if failed is not None and profile.transport != "local":
        host = HostState.unsampled(NOT_CHECKED, f"not sampled: the {failed.name} step failed", cpus or ())
    else:
        host = sample_device_hosts([profile], window_s, cpus, connection=connection)
    if as_json:
        emit_json({"device": name, "ok": failed is None, "steps": [s.to_dict() for s in steps],
                   "host": host.to_dict()})
    else:
        _show_host(host)
    if failed is not None:
        raise BloxLatError(f"device {name!r} failed the {failed.name} step: {failed.detail}")


def _affinity(text: str | None, local: bool) -> list[int] | None:
    """``--affinity``: CPUs (for a local device: ones this process may use, the kernel's set), or
    None for all of them."""
    if text is None:
        return None
    import os

    from blox_lat.harness import parse_cpus

    try:
        cpus = parse_cpus(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--affinity") from None
    if not local:  # the remote host's cores: the sample says which it has
        return cpus
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(cpus)
    if not set(cpus) <= available:
        raise click.BadParameter(f"choose from {','.join(map(str, sorted(available)))} (os.sched_getaffinity)",
                                 param_hint="--affinity")
    return cpus


def _show_host(host) -> None:
    """The host's verdict as a step line, then what was read (and what was not)."""
    from blox_lat.devices import format_cpus

    unread = "unreadable"
    mark = {"quiet": "ok  ", "busy": "BUSY", "not checked": "--  "}.get(host.verdict, "??  ")
    click.echo(f"{mark} {'host':<16} {host.window_s:6.2f} s  {host.verdict}: {host.reason}")
    if host.verdict == "not checked":
        return
    load = host.load_average
    pairs = [
        ("cores judged", f"{format_cpus(host.cpus)} of {host.cpu_count or '?'}"),
        ("load average", f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min) on {len(host.cpus)} "
                         f"core{'s' if len(host.cpus) != 1 else ''}" if load else unread),
        ("memory", f"{host.memory_available_kb / 2**20:.1f} GiB available of "
                   f"{host.memory_total_kb / 2**20:.1f} GiB" if host.memory_available_kb and host.memory_total_kb
         else unread),
        ("governor", ", ".join(f"cpu{c} {g}" for c, g in host.governors.items()) if host.governors else unread),
        ("frequency", ", ".join(f"cpu{c} {f / 1000:.0f} MHz" for c, f in host.frequency_khz.items())
         if host.frequency_khz else unread),
        ("turbo/boost", {True: "on", False: "off"}.get(host.turbo, unread)),
        ("temperatures", ", ".join(f"{z} {t:.0f} C" for z, t in host.temperatures_c.items())
         if host.temperatures_c else unread),
    ]
    for key, value in pairs:
        click.echo(f"     {key:<16}           {value}")
    for p in host.processes:
        allowed = format_cpus(p.cpus_allowed) if p.cpus_allowed is not None else "?"
        click.echo(f"     {'pid ' + str(p.pid):<16} {100 * p.cores:5.0f} %  cpus {allowed}  {p.cmdline or p.name}")
