"""The browser's own EventSource, on a shop's site (another origin), follows an answer over
/api/stream-events/<turn>/sse, drops mid-answer, and resumes to exactly the stored answer."""

from __future__ import annotations

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


def test_event_source_follows_drops_and_resumes_to_exactly_the_stored_answer(
    stack, flowise, page, shop_site
):
    bot = create_chatbot(with_main_flow=False, allowed_origins=[shop_site.origin])
    endpoint = create_endpoint(
        kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url, read_timeout=5.0, total_timeout=30
    )
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    flowise.scenario.answer = ANSWER
    flowise.scenario.tokens_per_second = 30
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
