"""`manage.py check --deploy` is clean with production settings (docs/deploy.md)."""

from tests.deploy import deploy_check


def test_deploy_check_is_clean_with_production_settings():
    result = deploy_check(
        {
            "PRODUCTION": "true",
            "DEBUG": "false",
            "SECRET_KEY": "q8#Vz2!mK0pL7rT4wX9yB1cN6dF3gH5jS8aE2uI0oP4-Ld7Wq1Zr5Tn3Yv9Xc",
            "ALLOWED_HOSTS": "chat.example.com",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_defaults_are_flagged_by_the_deploy_check():
    result = deploy_check({"PRODUCTION": "false"}, drop=("SECRET_KEY",))
    assert result.returncode != 0
