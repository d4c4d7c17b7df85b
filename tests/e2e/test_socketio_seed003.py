"""Socket.IO for seed 003's clients, over the real stack with python-socketio's own client:
login at /auth/login, connect with the JWT, chat:message, tokens, chat:response, chat:history,
a reconnect mid-answer with nothing missing or doubled, and outsiders refused."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import socketio
import websockets
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User

from chatbots.models import AIEndpoint
from chatbots.tests.factories import create_chatbot, create_endpoint, create_flow
from conversations.access import conversation_token_issue
from conversations.models import Conversation, Message, Turn
from conversations.services import conversation_start
from tests.fakes.flowise import FakeFlowise

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "api-pw-123456789"
WORDS = [f"w{i} " for i in range(60)]
ANSWER = "".join(WORDS)


@pytest.fixture
def flowise():
    with FakeFlowise() as fake:
        fake.scenario.tokens = WORDS
        yield fake


def flowise_bot(flowise, public_id: str, api_user: str):
    bot = create_chatbot(public_id=public_id, with_main_flow=False)
    endpoint = create_endpoint(kind=AIEndpoint.Kind.FLOWISE, base_url=flowise.url)
    create_flow(chatbot=bot, name="main", is_main=True, endpoint=endpoint)
    # Hashed as the stack checks it (the tests' own settings use a fast hasher it does not know).
    hashed = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    User.objects.create(username=api_user, password=hashed).api_chatbots.add(bot)
    return bot


def login(stack, username: str) -> str:
    response = httpx.post(
        f"{stack.base_url}/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def new_session(stack, jwt: str, chatbot_id: str) -> str:
    response = httpx.post(
        f"{stack.base_url}/api/sessions",
        json={"chatbot_id": chatbot_id, "userId": "user_12345"},
        headers={"Authorization": f"Bearer {jwt}"},
    )
    assert response.status_code == 201, response.text
    return response.json()["sessionId"]


class SeedClient:
    """What seed 003's frontend does with socket.io-client, written with python-socketio."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, dict]] = []
        self.arrived = asyncio.Event()
        for name in (
            "chat:turn",
            "chat:token",
            "chat:event",
            "chat:response",
            "chat:history",
            "session:joined",
            "error",
            "connect_error",
        ):
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str):
        async def record(data=None):
            self.received.append((name, data))
            self.arrived.set()

        return record

    def of(self, name: str) -> list[dict]:
        return [data for kind, data in self.received if kind == name]

    async def wait_for(self, predicate, timeout: float = 30) -> None:
        async def waiting():
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(waiting(), timeout)

    async def connect(self, stack, auth: dict, transports=None) -> None:
        await self.sio.connect(stack.base_url, auth=auth, transports=transports, wait_timeout=10)


def stored_answer(session_id: str) -> str:
    return Message.objects.get(conversation_id=session_id, role="assistant").content


def test_a_seed_003_client_logs_in_sends_a_message_and_gets_tokens_and_one_response(stack, flowise):
    bot = flowise_bot(flowise, "sio-bot", "sio-server")
    jwt = login(stack, "sio-server")
    session_id = new_session(stack, jwt, bot.public_id)

    async def scenario() -> SeedClient:
        client = SeedClient()
        # The default transports: Engine.IO long-polling first, then the WebSocket upgrade.
        await client.connect(stack, {"token": jwt})
        await client.sio.emit(
            "chat:message", {"sessionId": session_id, "content": "Hello!", "type": "text"}
        )
        await client.wait_for(lambda: client.of("chat:response"))
        await client.sio.emit("chat:history", {"sessionId": session_id, "limit": 50})
        await client.wait_for(lambda: client.of("chat:history"))
        transport = client.sio.transport()
        await client.sio.disconnect()
        client.transport = transport
        return client

    client = asyncio.run(scenario())

    assert client.transport == "websocket"  # the upgrade went through Daphne's WS protocol
    assert client.of("error") == []
    assert client.of("session:joined") == [{"sessionId": session_id}]
    (turn,) = client.of("chat:turn")
    tokens = client.of("chat:token")
    ids = [t["id"] for t in tokens] + [e["id"] for e in client.of("chat:event")]
    assert sorted(ids) == list(range(1, len(ids) + 1))  # every event once, no gap
    assert "".join(t["content"] for t in tokens) == ANSWER == stored_answer(session_id)
    (response,) = client.of("chat:response")
    assert response["content"] == ANSWER
    assert response["sessionId"] == session_id and response["turnId"] == turn["turnId"]
    assert response["status"] == "completed"
    assert response["response"]["parent_message_id"] == response["message"]["message_id"]
    assert response["message"]["content"] == "Hello!"
    (history,) = client.of("chat:history")
    assert [m["content"] for m in history["messages"]] == ["Hello!", ANSWER]
    assert history["messages"][1]["agent_info"]["flow"] == "main"


