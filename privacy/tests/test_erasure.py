"""Forget this customer: after an erasure by user id or email, no table's text, no Redis key or
value and no file in the media folder holds their id, email or what they wrote — while another
shop's customer under the same user id keeps everything. And the export of one customer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from accounts.models import AuditEvent, Role
from analytics.services.conversation_index import conversation_index_sync
from chatbots.tests.factories import create_chatbot, create_member, create_shop
from config.redis import get_redis
from conversations.models import AICall, Conversation, Turn
from conversations.runner import turn_run
from conversations.runtime import get_runtime
from conversations.services import conversation_start, message_submit
from helpdesk.models import ConversationRating, Handoff
from images.models import ImageUpload
from images.services import image_store
from images.tests.samples import image_bytes
from privacy.services import Customer, customer_erase, customer_export

pytestmark = pytest.mark.django_db(transaction=True)

USER_ID = "cust-48213-erika"
EMAIL = "erika.m@example.org"
PHRASE = "Kilimanjaro spoon parcel"
OTHER_PHRASE = "Matterhorn fork order"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def run_turn(turn: Turn) -> None:
    runtime = get_runtime()
    runtime.submit(turn_run(runtime, str(turn.pk))).result(60)


def customer_with_everything(bot, *, user_id: str, email: str, phrase: str) -> Conversation:
    """A conversation with a streamed answer (events in PostgreSQL and Redis, AI calls), an
    uploaded image, a contact form, a rating, an AI call outliving its conversation link."""
    conversation = conversation_start(chatbot=bot, user_id=user_id, metadata={"email": email})
    turn, _ = message_submit(conversation=conversation, text=f"{phrase}. Reach me at {email}")
    run_turn(turn)
    image_store(conversation=conversation, data=image_bytes(), original_name=f"{phrase}.png")
    Handoff.objects.create(
        conversation=conversation,
        kind=Handoff.Kind.CONTACT,
        mode=Handoff.Mode.TICKET,
        requester_name="Erika M",
        requester_email=email,
        message=phrase,
    )
    ConversationRating.objects.create(conversation=conversation, score=4, comment=phrase)
    AICall.objects.create(
        chatbot=bot,
        endpoint_kind="builtin",
        endpoint_name="builtin",
        flow="main",
        purpose="answer",
        question=f"{phrase} (an earlier conversation)",
        status=AICall.Status.OK,
        user_id=user_id,
    )
    return conversation


def database_hits(needle: str) -> dict[str, int]:
    """Rows per table.column, over every text-like column of every table, containing `needle`."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'tsvector', 'ARRAY')
            ORDER BY table_name, column_name
            """
        )
        columns = cursor.fetchall()
        hits = {}
        for table, column in columns:
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s',
                [f"%{needle}%"],
            )
            count = cursor.fetchone()[0]
            if count:
                hits[f"{table}.{column}"] = count
    return hits


def redis_hits(needle: str) -> list[str]:
    """Redis keys whose name or value contains `needle`."""
    client = get_redis()
    found = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in client.xrange(key)]
        elif kind == "hash":
            values = [repr(client.hgetall(key)).encode()]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        else:
            values = []
        text = b"\n".join([key, *values]).decode("utf-8", "replace").lower()
        if needle.lower() in text:
            found.append(key.decode())
    return found


def media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def traces(needles: list[str]) -> dict[str, object]:
    return {
        needle: {"database": database_hits(needle), "redis": sorted(redis_hits(needle))}
        for needle in needles
    }


@pytest.fixture
def shops():
    shop_a, shop_b = create_shop(name="Alpha"), create_shop(name="Beta")
    bot_a = create_chatbot(shop=shop_a, public_id="alpha", image_upload_enabled=True)
    bot_b = create_chatbot(shop=shop_b, public_id="beta", image_upload_enabled=True)
    return shop_a, shop_b, bot_a, bot_b


def test_erasure_by_user_id_leaves_no_trace_and_another_shops_same_user_id_untouched(shops):
    shop_a, _, bot_a, bot_b = shops
    # Shop B's customer has the same widget user id; what exists of them is the baseline.
    kept = customer_with_everything(
        bot_b, user_id=USER_ID, email="someone.else@example.net", phrase=OTHER_PHRASE
    )
    conversation_index_sync()
    needles = [USER_ID, EMAIL, PHRASE, OTHER_PHRASE]
    baseline, baseline_files = traces(needles), media_files()
    assert baseline[USER_ID]["database"] and baseline[OTHER_PHRASE]["database"]

    erased = customer_with_everything(bot_a, user_id=USER_ID, email=EMAIL, phrase=PHRASE)
    bystander = conversation_start(chatbot=bot_a, user_id="another-customer")
    conversation_index_sync()
    turn_ids = [
        str(t) for t in Turn.objects.filter(conversation=erased).values_list("pk", flat=True)
    ]
    assert any(f"cb:turn:{turn_ids[0]}:" in key for key in redis_hits(turn_ids[0]))
    assert traces([EMAIL])[EMAIL]["database"]  # the set-up really wrote them
    assert len(media_files()) > len(baseline_files)

    report = customer_erase(shop=shop_a, customer=Customer.of(user_id=USER_ID))

    assert traces(needles) == baseline
    assert media_files() == baseline_files
    assert not [key for turn_id in turn_ids for key in redis_hits(turn_id) if key.startswith("cb:")]
    assert Conversation.objects.filter(pk=kept.pk).exists()
    assert Conversation.objects.filter(pk=bystander.pk).exists()
    assert report["conversations"] == 1
    assert report["deleted"]["conversations.Conversation"] == 1
    assert report["deleted"]["conversations.AICall"] >= 2
    assert report["deleted"]["images.ImageUpload"] == 1
    assert report["deleted"]["helpdesk.Handoff"] == 1
    assert report["image_files"] >= 1 and report["redis_keys"] >= 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.ERASE)
    assert event.shop == shop_a
    assert event.detail["conversations"] == 1 and len(event.detail["fingerprint"]) == 32


def test_erasure_by_email_finds_the_conversations_that_name_it(shops):
    shop_a, _, bot_a, _ = shops
    by_form = conversation_start(chatbot=bot_a, user_id="")
    Handoff.objects.create(
        conversation=by_form,
        kind=Handoff.Kind.CONTACT,
        mode=Handoff.Mode.TICKET,
        requester_email=EMAIL.upper(),
        message=PHRASE,
    )
    typed = customer_with_everything(bot_a, user_id="anon-1", email=EMAIL, phrase=PHRASE)
    untouched = conversation_start(chatbot=bot_a, user_id="anon-2")

    report = customer_erase(shop=shop_a, customer=Customer.of(email=EMAIL))

    assert report["conversations"] == 2
    assert not Conversation.objects.filter(pk__in=[by_form.pk, typed.pk]).exists()
    assert Conversation.objects.filter(pk=untouched.pk).exists()
    assert traces([EMAIL, PHRASE]) == {
        EMAIL: {"database": {}, "redis": []},
        PHRASE: {"database": {}, "redis": []},
    }
    assert not ImageUpload.objects.exists() and media_files() == set()


def test_the_export_holds_the_customers_conversations_messages_images_and_calls(shops):
    shop_a, _, bot_a, bot_b = shops
    conversation = customer_with_everything(bot_a, user_id=USER_ID, email=EMAIL, phrase=PHRASE)
    customer_with_everything(bot_b, user_id=USER_ID, email=EMAIL, phrase=OTHER_PHRASE)

    data = customer_export(shop=shop_a, customer=Customer.of(user_id=USER_ID))

    json.dumps(data)  # JSON as it stands
    assert data["customer"] == {"user_id": USER_ID}
    [exported] = data["conversations"]
    assert exported["id"] == str(conversation.pk)
    assert [m["role"] for m in exported["messages"]][:2] == ["user", "assistant"]
    assert PHRASE in exported["messages"][0]["content"]
    assert exported["images"][0]["original_name"] == f"{PHRASE}.png"
    assert exported["contact_requests"][0]["requester_email"] == EMAIL
    assert exported["rating"]["comment"] == PHRASE
    assert len(data["ai_calls"]) >= 2
    assert OTHER_PHRASE not in json.dumps(data)  # the other shop's customer is not in it
    event = AuditEvent.objects.get(action=AuditEvent.Action.EXPORT, object_type="customer data")
    assert USER_ID not in json.dumps(event.detail) and event.shop == shop_a


def test_the_management_command_exports_and_erases(shops, capsys):
    shop_a, _, bot_a, _ = shops
    customer_with_everything(bot_a, user_id=USER_ID, email=EMAIL, phrase=PHRASE)
    out = io.StringIO()
    call_command("customer_data", "export", "--shop", shop_a.slug, "--user-id", USER_ID, stdout=out)
    assert json.loads(out.getvalue())["conversations"][0]["user_id"] == USER_ID
    out = io.StringIO()
    call_command("customer_data", "erase", "--shop", shop_a.slug, "--email", EMAIL, stdout=out)
    assert json.loads(out.getvalue())["conversations"] == 1
    assert not Conversation.objects.exists()


# --- the staff API --------------------------------------------------------------------------------


def member(shop, role, name):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    create_member(user=user, shop=shop, role=role)
    return user


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("admin", 200), ("agent", 403), ("viewer", 403), ("outsider", 404)],
)
def test_only_the_shops_owners_and_admins_may_erase(shops, client, persona, status):
    shop_a, shop_b, bot_a, _ = shops
    conversation = conversation_start(chatbot=bot_a, user_id=USER_ID)
    roles = {"owner": Role.OWNER, "admin": Role.ADMIN, "agent": Role.AGENT, "viewer": Role.VIEWER}
    user = member(shop_b, Role.OWNER, "outsider") if persona == "outsider" else None
    user = user or member(shop_a, roles[persona], persona)
    client.force_login(user)
    response = client.post(
        f"/api/shops/{shop_a.slug}/customers/erase",
        {"user_id": USER_ID},
        content_type="application/json",
    )
    assert response.status_code == status
    assert Conversation.objects.filter(pk=conversation.pk).exists() == (status != 200)
    if status == 200:
        assert response.json()["conversations"] == 1


def test_an_anonymous_caller_gets_401(shops, client):
    shop_a = shops[0]
    response = client.post(
        f"/api/shops/{shop_a.slug}/customers/export",
        {"user_id": "x"},
        content_type="application/json",
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": "a", "email": "b@c.d"},
        {"user_id": ""},
        {"email": "not-an-email"},
        {"user_id": "x" * 201},
        {"user_id": "a\x00b"},
        {"user_id": 12},
        [],
        "text",
    ],
)
def test_a_bad_customer_reference_gets_400_not_500(shops, client, body):
    shop_a = shops[0]
    client.force_login(member(shop_a, Role.OWNER, "owner"))
    for action in ("export", "erase"):
        response = client.post(
            f"/api/shops/{shop_a.slug}/customers/{action}", body, content_type="application/json"
        )
        assert response.status_code == 400, (action, body, response.content)
        # A NUL or a body that is not JSON is refused by the API's input guard first.
        assert response.json()["error"]["code"] in (
            "VALIDATION_ERROR",
            "MALFORMED_JSON",
            "INVALID_INPUT",
        )


def test_the_export_endpoint_answers_json_that_is_not_cached(shops, client):
    shop_a, _, bot_a, _ = shops
    conversation_start(chatbot=bot_a, user_id=USER_ID)
    client.force_login(member(shop_a, Role.ADMIN, "admin"))
    response = client.post(
        f"/api/shops/{shop_a.slug}/customers/export",
        {"user_id": USER_ID},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json()["conversations"][0]["user_id"] == USER_ID
