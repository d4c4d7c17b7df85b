"""Browser tests: Debian's Chromium, driven by Playwright, against the real stack of tests/e2e.

Chromium comes from `devstack.browser.ensure_chromium()` (installed with apt-get when missing
and possible); Playwright's own browser downloads are never used. Screenshots of failed tests
(and of the main flows) go to test-artifacts/browser/.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import threading

import pytest
from django.urls import Resolver404, resolve

from devstack import browser as devstack_browser
from tests.e2e.conftest import ARTIFACTS, Stack, running_stack, stack_env, turns_settle
from tests.fakes.flowise import FakeFlowise

SHOTS = ARTIFACTS / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Where pinned content-type ids start: far above any id a sequence hands out in a test run.
PINNED_CONTENT_TYPE_IDS = 10_000_000


@pytest.fixture(autouse=True)
def _pinned_content_type_ids(request):
    """The same id for each content type in every browser test.

    The stack's Daphne is shared by the whole browser session and caches content types by id
    (an admin save logs against them). Each transactional test's flush recreates them with new
    ids (after the rest of the suite has flushed hundreds of times), so a cached id soon names
    no row and the save is a 500. Pinning them to fixed ids, by (app, model), after each flush
    keeps Daphne's cache true. Test-only: a real database never renumbers content types.
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        yield
        return
    request.getfixturevalue("transactional_db")
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    rows = list(ContentType.objects.order_by("app_label", "model").values_list("id", flat=True))
    mapping = [
        (old, PINNED_CONTENT_TYPE_IDS + index)
        for index, old in enumerate(rows)
        if old != PINNED_CONTENT_TYPE_IDS + index
    ]
    if mapping:
        values = ", ".join(f"({int(old)}, {int(new)})" for old, new in mapping)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            cursor.execute(
                f"UPDATE django_content_type t SET id = m.new FROM (VALUES {values}) "
                "AS m(old, new) WHERE t.id = m.old"
            )
            cursor.execute(
                f"UPDATE auth_permission p SET content_type_id = m.new FROM (VALUES {values}) "
                "AS m(old, new) WHERE p.content_type_id = m.old"
            )
        ContentType.objects.clear_cache()
    yield


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker) -> Stack:
    """Daphne and a Celery worker on the test database, as in tests/e2e, with logs of their own
    (test-artifacts/browser/*-<port>.log) so parallel runs do not write into each other's."""
    shutil.rmtree(SHOTS, ignore_errors=True)  # pictures of an earlier run would mislead
    SHOTS.mkdir(parents=True, exist_ok=True)
    env = stack_env(
        # Per-bot limits still apply (the rate-limit test sets one); the global ones would
        # only make the tests depend on each other.
        SESSION_CREATE_RATE_LIMIT="100000/minute",
        MESSAGE_RATE_LIMIT_PER_MINUTE="100000",
        IMAGE_UPLOAD_RATE_LIMIT="100000/minute",
    )
    with running_stack(env, SHOTS, "browser", "turns,celery", 20) as running:
        yield running
    # Kept only when something failed: a green run leaves just its screenshots.
    for log in (running.daphne_log, running.worker_log):
        if not any(SHOTS.glob("FAILED-*")) and not os.environ.get("BROWSER_TEST_KEEP_LOGS"):
            log.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = devstack_browser.ensure_chromium()
    if path is None:
        pytest.skip(f"no Chromium for the browser tests: {devstack_browser.last_problem}")
    return path


@pytest.fixture(scope="session")
def demo_page_routed() -> None:
    try:
        resolve("/chat/demo/")
    except Resolver404:
        pytest.fail(
            "/chat/<chatbot_id>/ is not routed: add "
            '`path("", include("chatbots.widget_urls"))` to config/urls.py'
        )


@pytest.fixture(scope="module")
def browser(demo_page_routed, chromium_path, stack):
    """Chromium for one test module.

    Playwright's sync API keeps its asyncio loop marked as running in this thread, which Django
    takes for an async context and refuses ORM calls in; the tests' ORM calls (factories, the
    database flush) are plain sync code, so the check is off while the browser runs. The stack
    started before it (its processes keep the check), and it is back on after the module.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    with sync_playwright() as playwright:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        try:
            chromium = playwright.chromium.launch(
                executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
        finally:
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def context(browser):
    """A fresh browser profile per test: no localStorage, cookies or cache from another test."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 850}, locale="en-GB")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, request):
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield page
    failed = any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )
    if failed:
        name = artifact_name(request.node.name)
        SHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SHOTS / f"FAILED-{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page still gets its console log written
            console.append(f"(screenshot failed: {exc})")
        (SHOTS / f"FAILED-{name}.console.txt").write_text("\n".join(console))


def artifact_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def screenshot(page, name: str) -> None:
    """A picture of a main flow, for people reviewing what the widget looks like."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{artifact_name(name)}.png"))


def admin_log_in(page, base_url: str, username: str, password: str) -> None:
    """Log in on the admin's login page as staff do: the form, filled and sent (the caller waits
    for the page it expects next)."""
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def polling_answers_with(page, events: list[dict]) -> None:
    """Answer the widget's polling requests with `events`, a whole finished answer at once, so a
    test can show the widget exactly the events it means to (as the runner would send them)."""
    page.route(
        re.compile(r"/api/stream-events/"),
        lambda route: route.fulfill(
            content_type="application/json",
            body=json.dumps(
                {
                    "events": events,
                    "session_status": "completed",
                    "last_event_id": events[-1]["id"],
                    "has_more": False,
                }
            ),
        ),
    )


class ShopSite:
    """A shop's own web site on another origin: serves `html` at `/` (set it in the test)."""

    def __init__(self) -> None:
        site = self
        self.html = "<!DOCTYPE html><title>Shop</title>"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.origin + "/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop_site():
    # A real server, not page.route(): Chromium's local-network checks refuse WebSockets to
    # 127.0.0.1 from a document that did not come from a local address.
    site = ShopSite()
    yield site
    site.close()


@pytest.fixture
def flowise():
    """The fake Flowise every test's bot answers from (see tests/fakes/flowise.py)."""
    with FakeFlowise() as server:
        yield server


@pytest.fixture
def _turns_settle(transactional_db, browser, flowise):
    """As in tests/e2e: let the worker finish writing before the database is flushed (and keep
    the fake Flowise up until then, so a turn the test did not wait for ends normally)."""
    yield
    turns_settle()