def test_a_client_that_drops_mid_answer_resumes_with_nothing_missing_or_doubled(stack, flowise):
    flowise.scenario.tokens_per_second = 30  # two seconds of answer
    bot = flowise_bot(flowise, "sio-resume", "sio-resume-server")
    jwt = login(stack, "sio-resume-server")
    session_id = new_session(stack, jwt, bot.public_id)

    async def scenario():
        first = SeedClient()
        await first.connect(stack, {"token": jwt}, transports=["websocket"])
        await first.sio.emit("chat:message", {"sessionId": session_id, "content": "Tell me"})
        await first.wait_for(lambda: len(first.of("chat:token")) >= 5)
        await first.sio.disconnect()
        seen = first.of("chat:token") + first.of("chat:event")
        last = max(e["id"] for e in seen)
        turn_id = first.of("chat:turn")[0]["turnId"]

        # socket.io-client's `auth` may be a function: the reconnect says where it stopped.
        second = SeedClient()
        await second.connect(
            stack,
            {"token": jwt, "sessionId": session_id, "turnId": turn_id, "lastEventId": last},
            transports=["polling"],  # long-polling only: the fallback where WebSockets fail
        )
        await second.wait_for(lambda: second.of("chat:response"))
        await asyncio.sleep(0.3)  # anything doubled after the response would arrive now
        await second.sio.disconnect()
        return first, second, last

    first, second, last = asyncio.run(scenario())

    before = first.of("chat:token") + first.of("chat:event")
    after = second.of("chat:token") + second.of("chat:event")
    assert min(e["id"] for e in after) == last + 1
    ids = sorted(e["id"] for e in before + after)
    assert ids == list(range(1, len(ids) + 1))
    text = "".join(
        t["content"]
        for t in sorted(first.of("chat:token") + second.of("chat:token"), key=lambda t: t["id"])
    )
    assert text == ANSWER == stored_answer(session_id)
    assert [r["content"] for r in second.of("chat:response")] == [ANSWER]
    assert first.of("chat:response") == []


def test_a_seed_client_reconnecting_without_a_position_gets_the_answer_once(stack, flowise):
    flowise.scenario.tokens_per_second = 30
    bot = flowise_bot(flowise, "sio-quiet", "sio-quiet-server")
    jwt = login(stack, "sio-quiet-server")
    session_id = new_session(stack, jwt, bot.public_id)
    conversation = Conversation.objects.get(pk=session_id)
    token = conversation_token_issue(conversation_id=conversation.pk, chatbot_id=bot.pk)

    async def scenario():
        first = SeedClient()
        await first.connect(stack, {"token": token})
        await first.sio.emit("chat:message", {"content": "Tell me"})
        await first.wait_for(lambda: len(first.of("chat:token")) >= 3)
        await first.sio.disconnect()
        second = SeedClient()  # io(url, {auth: {token}}) again, as the seed's page does
        await second.connect(stack, {"token": token})
        await second.wait_for(lambda: second.of("chat:response"))
        await asyncio.sleep(0.3)
        await second.sio.disconnect()
        return second

    second = asyncio.run(scenario())
    assert [r["content"] for r in second.of("chat:response")] == [ANSWER]
    assert second.of("chat:token") == [] and second.of("error") == []
    assert Turn.objects.get(conversation_id=session_id).status == "completed"


