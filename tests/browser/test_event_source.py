"""The browser's own EventSource, on a shop's site (another origin), follows an answer over
/api/stream-events/<turn>/sse, drops mid-answer, and resumes to exactly the stored answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse

import pytest

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.models import Turn

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_turns_settle"),
]

ANSWER = " ".join(f"word{i}" for i in range(50))

# What a frontend written for plain EventSource does: post the message, then follow the turn;
# here it closes the stream after a few tokens (a dropped connection) and opens a new one
# from the last id it saw.
FOLLOW = """
async ({base, bot, key, dropAfter}) => {
  const reply = await (await fetch(base + "/api/process-message", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Widget-Key": key},
    body: JSON.stringify({chatbot_id: bot, message_text: "Tell me everything"}),
  })).json();
  const url = base + "/api/stream-events/" + reply.turn_id + "/sse?token="
    + encodeURIComponent(reply.conversation_token);
  const kinds = ["start", "metadata", "source_documents", "token", "order", "error", "end"];
  function follow(from, stopAfterTokens) {
    return new Promise((resolve, reject) => {
      const source = new EventSource(from);
      const seen = [];
      const timer = setTimeout(() => { source.close(); reject(new Error("no end in time")); },
                               30000);
      const onEvent = (message) => {
        seen.push({lastEventId: message.lastEventId, type: message.type,
                   envelope: JSON.parse(message.data)});
        const tokens = seen.filter((s) => s.type === "token").length;
        if (message.type === "end" || (stopAfterTokens && tokens >= stopAfterTokens)) {
          source.close();
          clearTimeout(timer);
          resolve(seen);
        }
      };
      kinds.forEach((kind) => source.addEventListener(kind, onEvent));
    });
  }
  const first = await follow(url, dropAfter);
  const last = first[first.length - 1].lastEventId;
  const rest = await follow(url + "&last_event_id=" + last, 0);
  return {turnId: reply.turn_id, first, rest};
}
"""


def answering_bot(flowise, shop_site, *, tokens_per_second: int):
    """A bot on the shop's site whose Flowise flow says ANSWER at `tokens_per_second`."""
    bot = create_chatbot(with_main_flow=False, allowed_origins=[shop_site.origin])
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url, read_timeout=5.0, total_timeout=30
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    flowise.scenario.answer = ANSWER
    flowise.scenario.tokens_per_second = tokens_per_second
    return bot


def test_event_source_follows_drops_and_resumes_to_exactly_the_stored_answer(
    stack, flowise, page, shop_site
):
    bot = answering_bot(flowise, shop_site, tokens_per_second=30)
    page.goto(shop_site.url)
    result = page.evaluate(
        FOLLOW,
        {"base": stack.base_url, "bot": bot.public_id, "key": bot.widget_key, "dropAfter": 3},
    )
    first, rest = result["first"], result["rest"]
    # Dropped mid-answer: the first stream ended on a token, before the answer was done.
    assert first[-1]["type"] == "token"
    seen = first + rest
    ids = [s["envelope"]["id"] for s in seen]
    assert ids == list(range(1, len(ids) + 1))  # nothing missing, nothing doubled
    assert all(s["lastEventId"] == str(s["envelope"]["id"]) for s in seen)
    assert all(s["type"] == s["envelope"]["event"] for s in seen)
    assert seen[-1]["type"] == "end"
    shown = "".join(s["envelope"]["data"]["text"] for s in seen if s["type"] == "token")
    turn = Turn.objects.select_related("assistant_message").get(pk=result["turnId"])
    assert shown == turn.assistant_message.content == ANSWER


class CuttingProxy:
    """A TCP proxy in front of Daphne that cuts the first event stream after a few tokens, as a
    dropped mobile connection would, and passes everything else through. It keeps each request's
    head, so the test sees the header EventSource reconnected with."""

    def __init__(self, target_port: int, *, cut_after_tokens: int) -> None:
        self.target_port = target_port
        self.cut_after_tokens = cut_after_tokens
        self.cut_done = threading.Event()
        self.heads: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        self.heads.append(head)
        upstream.sendall(head)
        cut_this = b"/sse" in head.split(b"\r\n", 1)[0] and not self.cut_done.is_set()
        if cut_this:
            self.cut_done.set()
        threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
        seen = b""
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                break
            if not data:
                break
            seen += data
            if cut_this and seen.count(b"event: token") >= self.cut_after_tokens:
                # Forward up to the end of the last whole event, then drop the connection.
                whole = seen.rfind(b"\n\n") + 2
                client.sendall(data[: max(0, len(data) - (len(seen) - whole))])
                break
            client.sendall(data)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def close(self) -> None:
        self.listener.close()


# One EventSource, never closed by the page: when the connection drops, the browser reconnects
# by itself and sends the last id it saw as the Last-Event-ID header.
FOLLOW_ONE = """
async ({base, streamBase, bot, key}) => {
  const reply = await (await fetch(base + "/api/process-message", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-Widget-Key": key},
    body: JSON.stringify({chatbot_id: bot, message_text: "Tell me everything"}),
  })).json();
  const url = streamBase + "/api/stream-events/" + reply.turn_id + "/sse?token="
    + encodeURIComponent(reply.conversation_token);
  const kinds = ["start", "metadata", "source_documents", "token", "order", "error", "end"];
  const seen = [];
  let errors = 0;
  await new Promise((resolve, reject) => {
    const source = new EventSource(url);
    const timer = setTimeout(() => { source.close(); reject(new Error("no end in time")); },
                             45000);
    source.onerror = () => { errors += 1; };
    kinds.forEach((kind) => source.addEventListener(kind, (message) => {
      seen.push({lastEventId: message.lastEventId, type: message.type,
                 envelope: JSON.parse(message.data)});
      if (message.type === "end") { source.close(); clearTimeout(timer); resolve(); }
    }));
  });
  return {turnId: reply.turn_id, seen, errors};
}
"""


def test_event_source_reconnects_by_itself_with_last_event_id_after_a_drop(
    stack, flowise, page, shop_site
):
    bot = answering_bot(flowise, shop_site, tokens_per_second=10)
    proxy = CuttingProxy(urllib.parse.urlsplit(stack.base_url).port, cut_after_tokens=3)
    try:
        page.goto(shop_site.url)
        result = page.evaluate(
            FOLLOW_ONE,
            {
                "base": stack.base_url,
                "streamBase": f"http://127.0.0.1:{proxy.port}",
                "bot": bot.public_id,
                "key": bot.widget_key,
            },
        )
    finally:
        proxy.close()
    seen = result["seen"]
    assert proxy.cut_done.is_set() and result["errors"] >= 1  # the connection did drop
    sse_heads = [h for h in proxy.heads if b"/sse" in h.split(b"\r\n", 1)[0]]
    assert len(sse_heads) == 2  # the first stream, then the browser's own reconnect
    resumed_from = [
        line.split(b":", 1)[1].strip()
        for line in sse_heads[1].split(b"\r\n")
        if line.lower().startswith(b"last-event-id:")
    ]
    # It resumed from an event mid-answer: after the third token, before the end.
    assert len(resumed_from) == 1 and 3 < int(resumed_from[0]) < len(seen)
    ids = [s["envelope"]["id"] for s in seen]
    assert ids == list(range(1, len(ids) + 1))  # nothing missing, nothing doubled
    assert seen[-1]["type"] == "end"
    shown = "".join(s["envelope"]["data"]["text"] for s in seen if s["type"] == "token")
    turn = Turn.objects.select_related("assistant_message").get(pk=result["turnId"])
    assert shown == turn.assistant_message.content == ANSWER
