"""Swagger UI and ReDoc render in Chromium with nothing fetched from another host."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("_turns_settle")]


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/api/docs/", ".opblock"),  # one block per operation
        ("/api/redoc/", "[data-section-id]"),  # one section per operation and tag
    ],
)
def test_the_api_docs_render_offline_from_this_server_s_files(stack, page, path, rendered):
    requests: list[str] = []
    left: list[str] = []

    def record(request) -> None:
        requests.append(request.url)

    page.on("request", record)
    # Anything bound for another host is refused here, as it would be on a machine offline; a
    # page that needed it would not render.
    page.route(
        lambda url: not url.startswith((stack.base_url, "blob:", "data:")),
        lambda route: (left.append(route.request.url), route.abort())[1],
    )
    page.goto(stack.base_url + path)
    page.wait_for_selector(rendered)
    assert page.locator(rendered).count() > 10
    assert left == []
    assert any("/api/schema/" in url for url in requests)
