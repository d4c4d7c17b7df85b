"""Key rotation: rotate_secrets moves every stored secret to the primary key and names the rest."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from chatbots.models import AIEndpoint, KnowledgeBase
from chatbots.secrets import SecretDecryptionError
from chatbots.selectors import chatbot_config_get
from chatbots.transfer import encrypted_secret_fields

pytestmark = pytest.mark.django_db

FLOWISE_KEY = "flowise-rotation-key-7c1d9e"
PINECONE_KEY = "pcsk_rotation_key_3b8f2a"
LOST_KEY = "pcsk_encrypted_with_a_lost_key_51aa"


@pytest.fixture
def keys():
    return [Fernet.generate_key().decode() for _ in range(3)]


@pytest.fixture
def secrets_under_a(settings, keys, make_chatbot, make_endpoint, make_flow):
    settings.FIELD_ENCRYPTION_KEYS = [keys[0]]
    endpoint = make_endpoint(
        kind=AIEndpoint.Kind.FLOWISE, base_url="https://flowise.example", api_key=FLOWISE_KEY
    )
    chatbot = make_chatbot(public_id="rotating", with_main_flow=False)
    kb = KnowledgeBase.objects.create(
        chatbot=chatbot,
        name="kb",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="rotating",
        api_key=PINECONE_KEY,
    )
    make_flow(chatbot=chatbot, name="main", is_main=True, endpoint=endpoint)
    make_endpoint(name="no key")  # empty secrets are left alone
    return endpoint, kb


def rotate() -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_secrets", "--batch-size", "1", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_column(model, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT api_key FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_rotation_moves_every_secret_to_the_new_key(settings, keys, secrets_under_a):
    endpoint, kb = secrets_under_a
    before = {
        m: m.objects.get(pk=o.pk).updated_at
        for m, o in ((AIEndpoint, endpoint), (KnowledgeBase, kb))
    }
    settings.FIELD_ENCRYPTION_KEYS = [keys[1], keys[0]]

    out, err = rotate()

    assert "chatbots.AIEndpoint.api_key: 1 re-encrypted, 0 already on the primary key" in out
    assert "chatbots.KnowledgeBase.api_key: 1 re-encrypted" in out
    assert err == ""
    settings.FIELD_ENCRYPTION_KEYS = [keys[1]]
    assert AIEndpoint.objects.get(pk=endpoint.pk).api_key.reveal() == FLOWISE_KEY
    assert KnowledgeBase.objects.get(pk=kb.pk).api_key.reveal() == PINECONE_KEY
    # The old key alone no longer reads them: they really were re-encrypted.
    settings.FIELD_ENCRYPTION_KEYS = [keys[0]]
    with pytest.raises(SecretDecryptionError):
        AIEndpoint.objects.get(pk=endpoint.pk).api_key.reveal()
    # Rotation is not an edit: updated_at stays.
    assert before == {
        m: m.objects.get(pk=o.pk).updated_at
        for m, o in ((AIEndpoint, endpoint), (KnowledgeBase, kb))
    }


def test_a_second_rotation_has_nothing_to_do(settings, keys, secrets_under_a):
    endpoint, _ = secrets_under_a
    settings.FIELD_ENCRYPTION_KEYS = [keys[1], keys[0]]
    rotate()
    stored = stored_column(AIEndpoint, endpoint.pk)

    out, _ = rotate()

    assert "Total: 0 re-encrypted, 2 already on the primary key, 0 undecryptable." in out
    assert stored_column(AIEndpoint, endpoint.pk) == stored


def test_an_undecryptable_secret_is_named_without_its_value(settings, keys, secrets_under_a):
    endpoint, kb = secrets_under_a
    settings.FIELD_ENCRYPTION_KEYS = [keys[2]]
    lost = KnowledgeBase.objects.create(
        chatbot=kb.chatbot,
        name="lost",
        kind=KnowledgeBase.Kind.PINECONE,
        index_name="lost",
        api_key=LOST_KEY,
    )
    ciphertext = stored_column(KnowledgeBase, lost.pk)
    settings.FIELD_ENCRYPTION_KEYS = [keys[1], keys[0]]

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 secret could not be re-encrypted"):
        call_command("rotate_secrets", stdout=out, stderr=err)

    assert (
        f"chatbots.KnowledgeBase pk={lost.pk} field api_key: cannot be decrypted with any key"
        in err.getvalue()
    )
    for text in (out.getvalue(), err.getvalue()):
        assert LOST_KEY not in text and ciphertext not in text
    # Everything else was still rotated.
    settings.FIELD_ENCRYPTION_KEYS = [keys[1]]
    assert AIEndpoint.objects.get(pk=endpoint.pk).api_key.reveal() == FLOWISE_KEY


def test_rotation_drops_cached_ciphertext(settings, keys, secrets_under_a):
    endpoint, _ = secrets_under_a
    assert chatbot_config_get(public_id="rotating")["flows"][0]["endpoint"]["api_key_stored"]
    settings.FIELD_ENCRYPTION_KEYS = [keys[1], keys[0]]
    rotate()
    settings.FIELD_ENCRYPTION_KEYS = [keys[1]]

    stored = chatbot_config_get(public_id="rotating")["flows"][0]["endpoint"]["api_key_stored"]

    assert stored == stored_column(AIEndpoint, endpoint.pk)


def test_every_encrypted_column_is_found():
    found = {f"{model._meta.label}.{field.name}" for model, field in encrypted_secret_fields()}
    assert {"chatbots.AIEndpoint.api_key", "chatbots.KnowledgeBase.api_key"} <= found


def test_rotation_refuses_to_run_without_keys(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    with pytest.raises(CommandError, match="FIELD_ENCRYPTION_KEYS is empty"):
        call_command("rotate_secrets", stdout=io.StringIO(), stderr=io.StringIO())
