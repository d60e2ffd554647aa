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
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")
APP_SERVICES = ("worker", "beat", "listener")

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
    (d / "compose.env").write_text("DB_PASSWORD=s3cr3t\n")
    return d


def compose(project: Path, *args: str, env_file: bool = True) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    env = {
        k: v for k, v in os.environ.items() if k != "DB_PASSWORD" and not k.startswith("COMPOSE_")
    }
    extra = ["--env-file", str(project / "compose.env")] if env_file else []
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
    out = compose(project, "config", "-q", env_file=False)
    assert out.returncode != 0
    assert "DB_PASSWORD" in out.stderr


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
