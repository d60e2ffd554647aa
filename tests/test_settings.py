"""Settings are read once, from the environment and an optional file, and fail by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, MailboxAction, Security, load_settings


def test_defaults_keep_everything_under_the_data_directory(tmp_path: Path) -> None:
    s = load_settings({"CCM_DATA_DIR": str(tmp_path)})
    assert s.db_url == f"sqlite:///{tmp_path / 'ccm.db'}"
    assert s.archive_path == tmp_path / "archive"
    assert s.service_address == "ccm@unog.ch"
    assert s.poll_interval == 60
    assert s.imap_security is Security.ssl and s.mailbox_action is MailboxAction.move


def test_a_database_url_and_archive_dir_override_the_data_directory(tmp_path: Path) -> None:
    s = load_settings(
        {
            "CCM_DATA_DIR": str(tmp_path),
            "CCM_DATABASE_URL": "postgresql+psycopg://h/db",
            "CCM_ARCHIVE_DIR": str(tmp_path / "elsewhere"),
        }
    )
    assert s.db_url == "postgresql+psycopg://h/db"
    assert s.archive_path == tmp_path / "elsewhere"


def test_a_password_file_wins_over_the_plain_variable(tmp_path: Path) -> None:
    secret = tmp_path / "imap_password"
    secret.write_text("from-the-file\n")
    s = load_settings({"CCM_IMAP_PASSWORD": "plain", "CCM_IMAP_PASSWORD_FILE": str(secret)})
    assert s.imap_password.get_secret_value() == "from-the-file"
    assert "from-the-file" not in repr(s)


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ccm.env"
    config.write_text(
        "# the secretariat's settings\nCCM_IMAP_HOST=imap.example.org\nCCM_IMAP_PORT=143\n"
    )
    s = load_settings({"CCM_CONFIG_FILE": str(config), "CCM_IMAP_PORT": "993"})
    assert (s.imap_host, s.imap_port) == ("imap.example.org", 993)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CCM_IMAP_PORT": "abc"}, "CCM_IMAP_PORT: Input should be a valid integer"),
        (
            {"CCM_SMTP_SECURITY": "tls"},
            "CCM_SMTP_SECURITY: Input should be 'ssl', 'starttls' or 'none'",
        ),
        ({"CCM_BROKER_URL": "amqp://x"}, "CCM_BROKER_URL: must be a redis:// URL"),
        (
            {"CCM_SMTP_PASSWORD_FILE": "/nonexistent"},
            "CCM_SMTP_PASSWORD_FILE: cannot read /nonexistent",
        ),
        ({"CCM_POLL_INTERVALL": "5"}, "CCM_POLL_INTERVALL: unknown setting"),
    ],
)
def test_a_bad_value_names_its_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_malformed_config_file_line_is_reported_with_its_number(tmp_path: Path) -> None:
    config = tmp_path / "ccm.env"
    config.write_text("CCM_IMAP_HOST=x\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"ccm.env:2: expected NAME=value"):
        load_settings({"CCM_CONFIG_FILE": str(config)})
