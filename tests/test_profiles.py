"""Device profiles: built-ins, user TOML files, the config directory, errors, the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from blox_lat.cli.main import cli
from blox_lat.devices import (
    DeviceProfile,
    ProfileError,
    UnknownProfileError,
    config_dir,
    get_device,
    list_devices,
    load_profiles,
)

MY_TOML = """
[devices.my-laptop]
description = "four threads"
transport = "local"
runtime = "onnxruntime"
format = "onnx"
batch = 1
options = { threads = 4 }

[devices.phone-cpu]
transport = "adb"
runtime = "onnxruntime"
format = "onnx-int8"
precision = "int8"
connection = { serial = "emulator-5554" }
"""


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOX_LAT_CONFIG_DIR", str(tmp_path / "config"))


def test_builtins_are_the_issue_list():
    assert {"cpu", "cpu-int8", "cpu-torchscript", "sd888", "gtx1080ti"} <= set(list_devices())
    cpu = get_device()
    assert (cpu.name, cpu.transport, cpu.runtime, cpu.format, cpu.batch) == ("cpu", "local", "onnxruntime", "onnx", 1)
    assert get_device("cpu-int8").format == "onnx-int8"
    assert get_device("cpu-torchscript").runtime == "torchscript"
    sd = get_device("sd888")
    assert (sd.transport, sd.runtime, sd.format, sd.precision, sd.batch) == ("adb", "snpe", "dlc", "int8", 1)
    gpu = get_device("gtx1080ti")
    assert (gpu.transport, gpu.runtime, gpu.batch, gpu.options["device"]) == ("ssh", "torchscript", 256, "cuda")


def test_profile_dict_is_the_journal_form():
    d = get_device("cpu").to_dict()
    assert list(d) == ["name", "transport", "runtime", "format", "batch", "input_size", "precision", "options"]
    assert d["options"] == {"threads": 1}


def test_profiles_are_immutable():
    cpu = get_device("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cpu.batch = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        cpu.options["threads"] = 8  # type: ignore[index]


def test_device_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MY_TOML)
    registry = load_profiles([path])
    laptop = registry.get("my-laptop")
    assert laptop.options["threads"] == 4 and laptop.source == str(path)
    phone = registry.get("phone-cpu")
    assert phone.connection["serial"] == "emulator-5554" and phone.input_size == 32


def test_config_directory(tmp_path):
    directory = Path(config_dir())
    (directory / "devices").mkdir(parents=True)
    (directory / "devices" / "a.toml").write_text(MY_TOML)
    assert "my-laptop" in list_devices()
    assert get_device("phone-cpu").transport == "adb"
    assert "my-laptop" not in load_profiles(config=False)


def test_config_dir_resolution(tmp_path):
    assert config_dir({"BLOX_LAT_CONFIG_DIR": "/x"}) == Path("/x")
    assert config_dir({"XDG_CONFIG_HOME": "/y"}) == Path("/y/blox-lat")


@pytest.mark.parametrize(
    "text, match",
    [
        ('[devices.x]\ntransport="local"\nruntime="onnxruntime"\nformat="torchscript"\n', "cannot run format"),
        ('[devices.x]\ntransport="usb"\nruntime="onnxruntime"\nformat="onnx"\n', "transport 'usb' unknown"),
        ('[devices.x]\ntransport="local"\nruntime="tflite"\nformat="onnx"\n', "runtime 'tflite' unknown"),
        ('[devices.x]\ntransport="local"\nruntime="onnxruntime"\nformat="onnx"\nbatch=0\n', "positive integer"),
        ('[devices.x]\ntransport="local"\nruntime="onnxruntime"\nformat="onnx"\nthreads=4\n', "unknown key"),
        ('[devices.x]\nruntime="onnxruntime"\nformat="onnx"\n', "lacks transport"),
        ('[devices.cpu]\ntransport="local"\nruntime="onnxruntime"\nformat="onnx"\n', "already defined"),
        ('[device.x]\n', "only \\[devices.NAME\\]"),
        ("[devices.x\n", "not valid TOML"),
    ],
)
def test_bad_files_raise_typed_errors(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match):
        load_profiles([path])


def test_unknown_device_lists_known_ones():
    with pytest.raises(UnknownProfileError, match="known devices are .*cpu"):
        get_device("nope")


def test_missing_file():
    with pytest.raises(ProfileError, match="cannot read device file"):
        load_profiles(["/nonexistent/devices.toml"])


def test_bad_name():
    with pytest.raises(ProfileError, match="device name"):
        DeviceProfile(name="a b", transport="local", runtime="onnxruntime", format="onnx")


def test_cli_list_show_check(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MY_TOML)
    runner = CliRunner()
    out = runner.invoke(cli, ["devices", "list", "--device-file", str(path)])
    assert out.exit_code == 0, out.output
    assert "my-laptop" in out.output and "gtx1080ti" in out.output
    out = runner.invoke(cli, ["devices", "show", "sd888", "--json"])
    assert out.exit_code == 0 and '"runtime": "snpe"' in out.output
    out = runner.invoke(cli, ["devices", "validate", str(path)])
    assert out.exit_code == 0 and "2 profile(s) OK" in out.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[devices.x]\nruntime='x'\n")
    out = runner.invoke(cli, ["devices", "validate", str(bad)])
    assert out.exit_code == 2 and "lacks transport" in out.output
    out = runner.invoke(cli, ["devices", "show", "nope"])
    assert out.exit_code == 2 and out.output.count("\n") == 1


# -- runtime options and connection settings are checked when a file loads ------------------

_HEAD = '[devices.x]\ntransport = "{transport}"\nruntime = "{runtime}"\nformat = "{format}"\n'
_LOCAL_ORT = dict(transport="local", runtime="onnxruntime", format="onnx")
_SSH_TS = dict(transport="ssh", runtime="torchscript", format="torchscript")


@pytest.mark.parametrize(
    "head, body, match",
    [
        (_LOCAL_ORT, 'options = { threads = "lots" }', r"option threads must be an integer >= 1, got 'lots'"),
        (_LOCAL_ORT, "options = { threads = -3 }", r"option threads must be an integer >= 1, got -3"),
        (_LOCAL_ORT, "options = { threads = true }", r"option threads must be an integer >= 1, got True"),
        (_LOCAL_ORT, "options = { threads = 2.5 }", r"option threads must be an integer >= 1"),
        (_LOCAL_ORT, "options = { inter_op_threads = 0 }", r"option inter_op_threads must be an integer >= 1"),
        (_LOCAL_ORT, 'options = { graph_optimization = "max" }', r"graph_optimization 'max' unknown; use one of"),
        (_LOCAL_ORT, "options = { thread = 4 }", r"unknown option\(s\) thread for runtime onnxruntime; allowed: .*threads"),
        (_LOCAL_ORT, 'options = { affinity = "0-3" }', r"option affinity must be a list of CPU numbers"),
        (_LOCAL_ORT, "options = { affinity = [-1] }", r"option affinity must be a list of CPU numbers"),
        (_LOCAL_ORT, "options = { thermal_max_c = -5 }", r"option thermal_max_c must be a number > 0"),
        (dict(transport="local", runtime="torchscript", format="torchscript"), 'options = { device = "tpu" }',
         r"option device 'tpu' unknown; use 'cpu', 'cuda' or 'cuda:N'"),
        (dict(transport="adb", runtime="snpe", format="dlc"), 'options = { runtime = "npu" }',
         r"option runtime 'npu' unknown; use one of cpu, dsp, gpu"),
        (dict(transport="adb", runtime="snpe", format="dlc"), 'options = { perf_profile = "fast" }',
         r"option perf_profile 'fast' unknown; use one of .*burst"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = 99999', r"connection port must be an integer in 1\.\.65535, got 99999"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = 0', r"connection port must be an integer in 1\.\.65535, got 0"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = -22', r"connection port must be an integer in 1\.\.65535, got -22"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = "ssh"', r"connection port must be an integer in 1\.\.65535, got 'ssh'"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = 22.5', r"connection port must be an integer in 1\.\.65535, got 22\.5"),
        (_SSH_TS, '[devices.x.connection]\nhost = "h"\nport = true', r"connection port must be an integer in 1\.\.65535, got True"),
    ],
)
def test_bad_options_and_ports_are_refused_when_the_file_loads(tmp_path, head, body, match):
    path = tmp_path / "dev.toml"
    path.write_text(_HEAD.format(**head) + body + "\n")
    with pytest.raises(ProfileError, match=match) as info:
        load_profiles([path], config=False)
    assert str(path) in str(info.value) and "'x'" in str(info.value)  # says which file, which device


def test_good_options_load_unchanged(tmp_path):
    path = tmp_path / "dev.toml"
    path.write_text(
        _HEAD.format(**_LOCAL_ORT) + 'options = { threads = 4, inter_op_threads = 2, graph_optimization = "basic", '
        "affinity = [0, 1], thermal_max_c = 45.0, thermal_timeout_s = 300 }\n"
        '[devices.g]\ntransport = "ssh"\nruntime = "torchscript"\nformat = "torchscript"\n'
        'options = { device = "cuda:1", threads = 2 }\nconnection = { host = "h", port = 2222 }\n'
        '[devices.p]\ntransport = "adb"\nruntime = "snpe"\nformat = "dlc"\n'
        'options = { runtime = "gpu", perf_profile = "sustained_high_performance", htp_soc = "sm8450" }\n'
    )
    reg = load_profiles([path], config=False)
    assert dict(reg.get("x").options) == {"threads": 4, "inter_op_threads": 2, "graph_optimization": "basic",
                                          "affinity": [0, 1], "thermal_max_c": 45.0, "thermal_timeout_s": 300}
    assert reg.get("g").connection["port"] == 2222 and reg.get("g").options["device"] == "cuda:1"
    assert reg.get("p").options["perf_profile"] == "sustained_high_performance"
    for name in ("cpu", "cpu-int8", "cpu-torchscript", "sd888", "gtx1080ti"):  # the built-ins still load
        assert reg.get(name).options


@pytest.mark.parametrize("port", ["99999", "0", "-1", "ssh", "65536"])
def test_connect_port_override_is_range_checked(port):
    from blox_lat.devices._connect import open_transport

    with pytest.raises(ProfileError, match=r"connection port must be an integer in 1\.\.65535"):
        open_transport(get_device("gtx1080ti"), {"host": "h", "port": port})
    assert open_transport(get_device("gtx1080ti"), {"host": "h", "port": "2222"}).port == 2222


def test_non_utf8_device_file_is_a_profile_error(tmp_path):
    path = tmp_path / "dev.toml"
    path.write_bytes(_HEAD.format(**_LOCAL_ORT).encode() + b'description = "caf\xe9"\n')
    with pytest.raises(ProfileError, match=r"dev\.toml.*not UTF-8 .*byte 0xe9 at offset \d+"):
        load_profiles([path], config=False)


@pytest.mark.parametrize(
    "body, expected",
    [
        ('options = { threads = "lots" }', "option threads must be an integer >= 1, got 'lots'"),
        ("options = { threads = -3 }", "option threads must be an integer >= 1, got -3"),
        ('[devices.x.connection]\nport = 99999', "connection port must be an integer in 1..65535, got 99999"),
        (b'description = "caf\xe9"', "not UTF-8"),
    ],
)
def test_devices_validate_refuses_in_one_line(tmp_path, body, expected):
    path = tmp_path / "dev.toml"
    head = _HEAD.format(**(_SSH_TS if "connection" in str(body) else _LOCAL_ORT)).encode()
    path.write_bytes(head + (body if isinstance(body, bytes) else body.encode()) + b"\n")
    out = CliRunner().invoke(cli, ["devices", "validate", str(path)])
    assert out.exit_code == 2, out.output
    assert out.output.startswith("blox-lat: error: ") and out.output.count("\n") == 1, out.output
    assert expected in out.output and str(path) in out.output
