"""docker-compose.yml is valid for docker-compose v1 and deploys the way the README says.

`docker-compose config` both validates the file and prints it resolved. It is
read back as data with the interpreter docker-compose itself runs on (its
shebang's), which always has PyYAML: no YAML library is needed in the venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.app import wait_until

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")
APP_SERVICES = ("worker", "beat", "listener")
REDIS_PASSWORD = "r3d1sPassw0rd"
FLOWER_AUTH = "admin:fl0wer-Pw"
CCM_IMAGE_SERVICES = ("worker", "beat", "listener", "metrics")

if COMPOSE is None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("docker-compose is not installed (scripts/test installs it)", pytrace=False)
    pytest.skip("docker-compose is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the deployment files, with ccm.env made from the example."""
    d = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", d)
    shutil.copy(ROOT / "Dockerfile", d)
    (d / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "ccm.env.example", d / "deploy" / "ccm.env")
    (d / "compose.env").write_text(
        f"DB_PASSWORD=s3cr3t\nREDIS_PASSWORD={REDIS_PASSWORD}\nFLOWER_BASIC_AUTH={FLOWER_AUTH}\n"
    )
    (d / "no-db.env").write_text(f"REDIS_PASSWORD={REDIS_PASSWORD}\n")
    (d / "no-redis.env").write_text("DB_PASSWORD=s3cr3t\n")
    return d