def refused(stack, auth) -> dict:
    async def scenario():
        client = SeedClient()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(stack, auth)
        return client

    (error,) = asyncio.run(scenario()).of("connect_error")
    return error


def test_a_socket_without_a_token_or_with_a_forged_one_is_refused_with_the_envelope(stack):
    assert refused(stack, {}) == {
        "message": "Connect with auth: {token: <JWT or conversation token>}.",
        "data": {
            "error": {
                "code": "NOT_AUTHENTICATED",
                "message": "Connect with auth: {token: <JWT or conversation token>}.",
                "details": {},
            }
        },
    }
    forged = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl"
    for token in (forged, "not-a-token", "a\x00b"):
        error = refused(stack, {"token": token})
        assert error["data"]["error"]["code"] == "NOT_AUTHENTICATED"


def test_another_bots_api_user_and_another_visitor_get_nothing_of_the_conversation(stack, flowise):
    bot = flowise_bot(flowise, "sio-owner", "sio-owner-server")
    flowise_bot(flowise, "sio-other", "sio-other-server")
    session_id = new_session(stack, login(stack, "sio-owner-server"), bot.public_id)
    other_jwt = login(stack, "sio-other-server")
    other_conversation = conversation_start(chatbot=bot, user_id="bo")
    other_token = conversation_token_issue(conversation_id=other_conversation.pk, chatbot_id=bot.pk)

    async def scenario():
        outsider = SeedClient()
        await outsider.connect(stack, {"token": other_jwt})
        await outsider.sio.emit("chat:message", {"sessionId": session_id, "content": "hi"})
        await outsider.sio.emit("chat:history", {"sessionId": session_id})
        await outsider.wait_for(lambda: len(outsider.of("error")) == 2)
        await outsider.sio.disconnect()
        visitor = SeedClient()
        await visitor.connect(stack, {"token": other_token})
        await visitor.sio.emit("chat:history", {"sessionId": session_id})
        await visitor.wait_for(lambda: visitor.of("error"))
        await visitor.sio.disconnect()
        return outsider, visitor

    outsider, visitor = asyncio.run(scenario())
    not_found = "CONVERSATION_NOT_FOUND"
    assert [e["error"]["code"] for e in outsider.of("error")] == [not_found, not_found]
    assert outsider.of("chat:history") == [] and outsider.of("session:joined") == []
    assert [e["error"]["code"] for e in visitor.of("error")] == [not_found]
    assert visitor.of("chat:history") == []
    assert not Message.objects.filter(conversation_id=session_id).exists()


def test_hostile_event_payloads_get_an_error_and_the_socket_stays(stack, flowise):
    bot = flowise_bot(flowise, "sio-hostile", "sio-hostile-server")
    jwt = login(stack, "sio-hostile-server")
    session_id = new_session(stack, jwt, bot.public_id)

    async def scenario():
        client = SeedClient()
        await client.connect(stack, {"token": jwt})
        payloads = [
            "just text",
            [1, 2],
            {"sessionId": session_id, "content": "a\x00b"},
            {"sessionId": session_id, "content": "\ud800"},
            {"sessionId": session_id, "content": 10**400},
            {"sessionId": "../../etc", "content": "x"},
            {"sessionId": session_id, "content": {"deep": [[[[[]]]]]}},
        ]
        for payload in payloads:
            await client.sio.emit("chat:message", payload)
        await client.sio.emit("no:such:event", {})
        await client.wait_for(lambda: len(client.of("error")) == len(payloads) + 1)
        await client.sio.emit("chat:history", {"sessionId": session_id})
        await client.wait_for(lambda: client.of("chat:history"))
        await client.sio.disconnect()
        return client

    client = asyncio.run(scenario())
    codes = {e["error"]["code"] for e in client.of("error")}
    assert codes <= {"VALIDATION_ERROR", "INVALID_INPUT"}
    assert client.of("chat:history")[0]["messages"] == []


