"""The production image without a container engine: the entrypoint migrates an empty database
and starts every role as a plain process (each passes the image's health check); compose.yaml
parses and runs every process `./run` starts; the Dockerfile is multi-stage, non-root, runtime
requirements only, with static files and a health check; `check --deploy` passes with the
example production environment."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import environ
import psycopg
import pytest
import redis
import yaml

from devstack.services import free_port
from tests.deploy import deploy_check

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.py"
ROLES = ["web", "worker-turns", "worker-background", "beat", "flower"]
APP_SERVICES = {"web", "worker-turns", "worker-background", "beat", "flower"}
STARTUP_SECONDS = 120  # a cold Django + Celery start on a loaded 2-core machine, with slack


def with_database(url: str, name: str) -> str:
    """The same server, another database (keeps a `?host=/socket/dir` query)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def with_redis_db(url: str, db: int) -> str:
    base, _, _ = url.rstrip("/").rpartition("/")
    return f"{base}/{db}"


def connect(url: str, *, dbname: str = "", autocommit: bool = False) -> psycopg.Connection:
    config = environ.Env.db_url_config(url)
    return psycopg.connect(
        # A Unix-socket server is named by a `?host=` query (the embedded one of ./run).
        host=config["HOST"] or config.get("OPTIONS", {}).get("host") or None,
        port=config["PORT"] or None,
        user=config["USER"] or None,
        password=config["PASSWORD"] or None,
        dbname=dbname or config["NAME"],
        autocommit=autocommit,
    )


@pytest.fixture(scope="module")
def empty_database():
    """A new, empty database on the test server, dropped afterwards."""
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        pytest.skip("needs DATABASE_URL (./run test sets it)")
    name = f"entrypoint_{uuid.uuid4().hex[:10]}"
    admin = connect(server_url, dbname="postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def role_env(empty_database, tmp_path_factory):
    redis_url = with_redis_db(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), 11)
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": empty_database,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "PORT": str(free_port()),
        "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "ops:flower-pw-123",
        "MEDIA_ROOT": str(tmp_path_factory.mktemp("media")),
    }
    env.pop("TEST_DATABASE_NAME", None)
    yield env
    redis.Redis.from_url(redis_url).flushdb()


def entrypoint(*args: str, env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 600),
        **kwargs,
    )