def compose(
    project: Path, *args: str, env_file: bool | str = True
) -> subprocess.CompletedProcess[str]:
    """docker-compose on the copy, with compose.env (or the env file named, or none)."""
    assert COMPOSE is not None
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DB_PASSWORD", "REDIS_PASSWORD") and not k.startswith("COMPOSE_")
    }
    name = env_file if isinstance(env_file, str) else "compose.env"
    extra = ["--env-file", str(project / name)] if env_file else []
    return subprocess.run(
        [COMPOSE, *extra, "-f", str(project / "docker-compose.yml"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def config(project: Path) -> dict[str, Any]:
    out = compose(project, "config")
    assert out.returncode == 0, out.stderr
    assert COMPOSE is not None
    shebang = Path(COMPOSE).read_text(errors="replace").splitlines()[0]
    python = shebang[2:].split() if shebang.startswith("#!") else ["python3"]
    as_json = subprocess.run(
        [*python, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=out.stdout,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(as_json.stdout))


def test_docker_compose_accepts_the_file(project: Path) -> None:
    out = compose(project, "config", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr  # no warnings about unsupported keys either


def test_the_database_password_must_be_set(project: Path) -> None:
    out = compose(project, "config", "-q", env_file="no-db.env")
    assert out.returncode != 0
    assert "DB_PASSWORD" in out.stderr


def test_the_redis_password_must_be_set(project: Path) -> None:
    out = compose(project, "config", "-q", env_file="no-redis.env")
    assert out.returncode != 0
    assert "REDIS_PASSWORD" in out.stderr


def test_without_an_env_file_nothing_starts(project: Path) -> None:
    out = compose(project, "config", "-q", env_file=False)
    assert out.returncode != 0
    assert "_PASSWORD" in out.stderr


def test_redis_requires_the_password_the_services_log_in_with(config: dict[str, Any]) -> None:
    services = config["services"]
    command = [str(x) for x in services["redis"]["command"]]
    assert command[command.index("--requirepass") + 1] == REDIS_PASSWORD
    # The health check logs in too (redis-cli reads REDISCLI_AUTH), and checks the answer.
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD
    assert "PONG" in " ".join(services["redis"]["healthcheck"]["test"])
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["CCM_BROKER_PASSWORD"] == REDIS_PASSWORD, name
        assert "@" not in env["CCM_BROKER_URL"], name  # the URL itself holds no password
    from config.settings import load_settings

    merged = load_settings(
        {"CCM_BROKER_URL": env["CCM_BROKER_URL"], "CCM_BROKER_PASSWORD": REDIS_PASSWORD}
    )
    assert merged.broker_url == f"redis://:{REDIS_PASSWORD}@redis:6379/0"


def test_no_service_runs_as_root(config: dict[str, Any]) -> None:
    """Ours as the Dockerfile's uid 10001; redis and postgres as their images' own users
    (their entrypoints would otherwise start as root and step down themselves)."""
    dockerfile_users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    for name, service in config["services"].items():
        default = dockerfile_users[-1] if "build" in service else ""
        user = str(service.get("user", default))
        assert user.split(":")[0] not in ("", "0", "root"), f"{name} runs as {user or 'root'}"
        assert not service.get("privileged"), name


def test_worker_and_beat_run_the_right_commands(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["worker"]["command"] == ["ccm-intake", "run", "--no-beat"]
    assert services["beat"]["command"] == ["ccm-intake", "run", "--beat-only"]
    assert services["listener"]["command"] == ["ccm-intake", "listen"]


def test_worker_and_beat_run_as_a_non_root_user(config: dict[str, Any]) -> None:
    dockerfile_users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_users, "the Dockerfile sets no USER"
    assert dockerfile_users[-1].split(":")[0] not in ("0", "root")
    for name in APP_SERVICES:
        user = str(config["services"][name].get("user", dockerfile_users[-1]))
        assert user.split(":")[0] not in ("", "0", "root"), f"{name} runs as {user!r}"


def test_the_archive_lives_on_a_named_volume(config: dict[str, Any]) -> None:
    named = set(config.get("volumes") or {})
    for name in APP_SERVICES:
        service = config["services"][name]
        assert service["environment"]["CCM_DATA_DIR"] == "/var/lib/ccm"
        mounts = {}
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
            else:
                source, target = volume.get("source", ""), volume["target"]
            mounts[target] = source
        assert mounts.get("/var/lib/ccm") in named, f"{name}: {mounts}"


def test_services_reach_each_other_by_name_and_wait_until_healthy(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["CCM_BROKER_URL"] == "redis://redis:6379/0"
        assert re.fullmatch(
            r"postgresql\+psycopg://ccm:[^@]+@postgres(:5432)?/ccm", env["CCM_DATABASE_URL"]
        )
        assert env["CCM_IMAP_PASSWORD_FILE"].startswith("/run/secrets/")
        assert services[name]["depends_on"] == {
            "redis": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"], name
    assert "--appendonly" in services["redis"]["command"]
    assert any(
        v.endswith(":/var/lib/postgresql/data:rw") or v.endswith(":/var/lib/postgresql/data")
        for v in services["postgres"]["volumes"]
        if isinstance(v, str)
    )


def test_nothing_is_published_beyond_loopback(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            # No address given means every address.
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "*")
            else:  # "[IP:]HOST:CONTAINER[/proto]"
                parts = str(port).split(":")
                host_ip = parts[0] if len(parts) == 3 else "*"
            assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip}"


def test_the_example_env_holds_only_settings_the_service_knows() -> None:
    """An unknown CCM_ name stops the service at start, so the example must not have one."""
    from config.settings import Settings

    text = (ROOT / "deploy" / "ccm.env.example").read_text()
    keys = [
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]
    assert "CCM_SECRETARY_ADDRESS" in keys
    for key in keys:
        assert key.startswith("CCM_"), key
        assert key[4:].lower() in Settings.model_fields, f"{key} is not a setting"
    for commented in re.findall(r"^#\s*(CCM_[A-Z_]+)=", text, re.M):
        assert commented[4:].lower() in Settings.model_fields, f"{commented} is not a setting"


# ====================================================== health, profiles, metrics, Flower


def test_every_service_has_a_health_check(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert not service["healthcheck"].get("disable"), name


def test_the_health_checks_ask_the_right_thing(config: dict[str, Any]) -> None:
    services = config["services"]

    def check(name: str) -> str:
        # As the container runs it: `config` prints compose's $$ escapes as they are.
        test = services[name]["healthcheck"]["test"][1:]
        return " ".join(str(x) for x in test).replace("$$", "$")

    assert "pg_isready -U ccm -d ccm" in check("postgres")
    assert "redis-cli ping" in check("redis")  # with REDISCLI_AUTH: see above
    # The worker answers a ping over the broker, under its own node name.
    assert check("worker").startswith("celery -A worker.app inspect ping")
    assert "-d celery@$HOSTNAME" in check("worker")
    assert check("beat") == "ccm-healthcheck process --beat-only"
    assert check("listener") == "ccm-healthcheck process listen"
    # The metrics' /healthz, on the port the command listens on.
    command = services["metrics"]["command"]
    port = command[command.index("--port") + 1]
    assert check("metrics") == f"ccm-healthcheck http http://127.0.0.1:{port}/healthz"


def test_the_health_check_script_is_in_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY deploy/healthcheck.py /usr/local/bin/ccm-healthcheck" in dockerfile


def test_flower_and_the_dev_mail_server_start_only_with_their_profiles(
    config: dict[str, Any],
) -> None:
    profiles = {name: s.get("profiles", []) for name, s in config["services"].items()}
    assert profiles.pop("flower") == ["flower"]
    assert profiles.pop("dev-imap") == ["dev"] and profiles.pop("dev-smtp") == ["dev"]
    assert all(p == [] for p in profiles.values()), profiles  # the rest: always


def test_flower_is_behind_basic_auth_on_loopback(config: dict[str, Any]) -> None:
    flower = config["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == FLOWER_AUTH  # from the env file
    assert flower["environment"]["CELERY_BROKER_URL"] == f"redis://:{REDIS_PASSWORD}@redis:6379/0"
    # It refuses to start without credentials rather than open the console to anyone.
    script = " ".join(flower["command"]).replace("$$", "$")
    assert 'test -n "$FLOWER_BASIC_AUTH" ||' in script and "exit 1" in script
    assert [str(p.get("host_ip") if isinstance(p, dict) else p) for p in flower["ports"]] in (
        ["127.0.0.1"],
        ["127.0.0.1:5555:5555/tcp"],
    )


def test_flower_without_credentials_does_not_start(config: dict[str, Any], tmp_path: Path) -> None:
    """The flower container's own script, run by sh with a stand-in for `celery`: without
    FLOWER_BASIC_AUTH it stops with a line that says what to set; with it, Flower starts."""
    command = [str(x).replace("$$", "$") for x in config["services"]["flower"]["command"]]
    assert command[:2] == ["sh", "-c"]
    (tmp_path / "celery").write_text('#!/bin/sh\necho "celery $*"\n')
    (tmp_path / "celery").chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "CELERY_BROKER_URL": "redis://x"}
    refused = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "set FLOWER_BASIC_AUTH=user:password in .env" in refused.stderr
    assert "celery" not in refused.stdout
    env["FLOWER_BASIC_AUTH"] = FLOWER_AUTH
    started = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert started.returncode == 0
    assert started.stdout.strip() == "celery --broker=redis://x flower --port=5555"


def test_the_metrics_service_serves_on_loopback_from_the_database(config: dict[str, Any]) -> None:
    metrics = config["services"]["metrics"]
    assert metrics["command"][:2] == ["ccm-intake", "metrics"]
    # Every address inside its container; the host publishes it on loopback only (below).
    assert metrics["command"][metrics["command"].index("--host") + 1] == "0.0.0.0"  # noqa: S104
    assert metrics["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert not metrics.get("volumes")  # the database is all it reads
    (port,) = metrics["ports"]
    if isinstance(port, dict):
        assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", 9108, 9108)
    else:
        assert port == "127.0.0.1:9108:9108/tcp"


def test_the_services_log_json_lines(config: dict[str, Any]) -> None:
    for name in CCM_IMAGE_SERVICES:
        assert config["services"][name]["environment"]["CCM_LOG_FORMAT"] == "json", name


def test_the_database_and_the_archive_are_on_named_volumes(config: dict[str, Any]) -> None:
    named = set(config.get("volumes") or {})
    assert {"ccm-data", "postgres-data", "redis-data"} <= named
    postgres = config["services"]["postgres"]["volumes"]
    assert any(str(v).startswith("postgres-data:/var/lib/postgresql/data") for v in postgres)
    for name in APP_SERVICES:
        env = config["services"][name]["environment"]
        assert env["CCM_ARCHIVE_DIR"].startswith(env["CCM_DATA_DIR"] + "/"), name


def test_the_dev_profile_points_at_its_own_mail_servers(config: dict[str, Any]) -> None:
    """deploy/ccm.env.dev names the dev services and their ports, and only real settings."""
    from config.settings import load_settings

    values = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "ccm.env.dev").read_text().splitlines()
        if line and not line.startswith("#")
    )
    values.pop("CCM_IMAP_PASSWORD_FILE")
    settings = load_settings(values)
    services = config["services"]
    imap_command = [str(x) for x in services["dev-imap"]["command"]]
    assert settings.imap_host == "dev-imap"
    assert str(settings.imap_port) == imap_command[imap_command.index("--port") + 1]
    assert imap_command[imap_command.index("--demo-user") + 1] == settings.imap_user
    assert settings.smtp_host == "dev-smtp"
    assert f"0.0.0.0:{settings.smtp_port}" in services["dev-smtp"]["command"]


@pytest.fixture
def healthcheck() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy/healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_process_check_finds_a_live_process_and_not_itself(healthcheck: Any) -> None:
    marker = f"--ccm-marker-{os.getpid()}"
    assert healthcheck.main(["process", marker]) == 1  # its own command line does not count
    # Not `sh -c "sleep 30" marker`: a shell may exec sleep in its place, marker and all gone.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # Popen may return while the child is still inside exec, its command line empty.
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        wait_until(lambda: cmdline.read_bytes(), 10, "the child's command line")
        assert healthcheck.main(["process", marker]) == 0
    finally:
        proc.kill()
        proc.wait()
    assert healthcheck.main(["process", marker]) == 1


def test_the_tcp_and_http_checks(healthcheck: Any) -> None:
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert healthcheck.main(["http", f"http://127.0.0.1:{port}/healthz"]) == 0
        assert healthcheck.main(["http", f"http://127.0.0.1:{port}/broken"]) == 1
        assert healthcheck.main(["tcp", "127.0.0.1", str(port)]) == 0
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert healthcheck.main(["tcp", "127.0.0.1", str(closed)]) == 1
