"""The documentation keeps up with the command line (after sqlite-utils' test_docs.py).

Every command and every option has help text, and the README names every command and every
option: a new flag without a line in the README fails here, not in a user's first hour.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from attribution.cli import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
COMMANDS = sorted(cli.commands)


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def _long_flag(option: click.Option) -> str:
    flags = [f for f in option.opts + option.secondary_opts if f.startswith("--")]
    return flags[0] if flags else option.opts[0]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name):
    command = cli.commands[name]
    assert command.get_short_help_str(limit=200).strip(), name
    assert (command.help or "").strip(), name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name):
    missing = [_long_flag(o) for o in _options(cli.commands[name]) if not (o.help or "").strip()]
    assert not missing, f"attribution {name}: options without help: {missing}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name):
    assert re.search(rf"attribution {re.escape(name)}\b", README), f"`attribution {name}`"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_the_readme(name):
    missing = [
        flag for flag in (_long_flag(o) for o in _options(cli.commands[name]))
        if flag not in ("--help",) and not re.search(rf"{re.escape(flag)}\b", README)
    ]
    assert not missing, f"attribution {name}: options the README does not name: {missing}"


def test_the_group_options_have_help():
    assert all((o.help or "").strip() for o in _options(cli))