def test_the_migrate_role_migrates_an_empty_database(role_env, empty_database):
    result = entrypoint("migrate", env=role_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with connect(empty_database) as conn:
        apps = {row[0] for row in conn.execute("SELECT DISTINCT app FROM django_migrations")}
    assert {"accounts", "conversations", "privacy", "django_celery_beat"} <= apps
    # Run again (a second web container starting): nothing left to do, and no error.
    again = entrypoint("migrate", env=role_env)
    assert again.returncode == 0 and "No migrations to apply" in again.stdout


def wait_until(check, process: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if check():
            return True
        time.sleep(1)
    return False


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.stdout.read() if process.stdout else ""


@pytest.mark.parametrize("role", ROLES)
def test_each_role_starts_as_a_plain_process_and_passes_the_health_check(role, role_env, tmp_path):
    env = {**role_env, "CONTAINER_ROLE_FILE": str(tmp_path / "role")}
    log = tmp_path / "out.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT), role],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        if role == "beat":
            ready = wait_until(
                lambda: "beat: Starting" in log.read_text(), process, STARTUP_SECONDS
            )
        else:
            ready = wait_until(
                lambda: entrypoint("healthcheck", env=env, timeout=60).returncode == 0,
                process,
                STARTUP_SECONDS,
            )
        assert ready, f"{role} did not become ready:\n{log.read_text()[-3000:]}"
        assert (tmp_path / "role").read_text() == role
        if role == "flower":
            url = f"http://127.0.0.1:{env['FLOWER_PORT']}/"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=10)
            assert refused.value.code == 401
            token = base64.b64encode(b"ops:flower-pw-123").decode()
            request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        if role == "web":
            request = urllib.request.Request(
                f"http://127.0.0.1:{env['PORT']}/api/conversation-config/nobody",
                headers={"Host": "localhost"},
            )
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(request, timeout=10)
            assert missing.value.code == 404
            assert missing.value.read().startswith(b'{"error"')  # the API's envelope
    finally:
        stop(process)


def test_flower_refuses_to_start_without_a_login(role_env, tmp_path):
    env = {**role_env, "FLOWER_BASIC_AUTH": "", "CONTAINER_ROLE_FILE": str(tmp_path / "role")}
    result = entrypoint("flower", env=env, timeout=60)
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH" in result.stderr


def test_other_commands_run_as_given():
    result = entrypoint("--print", "python", "manage.py", "shell", env=dict(os.environ))
    assert result.stdout.strip() == "python manage.py shell"


# --- compose.yaml -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_every_process_of_run_as_its_own_service(compose):
    services = compose["services"]
    assert set(services) == APP_SERVICES | {"postgres", "redis"}
    # The same processes devstack starts: Daphne, both workers, beat, Flower.
    source = (ROOT / "devstack" / "__main__.py").read_text()
    for part in ("worker-turns", "worker-background", '"beat"', '"flower"', "daphne_command"):
        assert part in source
    for name in APP_SERVICES:
        service = services[name]
        assert service["command"] == [name]
        assert service["image"] == services["web"]["image"]
        assert service["restart"] == "unless-stopped"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "limits" in service["deploy"]["resources"]
    for name in ("postgres", "redis"):
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["healthcheck"]["test"]


def test_compose_redis_is_append_only_and_flower_needs_its_login(compose):
    services = compose["services"]
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert services["redis"]["volumes"] == ["redis:/data"]
    assert "${FLOWER_BASIC_AUTH:?" in services["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert services["beat"]["deploy"]["replicas"] == 1
    # Published only on loopback: the TLS proxy on the host is the way in.
    for name in ("web", "flower"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"])


def test_compose_roles_are_roles_the_entrypoint_knows():
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "--print", "beat"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "monitoring.beat:DatabaseScheduler" in result.stdout
    for role in APP_SERVICES - {"flower"}:
        printed = subprocess.run(
            [sys.executable, str(ENTRYPOINT), "--print", role],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert printed.startswith(sys.executable), (role, printed)


# --- Dockerfile and the deploy check ------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_non_root_runtime_only_with_static_and_health_check():
    text = (ROOT / "Dockerfile").read_text()
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) >= 2
    final = lines[stages[-1] :]
    assert "requirements-dev" not in text and "requirements-bench" not in text
    assert "pip install -r /tmp/requirements.txt" in text
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    user_at = max(i for i, line in enumerate(final) if line.startswith("USER "))
    collect = next(i for i, line in enumerate(final) if "collectstatic" in line)
    assert collect > user_at  # collected by the user that serves them
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert any("deploy/entrypoint.py" in line for line in final if line.startswith("ENTRYPOINT"))
    assert not any(line.startswith("COPY") and "build-essential" in line for line in final)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".data"} <= set(ignored)


def example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / "deploy" / "production.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_check_deploy_passes_with_the_example_production_environment():
    from cryptography.fernet import Fernet

    values = example_env()
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "FIELD_ENCRYPTION_KEYS", "TRUSTED_PROXIES"} <= set(
        values
    )
    # What the operator does with the CHANGE-ME values.
    values["SECRET_KEY"] = secrets.token_urlsafe(64)
    values["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    result = deploy_check({**values, "PRODUCTION": "true", "DEBUG": "false"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_every_requirement_is_pinned_and_the_image_installs_only_the_runtime_set():
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-bench.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert "==" in line, f"{name}: {line} is not pinned"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert "requirements.txt" in (ROOT / "Dockerfile").read_text()
