"""Shared fixtures."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
import redis
from hypothesis import HealthCheck, settings

from tests import servers
from tests.app import service_env

# Property-based tests (hypothesis). "ci", loaded by default, keeps each test to seconds;
# `pytest --hypothesis-profile=fuzz` (or HYPOTHESIS_PROFILE=fuzz) explores far longer.
# No deadline: a slow example is not a bug here, and timing must not make a test flaky.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=5_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Lines a test wants in the run's summary (figures, not pass/fail): the `report` fixture.
_REPORT = pytest.StashKey[list[str]]()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: print ``line`` at the end of the pytest output, captured or not."""
    return request.config.stash.setdefault(_REPORT, []).append


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


# =============================================================================
# Real servers on loopback (tests/servers.py). One of each per test session,
# started on first use on a free 127.0.0.1 port, stopped by PID at the end.
# A server that cannot start skips its tests on a developer's machine and
# fails them on CI (CI=true), where scripts/test has installed everything.
# =============================================================================

S = TypeVar("S")


def _unavailable(what: str, exc: Exception) -> NoReturn:
    message = f"{what} unavailable: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _enter(
    stack: contextlib.ExitStack, what: str, server: contextlib.AbstractContextManager[S]
) -> S:
    try:
        return stack.enter_context(server)
    except servers.ServerError as exc:
        _unavailable(what, exc)


@pytest.fixture(scope="session")
def redis_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.RedisServer]:
    """Debian's redis-server, empty, persisting nothing; ``.restart()`` wipes it."""
    with contextlib.ExitStack() as stack:
        yield _enter(stack, "redis", servers.redis_server(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Dovecot]:
    """Dovecot IMAP: alice/alicepw, bob/bobpw, separator '/'; ``.stop()``, ``.start()``.

    A test that stops it must start it again (``try/finally``); stopping twice is fine.
    """
    with contextlib.ExitStack() as stack:
        server = servers.dovecot_server(tmp_path_factory.mktemp("dovecot"))
        yield _enter(stack, "dovecot", server)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Postgres]:
    """A throwaway PostgreSQL cluster (or the server of $CCM_TEST_POSTGRES_URL)."""
    with contextlib.ExitStack() as stack:
        server = servers.postgres_server(tmp_path_factory.mktemp("postgres"))
        yield _enter(stack, "postgres", server)


@pytest.fixture(scope="session")
def smtp() -> Iterator[servers.SmtpSink]:
    """An SMTP sink shared by the session: ``smtp.clear()`` before counting mails."""
    with contextlib.ExitStack() as stack:
        yield _enter(stack, "smtp", servers.smtp_sink())


@pytest.fixture
def pg_url(postgres: servers.Postgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty PostgreSQL database for this test alone."""
    stem = "".join(c if c.isascii() and c.isalnum() else "_" for c in request.node.name.lower())
    name = postgres.create_database(f"t_{stem[:40]}_{secrets.token_hex(4)}")
    yield postgres.url(name)
    # FORCE: a test's leftover connection pool must not keep the database alive.
    postgres.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a new SQLite file for this test alone."""
    return f"sqlite:///{tmp_path / 'ccm.db'}"


# ============================================================ end of server fixtures


# ==================================================================== the service itself


@pytest.fixture
def account(dovecot: servers.Dovecot) -> tuple[str, str]:
    """A fresh mailbox account (user, password) for this test alone."""
    user = f"ccm{secrets.token_hex(4)}"
    dovecot.add_user(user, "secret-pw")
    return user, "secret-pw"


@pytest.fixture
def broker(redis_srv: servers.RedisServer) -> str:
    """The Redis broker, emptied: no task of an earlier test can reach this one's worker."""
    client = redis.Redis.from_url(redis_srv.url)
    client.flushall()
    client.close()
    return redis_srv.url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on the embedded default and on the production database."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def make_env(
    tmp_path: Path,
    dovecot: servers.Dovecot,
    account: tuple[str, str],
    broker: str,
    smtp: servers.SmtpSink,
) -> Callable[..., dict[str, str]]:
    """``make_env(db_url, CCM_X=...)``: the environment of a service on this test's servers."""
    smtp.clear()
    user, password = account

    def make(db: str, **extra: str) -> dict[str, str]:
        return service_env(
            data_dir=tmp_path / "data",
            db_url=db,
            broker_url=broker,
            imap=dovecot,
            imap_user=user,
            imap_password=password,
            smtp_port=smtp.port,
            **extra,
        )

    return make