def test_an_engineio_connection_that_never_authenticates_is_closed(stack):
    """A raw Engine.IO WebSocket that never sends Socket.IO's CONNECT gets Engine.IO's close
    packet after WS_AUTH_TIMEOUT_SECONDS, as an unauthenticated plain WebSocket is closed."""
    from django.conf import settings

    url = f"{stack.ws_url}/socket.io/?EIO=4&transport=websocket"

    async def scenario() -> tuple[str, list[str], float]:
        received: list[str] = []
        async with websockets.connect(url, open_timeout=10) as ws:
            opened = await asyncio.wait_for(ws.recv(), 10)
            started = time.monotonic()
            while "1" not in received:  # Engine.IO's close packet
                received.append(
                    await asyncio.wait_for(ws.recv(), settings.WS_AUTH_TIMEOUT_SECONDS + 15)
                )
            return opened, received, time.monotonic() - started

    opened, received, waited = asyncio.run(scenario())
    assert opened.startswith("0{")  # Engine.IO's open packet: the handshake went through
    assert received == ["1"]  # closed, with nothing sent before
    assert waited >= settings.WS_AUTH_TIMEOUT_SECONDS - 0.5


def test_every_socket_of_the_conversation_hears_of_a_new_turn_and_can_follow_it(stack, flowise):
    bot = flowise_bot(flowise, "sio-room", "sio-room-server")
    jwt = login(stack, "sio-room-server")
    session_id = new_session(stack, jwt, bot.public_id)
    token = conversation_token_issue(conversation_id=session_id, chatbot_id=bot.pk)

    async def scenario():
        visitor, agent = SeedClient(), SeedClient()
        await visitor.connect(stack, {"token": token})
        await agent.connect(stack, {"token": jwt, "sessionId": session_id})
        await agent.wait_for(lambda: agent.of("session:joined"))
        await visitor.sio.emit("chat:message", {"content": "Hello!"})
        await agent.wait_for(lambda: agent.of("chat:turn"))
        turn_id = agent.of("chat:turn")[0]["turnId"]
        await agent.sio.emit(
            "chat:resume", {"sessionId": session_id, "turnId": turn_id, "lastEventId": 0}
        )
        await agent.wait_for(lambda: agent.of("chat:response"))
        await visitor.wait_for(lambda: visitor.of("chat:response"))
        for client in (visitor, agent):
            await client.sio.disconnect()
        return visitor, agent

    visitor, agent = asyncio.run(scenario())
    assert len(visitor.of("chat:turn")) == 1 and len(agent.of("chat:turn")) == 1
    for client in (visitor, agent):
        assert "".join(t["content"] for t in client.of("chat:token")) == ANSWER
        assert [r["content"] for r in client.of("chat:response")] == [ANSWER]


def test_a_message_resent_with_its_idempotency_key_is_the_earlier_turn_and_says_so(stack, flowise):
    bot = flowise_bot(flowise, "sio-idem", "sio-idem-server")
    jwt = login(stack, "sio-idem-server")
    session_id = new_session(stack, jwt, bot.public_id)

    async def scenario():
        client = SeedClient()
        await client.connect(stack, {"token": jwt})
        message = {"sessionId": session_id, "content": "Where is my parcel?", "idempotencyKey": "k"}
        first = await client.sio.call("chat:message", message, timeout=15)
        again = await client.sio.call("chat:message", message, timeout=15)
        await client.sio.disconnect()
        return first, again

    first, again = asyncio.run(scenario())
    assert again["turnId"] == first["turnId"] and again["messageId"] == first["messageId"]
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert Turn.objects.filter(conversation_id=session_id).count() == 1
