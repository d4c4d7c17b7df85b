"""`manage.py check --deploy` is clean with production settings (docs/deploy.md)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_deploy_check_is_clean_with_production_settings():
    env = {
        **os.environ,
        "PRODUCTION": "true",
        "DEBUG": "false",
        "SECRET_KEY": "q8#Vz2!mK0pL7rT4wX9yB1cN6dF3gH5jS8aE2uI0oP4-Ld7Wq1Zr5Tn3Yv9Xc",
        "ALLOWED_HOSTS": "chat.example.com",
    }
    env.pop("ALLOW_PRIVATE_NETWORK_URLS", None)  # ./run test turns it on; production does not
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_defaults_are_flagged_by_the_deploy_check():
    env = {**os.environ, "PRODUCTION": "false"}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
