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
@json_option("Print one JSON object per profile (NDJSON).")
def list_(device_files: tuple[str, ...], as_json: bool) -> None:
    """All known device profiles."""
    from blox_lat.devices import load_profiles

    profiles = load_profiles(device_files).profiles()
    if as_json:
        emit_ndjson(p.describe() for p in profiles)
        return
    rows = [{"name": p.name, "transport": p.transport, "runtime": p.runtime, "format": p.format,
             "batch": p.batch, "precision": p.precision, "source": p.source} for p in profiles]
    emit_table(rows, ["name", "transport", "runtime", "format", "batch", "precision", "source"])


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
def check(path: str) -> None:
    """Validate a device TOML file and list the profiles it defines."""
    from blox_lat.devices import load_profiles

    registry = load_profiles([path], config=False)
    names = [p.name for p in registry.profiles() if p.source == path]
    click.echo(f"{path}: {len(names)} profile(s) OK: {', '.join(names) or '(none)'}")
