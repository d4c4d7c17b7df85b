"""A real Flowise 3.1.4 for the conformance suite: installed from npm once into the conformance
cache (with node 24 from npm's `node-<os>-<arch>` package, as Flowise's `engines` asks), run on
the test PostgreSQL server in a database of its own that is kept between runs, and given a
chatflow whose ChatOpenAI model points at our OpenAI fake.

Costs: the first install downloads about 3,200 packages (3.2 GB, about 6 minutes here); a start
on the kept database takes about 20 s. Flowise's own SQLite needs a native build that
`--ignore-scripts` skips, so PostgreSQL it is (as ../shared/reference/ai_protocols.md §6 did).

What is set up through Flowise's own HTTP API, as its UI does it (`x-request-from: internal`
plus the login cookie): the first account (`/api/v1/account/register`), a login, an `openAIApi`
credential and a chatflow from Flowise's marketplace template "Conversation Chain".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.services import free_port
from tests.conformance.npm import CACHE, npm_package

FLOWISE = "flowise@3.1.4"
FOLDER = "flowise-server"
DATABASE = "conformance_flowise_3_1_4"
EMAIL = "conformance@example.com"
PASSWORD = "Conformance-Passw0rd!"  # a local test server's account, never reachable outside
START_TIMEOUT = float(os.environ.get("CONFORMANCE_FLOWISE_START_SECONDS", 600))
INSTALL_TIMEOUT = 1800


@dataclass
class RealFlowise:
    url: str
    chatflow_id: str
    log: Path


def _node_package() -> str:
    """npm's package holding a node 24 binary for this machine (`node@24` installs it only from a
    postinstall script, which --ignore-scripts skips)."""
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system())
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if not system or not arch:
        pytest.skip(f"no node 24 package on npm for {platform.system()} {platform.machine()}")
    return f"node-{system}-{arch}@24"


def _installed() -> tuple[Path, Path, Path]:
    """(node binary, Flowise's bin/run, node_modules), installing them on first use."""
    node_spec = _node_package()
    modules = npm_package(FOLDER, FLOWISE, timeout=INSTALL_TIMEOUT)
    npm_package(FOLDER, node_spec, timeout=INSTALL_TIMEOUT)
    node = modules / node_spec.rsplit("@", 1)[0] / "bin" / "node"
    if not node.exists():
        pytest.skip(f"npm installed {node_spec} without a node binary at {node}")
    return node, modules / "flowise" / "bin" / "run", modules


def _database(params: dict) -> None:
    """Flowise's own database on the test server, created once and kept (its migrations then run
    only on the first start). Its migrations call uuid_generate_v4(): from uuid-ossp where the
    server has it, else as a wrapper of PostgreSQL's own gen_random_uuid()."""
    import psycopg

    admin = {k: v for k, v in params.items() if k != "dbname"}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(**admin, dbname=DATABASE, autocommit=True) as conn:
        try:
            conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
        except psycopg.Error:
            conn.execute(
                "CREATE OR REPLACE FUNCTION uuid_generate_v4() RETURNS uuid "
                "LANGUAGE sql AS 'SELECT gen_random_uuid()'"
            )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Flowise exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/ping", timeout=2).text == "pong":
                return
        time.sleep(1)
    raise RuntimeError(f"Flowise did not answer /api/v1/ping in {START_TIMEOUT:g} s:\n{_tail(log)}")


def _session(url: str) -> httpx.Client:
    """A client logged in as the conformance account (registered on the first run)."""
    client = httpx.Client(base_url=url, timeout=30, headers={"x-request-from": "internal"})
    client.post(
        "/api/v1/account/register",
        json={"user": {"name": "Conformance", "email": EMAIL, "credential": PASSWORD}},
    )  # refused once the account exists; the login below is what must work
    login = client.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    login.raise_for_status()
    return client


def _chatflow(client: httpx.Client, modules: Path, openai_base_url: str) -> tuple[str, str]:
    """A "Conversation Chain" chatflow from Flowise's marketplace, its ChatOpenAI at our fake:
    (credential id, chatflow id)."""
    credential = client.post(
        "/api/v1/credentials",
        json={
            "name": "conformance-fake-openai",
            "credentialName": "openAIApi",
            "plainDataObj": {"openAIApiKey": "sk-conformance-0123456789"},
        },
    )
    credential.raise_for_status()
    credential_id = credential.json()["id"]
    template = modules / "flowise" / "marketplaces" / "chatflows" / "Conversation Chain.json"
    flow = json.loads(template.read_text())
    for node in flow["nodes"]:
        if node["data"]["name"] == "chatOpenAI":
            node["data"]["credential"] = credential_id
            node["data"]["inputs"].update(
                basepath=openai_base_url,
                modelName="gpt-4o-mini",
                FLOWISE_CREDENTIAL_ID=credential_id,
            )
    created = client.post(
        "/api/v1/chatflows",
        json={
            "name": "conformance",
            "flowData": json.dumps({"nodes": flow["nodes"], "edges": flow["edges"]}),
            "deployed": False,
            "isPublic": False,
            "type": "CHATFLOW",
        },
    )
    created.raise_for_status()
    return credential_id, created.json()["id"]


@contextlib.contextmanager
def real_flowise(*, database_params: dict, openai_base_url: str) -> Iterator[RealFlowise]:
    node, run, modules = _installed()
    _database(database_params)
    home = CACHE / FOLDER / "home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / f"flowise-{port}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))},
        "HOME": str(home),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_TYPE": "postgres",
        "DATABASE_HOST": str(database_params.get("host") or "127.0.0.1"),
        "DATABASE_PORT": str(database_params.get("port") or 5432),
        "DATABASE_USER": str(database_params.get("user") or "postgres"),
        # node-postgres wants a string even where the server trusts the connection
        "DATABASE_PASSWORD": str(database_params.get("password") or "unused"),
        "DATABASE_NAME": DATABASE,
        "SECRETKEY_PATH": str(home),
        "FLOWISE_SECRETKEY_OVERWRITE": "conformance-only-secret-key",
        "LOG_PATH": str(home / "logs"),
        "BLOB_STORAGE_PATH": str(home / "storage"),
        "DISABLE_FLOWISE_TELEMETRY": "true",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(node), str(run), "start"],
            cwd=CACHE / FOLDER,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = None
    credential_id = chatflow_id = None
    try:
        _wait_up(url, process, log)
        client = _session(url)
        credential_id, chatflow_id = _chatflow(client, modules, openai_base_url)
        yield RealFlowise(url=url, chatflow_id=chatflow_id, log=log)
    finally:
        if client is not None:
            with contextlib.suppress(httpx.HTTPError):
                if chatflow_id:
                    client.delete(f"/api/v1/chatflows/{chatflow_id}")
                if credential_id:
                    client.delete(f"/api/v1/credentials/{credential_id}")
            client.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
