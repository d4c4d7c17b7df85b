"""The demo shop page /chat/<chatbot_id>/ and the widget's static files (no browser needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_demo_page_embeds_the_widget_like_a_shop_would(client, make_chatbot):
    bot = make_chatbot(public_id="vinhuset", allowed_origins=["http://testserver"])
    response = client.get("/chat/vinhuset/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'src="http://testserver/static/widget/chat-widget.js"' in html
    assert 'data-chatbot="vinhuset"' in html
    assert f'data-widget-key="{bot.widget_key}"' in html
    assert "data-transport" not in html
    assert "allowed origins" not in html


def test_it_answers_404_for_unknown_and_inactive_chatbots(client, make_chatbot):
    make_chatbot(public_id="closed-shop", active=False)
    assert client.get("/chat/closed-shop/").status_code == 404
    assert client.get("/chat/no-such-bot/").status_code == 404


def test_it_warns_when_the_page_may_not_embed_the_chatbot(client, make_chatbot):
    make_chatbot(public_id="vinhuset", allowed_origins=["https://www.vinhuset.dk"])
    html = " ".join(client.get("/chat/vinhuset/").content.decode().split())
    assert "<code>http://testserver</code>, is not in the chatbot's allowed origins" in html


def test_the_transport_option_takes_only_known_values(client, make_chatbot):
    make_chatbot(public_id="vinhuset", allowed_origins=["http://testserver"])
    assert (
        'data-transport="polling"'
        in client.get("/chat/vinhuset/?transport=polling").content.decode()
    )
    html = client.get('/chat/vinhuset/?transport="><script>alert(1)</script>').content.decode()
    assert "data-transport" not in html and "<script>alert(1)" not in html


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("chat-widget.js", "text/javascript"), ("chat-widget.css", "text/css")],
)
def test_the_widget_files_are_served_as_static_files(client, path, content_type):
    response = client.get(f"/static/widget/{path}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert b"".join(response.streaming_content if response.streaming else [response.content])
