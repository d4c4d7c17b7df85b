"""Swagger UI (/api/docs/) and ReDoc (/api/redoc/) come from this server, never from a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

DOCS_PAGES = ["/api/docs/", "/api/redoc/"]


class _Links(HTMLParser):
    """Every URL a page makes the browser load: scripts, stylesheets, icons, preconnects."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag in ("script", "img", "iframe") and values.get("src"):
            self.urls.append(values["src"])
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"])
        self._in_script = tag == "script" and not values.get("src")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


def _page(client, path: str) -> _Links:
    response = client.get(path)
    assert response.status_code == 200, path
    assert response["Content-Type"].startswith("text/html")
    links = _Links()
    links.feed(response.content.decode())
    return links


def _body(response) -> bytes:
    return b"".join(response.streaming_content if response.streaming else [response.content])


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_the_api_docs_page_loads_only_files_of_this_server(client, path):
    links = _page(client, path)
    assert links.urls, f"{path} loads no script at all"
    for url in links.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{path} loads {url} from elsewhere"
        assert url.startswith("/static/"), url
    # Nor does its inline start-up script name another host.
    for script in links.inline_scripts:
        assert not re.search(r"https?://", script), script[:300]


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_every_file_the_api_docs_page_loads_is_served(client, path):
    for url in _page(client, path).urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(_body(response)) > 100, url


def test_swagger_ui_and_redoc_load_their_own_scripts(client):
    swagger = _page(client, "/api/docs/").urls
    redoc = _page(client, "/api/redoc/").urls
    assert any(url.endswith("/swagger-ui-bundle.js") for url in swagger), swagger
    assert any(url.endswith("/swagger-ui.css") for url in swagger), swagger
    assert any(url.endswith("/redoc.standalone.js") for url in redoc), redoc
