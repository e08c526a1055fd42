"""Documentation: every command's help shows an example; the README names every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from normstat.cli import app

COMMANDS = ["compute", "apply", "check", "show"]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Example:" in result.stdout
    example = result.stdout.split("Example:", 1)[1].splitlines()[0].strip()
    assert example.startswith(f"normstat {command} "), example


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_mentions_command(command: str) -> None:
    if not README.is_file():
        pytest.skip("README.md does not exist yet")
    assert f"normstat {command}" in README.read_text(encoding="utf-8")
