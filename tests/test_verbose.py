"""``blox-lat -v/-vv`` (and ``BLOX_LAT_LOG``): the library's log lines on stderr, none by default;
and shell completion, which click provides (``_BLOX_LAT_COMPLETE``)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from peers.sshd import SshServer, sshd_available

from blox_lat.cli.main import cli

CHECK_CPU = ["devices", "check", "cpu", "--window", "0.1"]


def _blox_lat() -> list[str]:
    """The installed console script, else the module (the same entry point)."""
    script = Path(sys.executable).with_name("blox-lat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "blox_lat"]


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "BLOX_LAT_LOG"} | env
    return subprocess.run(_blox_lat() + args, capture_output=True, text=True, env=full, timeout=120)


def _log_lines(stderr: str, level: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"blox-lat: {level} blox_lat.")]


@pytest.fixture(autouse=True)
def _no_log_env(monkeypatch):
    monkeypatch.delenv("BLOX_LAT_LOG", raising=False)


def test_v_shows_info_lines_from_a_real_local_command():
    r = CliRunner().invoke(cli, ["-v", *CHECK_CPU])
    assert r.exit_code == 0, r.output
    info = _log_lines(r.stderr, "INFO")
    assert any(ln.startswith("blox-lat: INFO blox_lat.harness._runners: started worker pid ") for ln in info), r.stderr
    assert not _log_lines(r.stderr, "DEBUG"), r.stderr
    assert "ok   runtime" in r.stdout  # the command's own output is untouched, on stdout


@pytest.mark.parametrize("how", [["-vv"], ["-v", "-v"], ["--verbose", "--verbose"], "env"])
def test_vv_and_the_environment_show_debug_lines(how):
    args, env = (CHECK_CPU, {"BLOX_LAT_LOG": "DEBUG"}) if how == "env" else ([*how, *CHECK_CPU], {})
    r = CliRunner().invoke(cli, args, env=env)
    assert r.exit_code == 0, r.output
    debug = _log_lines(r.stderr, "DEBUG")
    assert any(" blox_lat.harness._runners: worker pid " in ln and "stopped" in ln for ln in debug), r.stderr
    assert _log_lines(r.stderr, "INFO")


def test_no_log_lines_by_default_and_the_logger_is_left_as_it_was():
    logger = logging.getLogger("blox_lat")
    before = (list(logger.handlers), logger.level, logger.propagate)
    CliRunner().invoke(cli, ["-vv", *CHECK_CPU])  # attaches a handler for this command only
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    r = CliRunner().invoke(cli, CHECK_CPU)
    assert r.exit_code == 0, r.output
    assert "blox-lat: INFO" not in r.stderr and "blox-lat: DEBUG" not in r.stderr, r.stderr


def test_a_bad_input_error_is_still_one_line_without_v_and_last_with_it():
    r = _run(["devices", "check", "no-such-device"])
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("blox-lat: error: "), r.stderr
    rv = _run(["-vv", "devices", "check", "no-such-device"])
    assert rv.returncode == 2 and rv.stderr.splitlines()[-1] == r.stderr.strip()


def test_an_unknown_log_level_in_the_environment_is_one_line():
    r = _run(["space", "list", "0:1"], BLOX_LAT_LOG="loud")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == ["blox-lat: error: BLOX_LAT_LOG='loud' is not a log level: use debug, info, "
                                     "warning, or unset it"]


def test_v_with_the_console_script_logs_to_stderr_only():
    r = _run(["-v", *CHECK_CPU])
    assert r.returncode == 0, r.stderr
    assert _log_lines(r.stderr, "INFO") and "blox-lat: " not in r.stdout


@pytest.mark.skipif(sshd_available() is not None, reason=str(sshd_available()))
def test_vv_shows_the_ssh_transport_connect_commands_and_transfers(tmp_path):
    with SshServer(tmp_path / "sshd") as srv:
        args = ["-vv", "devices", "check", "gtx1080ti", "--connect", f"host={srv.host}",
                "--connect", f"port={srv.port}", "--connect", f"user={srv.user}",
                "--connect", f"key={srv.client_key}", "--connect", f"known_hosts={srv.known_hosts}",
                "--connect", f"python={sys.executable}", "--connect", f"workdir={tmp_path / 'w d'}"]
        r = CliRunner().invoke(cli, args)
    ssh = [ln for ln in r.stderr.splitlines() if ln.startswith("blox-lat: ") and " blox_lat.devices._ssh: " in ln]
    where = f"ssh://{srv.user}@{srv.host}:{srv.port}"
    assert f"blox-lat: INFO blox_lat.devices._ssh: connected to {where} in " in "\n".join(ssh), r.stderr
    assert any(ln.startswith("blox-lat: DEBUG") and "(262144 bytes)" in ln and "pushed" in ln for ln in ssh), ssh
    assert any(ln.startswith("blox-lat: DEBUG") and "exit 0 in " in ln and "sha256sum" in ln for ln in ssh), ssh


def test_bash_completion_script_is_printed():
    r = _run([], _BLOX_LAT_COMPLETE="bash_source")
    assert r.returncode == 0, r.stderr
    assert "_blox_lat_completion()" in r.stdout and "complete -o nosort -F _blox_lat_completion blox-lat" in r.stdout


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_scripts_are_printed(shell):
    r = _run([], _BLOX_LAT_COMPLETE=f"{shell}_source")
    assert r.returncode == 0 and "_BLOX_LAT_COMPLETE" in r.stdout, r.stderr


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("blox-lat me", "1", ["plain,measure"]),
    ("blox-lat devices ch", "2", ["plain,check"]),
])
def test_bash_completion_completes_commands(words, cword, expected):
    r = _run([], _BLOX_LAT_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == expected


def test_bash_completion_offers_verbose():
    r = _run([], _BLOX_LAT_COMPLETE="bash_complete", COMP_WORDS="blox-lat --ver", COMP_CWORD="1")
    assert r.stdout.splitlines() == ["plain,--version", "plain,--verbose"]


@pytest.mark.skipif(shutil.which("bash") is None or len(_blox_lat()) > 1, reason="no bash or no console script")
def test_the_documented_bash_line_completes_in_a_real_bash():
    driver = ('eval "$(_BLOX_LAT_COMPLETE=bash_source blox-lat)"\n'
              'COMP_WORDS=(blox-lat me); COMP_CWORD=1; _blox_lat_completion blox-lat; echo "${COMPREPLY[@]}"\n')
    env = {k: v for k, v in os.environ.items() if k != "BLOX_LAT_LOG"}
    env["PATH"] = f"{Path(_blox_lat()[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(["bash", "--norc", "-c", driver], capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.split() == ["measure"], r.stderr
