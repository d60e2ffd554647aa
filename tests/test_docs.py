"""The documentation keeps up with the code: every setting is in README's table and in the
example env file, every name there is a setting, and every command's --help has an example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from config.settings import ENV_PREFIX, Settings
from worker.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
# Named in the text around the table, not a field: it names the file the fields come from.
NOT_FIELDS = {"CCM_CONFIG_FILE"}


def expand(cell: str) -> tuple[set[str], list[str]]:
    """The setting names of a README table cell, and the tokens that name none.

    The table abbreviates: "`CCM_IMAP_HOST`, `_PORT`" is CCM_IMAP_PORT, "`CCM_ACK_RATE_LIMIT`,
    `_DAY`" CCM_ACK_RATE_LIMIT_DAY and "`_PASSWORD[_FILE]`" both names; a suffix is put in
    place of the last words of the name before it, or after it, whichever is a setting."""
    names: set[str] = set()
    unknown: list[str] = []
    base = ""
    for token in re.findall(r"`([A-Z_\[\]]+)`", cell):
        forms = [token.replace("[", "").replace("]", ""), re.sub(r"\[.*?\]", "", token)]
        for form in dict.fromkeys(forms):
            if form.startswith(ENV_PREFIX):
                candidates = [form]
                base = form
            else:
                words = base.split("_")
                candidates = [base + form] + [
                    "_".join(words[:-k]) + form for k in range(1, len(words) - 1)
                ]
            found = [c for c in candidates if c in SETTINGS or c in NOT_FIELDS]
            if found:
                names.add(found[0])
            else:
                unknown.append(form)
    return names, unknown


def readme_settings() -> tuple[set[str], list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    unknown: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `CCM_"):
            found, bad = expand(line.split("|")[1])
            names |= found
            unknown += bad
    return names, unknown


def test_every_setting_is_in_the_readme_table() -> None:
    documented, _ = readme_settings()
    missing = sorted(SETTINGS - documented)
    assert missing == [], f"settings missing from README's table: {missing}"


def test_the_readme_table_names_only_settings_that_exist() -> None:
    _, unknown = readme_settings()
    assert unknown == [], f"README's table names what is no setting: {unknown}"


def test_every_setting_is_in_the_example_env_file() -> None:
    """Set, shown commented out with its default, or named as set by docker-compose.yml."""
    text = (ROOT / "deploy" / "ccm.env.example").read_text()
    named = set(re.findall(r"\b(CCM_[A-Z0-9_]+)\b", text))
    missing = sorted(SETTINGS - named)
    assert missing == [], f"settings missing from deploy/ccm.env.example: {missing}"
    assert sorted(named - SETTINGS - NOT_FIELDS) == []


def commands() -> list[tuple[str, ...]]:
    import typer.main

    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(typer.main.get_command(cli), ())
    return found


COMMANDS = commands()


def test_the_commands_are_found() -> None:
    assert {("run",), ("metrics",), ("review", "resolve"), ("db", "upgrade")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_shows_an_example_in_its_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, result.output
    # The example runs the command it is the help of.
    example = result.output.split("Example:", 1)[1]
    assert "ccm-intake " + " ".join(path) in " ".join(example.split()), example


def test_the_deployment_guide_names_only_real_settings_and_commands() -> None:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    named = set(re.findall(r"\b(CCM_[A-Z0-9_]+)\b", text))
    assert sorted(named - SETTINGS) == []
    known = {" ".join(path) for path in COMMANDS}
    code = "\n".join(re.findall(r"```.*?```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
    used = re.findall(r"ccm-intake ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code)
    assert len(used) >= 5
    groups = {path[0] for path in COMMANDS}  # `ccm-intake review` names a group of commands
    for first, second in used:
        assert f"{first} {second}" in known or first in known | groups, f"{first} {second}"
