"""The `cloudsync` command itself: `--version`, `--help`, `python -m cloudsync`, the console
script's entry point, one-line usage errors, and `serve` with and without the server extra."""

from __future__ import annotations

import configparser
import importlib
import re
import signal
from pathlib import Path

import pytest
import requests

import cloudsync

from .conftest import ROOT, cli_env, run_cli

COMMANDS = ("serve", "watch", "find", "load")


def test_version_prints_the_package_version():
    """`cloudsync --version` prints `cloudsync <__version__>` and exits 0."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"cloudsync {cloudsync.__version__} ")


def test_help_lists_every_command():
    """`python -m cloudsync --help` names every command."""
    result = run_cli("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command):
    """`cloudsync COMMAND --help` prints that command's usage and exits 0."""
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: cloudsync {command}")


def test_an_unknown_command_is_one_line_and_exit_2():
    """An unknown command is one error line on stderr, exit status 2, nothing on stdout."""
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("cloudsync: error: ") and "frobnicate" in result.stderr


def test_an_unknown_option_is_one_line_and_exit_2():
    """An unknown option of a command is one error line naming it and the command's help."""
    result = run_cli("find", "db", "{}", "--frobnicate")
    assert result.returncode == 2
    assert result.stderr == ("cloudsync find: error: unrecognized arguments: --frobnicate "
                             "(see 'cloudsync find --help')\n")


def test_a_missing_argument_is_one_line_and_exit_2():
    """A command without its required arguments is one error line, exit status 2."""
    result = run_cli("find", "db")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "SELECTOR" in result.stderr


def test_the_console_script_entry_point_is_main():
    """setup.cfg's `cloudsync` console script names a callable: `cloudsync.cli.main`."""
    config = configparser.ConfigParser()
    config.read(Path(ROOT) / "setup.cfg")
    target = config["options.entry_points"]["console_scripts"].strip()
    name, _, spec = target.partition("=")
    module, _, attribute = spec.strip().partition(":")
    assert name.strip() == "cloudsync"
    assert getattr(importlib.import_module(module), attribute) is cloudsync.cli.main


def test_serve_without_the_server_extra_says_how_to_install_it(tmp_path):
    """Without aiohttp, `cloudsync serve` exits 2 with one line naming the extra to install."""
    fake = tmp_path / "aiohttp"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'aiohttp'\")\n")
    env = cli_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    result = run_cli("serve", "--memory", "--port", "0", env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "pip install 'cloudsync-couchdb[server]'" in result.stderr


def test_serve_runs_the_server_until_sigterm(cli_process):
    """`python -m cloudsync serve` listens, answers, and exits 0 on SIGTERM."""
    pytest.importorskip("aiohttp")
    server = cli_process("serve", "--memory", "--port", "0")
    server.wait_for(lambda p: bool(p.stdout))
    url = server.stdout[0].split()[-1]
    assert requests.get(url, timeout=10).json()["couchdb"] == "Welcome"
    server.proc.send_signal(signal.SIGTERM)
    assert server.finish() == 0
