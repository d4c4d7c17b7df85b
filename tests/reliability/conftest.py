"""Fixtures of the reliability tests: a private Daphne + worker for the whole run, and a wait
for running turns before the test database is truncated under them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.e2e.conftest import turns_settle
from tests.reliability import harness

# Broker databases of the private stacks (the e2e stack uses 14, the shutdown test 13, and the
# suite flushes 15): a task sent for one stack is never taken by another stack's worker.
RSTACK_BROKER_DB = 12


@dataclass
class ReliabilityStack:
    services: harness.Services
    daphne: harness.Service
    worker: harness.Service
    broker_url: str

    @property
    def base_url(self) -> str:
        return self.daphne.url

    @property
    def ws_url(self) -> str:
        return self.daphne.ws_url


@pytest.fixture(scope="session")
def rstack(django_db_setup) -> ReliabilityStack:
    """One Daphne and one turn worker (50 threads) shared by the tests that need no special
    settings: upstream faults, hostile input, load, secrets."""
    env = harness.base_env(broker_db=RSTACK_BROKER_DB)
    services = harness.Services(env)
    try:
        daphne = services.daphne("daphne")
        worker = services.worker("worker", concurrency=50, TURN_DB_THREADS="12")
        services.wait_ready()
        yield ReliabilityStack(services, daphne, worker, env["CELERY_BROKER_URL"])
    finally:
        services.stop_all()


@pytest.fixture(scope="session", autouse=True)
def _test_process_log():
    """What this process logs during the run (through the same secrets filter as the product's
    console handler), kept for the secrets scan."""
    import logging

    from config.logging import RedactSecretsFilter

    harness.ARTIFACTS.mkdir(exist_ok=True)
    path = harness.ARTIFACTS / "reliability-test-process.log"
    handler = logging.FileHandler(path, mode="w")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    harness.LOG_FILES.append(path)
    yield
    logging.getLogger().removeHandler(handler)
    handler.close()


@pytest.fixture(autouse=True)
def _turns_settle(request):
    """Let the workers finish writing before a transactional test's tables are truncated."""
    marker = request.node.get_closest_marker("django_db")
    transactional = marker is not None and marker.kwargs.get("transaction")
    if transactional:
        request.getfixturevalue("transactional_db")
    yield
    if not transactional:
        return
    turns_settle()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    # The secrets scan reads what every other test produced, so it runs after all of them
    # (pytest-django puts transactional tests before tests without database access).
    last = [item for item in items if "test_07_secrets_and_isolation.py" in item.nodeid]
    items[:] = [item for item in items if item not in last] + last


def pytest_sessionfinish(session, exitstatus) -> None:
    # The figures of this run as a table next to the logs; docs/reliability.md is rendered
    # from the same file with `python -m tests.reliability.report`.
    if harness.FIGURES.exists():
        from tests.reliability import report

        try:
            (harness.ARTIFACTS / "reliability.md").write_text(report.render())
        except Exception as exc:  # a broken report must not hide the test results
            print(f"reliability report not rendered: {exc}")
