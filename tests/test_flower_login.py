"""Flower under ./run: behind a login from FLOWER_BASIC_AUTH (generated into .data/local.env)
and on the loopback address unless FLOWER_HOST says otherwise."""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.request

import pytest

from devstack.__main__ import ROOT, flower_address, flower_part
from devstack.services import free_port, load_local_env
from devstack.supervisor import StartProblem


@pytest.fixture
def environ(monkeypatch):
    """A private copy of the environment, so load_local_env's setdefault leaks nowhere."""
    copy = dict(os.environ)
    for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "FLOWER_BASIC_AUTH", "FLOWER_HOST"):
        copy.pop(name, None)
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_flower_listens_on_loopback_even_when_host_is_every_address(environ):
    environ["HOST"] = "0.0.0.0"
    assert flower_address() == "127.0.0.1"
    environ["FLOWER_HOST"] = "0.0.0.0"
    assert flower_address() == "0.0.0.0"


def test_the_flower_command_carries_the_login_and_the_loopback_address(environ):
    environ["FLOWER_BASIC_AUTH"] = "admin:s3cret-pw"
    part = flower_part(host=flower_address(), port=5555)
    assert "--address=127.0.0.1" in part.command and "--port=5555" in part.command
    assert part.env == {"FLOWER_BASIC_AUTH": "admin:s3cret-pw"}
    # In Flower's environment, not its command line, which any local user can list.
    assert not any("s3cret-pw" in arg for arg in part.command)


@pytest.mark.parametrize("value", ["", "no-colon"])
def test_flower_is_not_started_without_a_login(environ, value):
    environ["FLOWER_BASIC_AUTH"] = value
    with pytest.raises(StartProblem, match="FLOWER_BASIC_AUTH"):
        flower_part(host="127.0.0.1", port=5555)


def test_run_generates_a_flower_login_into_a_new_local_env(environ, tmp_path):
    load_local_env(tmp_path)
    text = (tmp_path / "local.env").read_text()
    user, password = environ["FLOWER_BASIC_AUTH"].split(":", 1)
    assert user == "admin" and len(password) >= 20
    assert f"FLOWER_BASIC_AUTH={user}:{password}" in text
    assert (tmp_path / "local.env").stat().st_mode & 0o077 == 0


def test_run_adds_the_flower_login_to_an_older_local_env_keeping_its_keys(environ, tmp_path):
    (tmp_path / "local.env").write_text("# old\nSECRET_KEY=kept\nFIELD_ENCRYPTION_KEYS=also-kept\n")
    load_local_env(tmp_path)
    text = (tmp_path / "local.env").read_text()
    assert "SECRET_KEY=kept" in text and text.count("SECRET_KEY=") == 1
    assert environ["SECRET_KEY"] == "kept" and environ["FLOWER_BASIC_AUTH"].startswith("admin:")
    load_local_env(tmp_path)
    assert (tmp_path / "local.env").read_text() == text  # generated once


def test_a_started_flower_refuses_a_request_without_the_login(environ, tmp_path):
    environ["FLOWER_BASIC_AUTH"] = "admin:s3cret-pw"
    port = free_port()
    part = flower_part(host="127.0.0.1", port=port)
    part.log = tmp_path / "flower.log"
    part.start(ROOT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while part.ready() is not None:
            assert part.running, part.log.read_text()
            assert time.monotonic() < deadline, "Flower did not answer in 30 s"
            time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        login = base64.b64encode(b"admin:s3cret-pw").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {login}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        part.proc.terminate()
        part.proc.wait(timeout=10)
