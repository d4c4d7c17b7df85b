"""Files follow their rows (conversation deleted, retention, orphans) and the staff-only admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from conversations.models import Conversation
from images.models import ImageUpload
from images.services import image_orphan_files_purge, images_retention_run
from images.tests.conftest import upload_new
from images.tests.samples import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(client, bot):
    reply = upload_new(client, bot, image_bytes("PNG")).json()
    return ImageUpload.objects.get(pk=reply["image_id"])


def test_deleting_the_conversation_deletes_the_image_and_its_files(
    stored, django_capture_on_commit_callbacks
):
    names = [stored.storage_name, stored.thumbnail_name]
    assert all(default_storage.exists(n) for n in names)
    with django_capture_on_commit_callbacks(execute=True):
        Conversation.objects.filter(pk=stored.conversation_id).delete()
    assert not ImageUpload.objects.exists()
    assert not any(default_storage.exists(n) for n in names)


def test_a_rolled_back_deletion_keeps_the_files(stored, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stored.delete()
    assert callbacks  # the file deletion waits for the commit that never comes here
    assert default_storage.exists(stored.storage_name)


def test_retention_deletes_images_older_than_the_setting(
    stored, settings, django_capture_on_commit_callbacks
):
    settings.IMAGE_RETENTION_DAYS = 30
    assert images_retention_run()["expired"] == 0
    ImageUpload.objects.filter(pk=stored.pk).update(
        created_at=timezone.now() - dt.timedelta(days=31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert images_retention_run()["expired"] == 1
    assert not default_storage.exists(stored.storage_name)
    assert Conversation.objects.filter(pk=stored.conversation_id).exists()


def test_files_without_a_row_are_purged_but_referenced_ones_stay(stored):
    folder = stored.storage_name.rsplit("/", 1)[0]
    orphan = default_storage.save(f"{folder}/deadbeef.png", ContentFile(b"x"))
    assert image_orphan_files_purge(min_age=dt.timedelta(0)) == 1
    assert not default_storage.exists(orphan)
    assert default_storage.exists(stored.storage_name)
    assert default_storage.exists(stored.thumbnail_name)


def test_a_fresh_orphan_is_left_alone_for_its_transaction_to_commit(stored):
    folder = stored.storage_name.rsplit("/", 1)[0]
    fresh = default_storage.save(f"{folder}/cafe.png", ContentFile(b"x"))
    assert image_orphan_files_purge() == 0
    assert default_storage.exists(fresh)


def test_staff_see_the_list_with_previews_and_cannot_edit(admin_client, stored):
    response = admin_client.get("/admin/images/imageupload/")
    assert response.status_code == 200
    assert f"/admin/images/imageupload/{stored.pk}/thumbnail/".encode() in response.content
    assert b"imageupload/add/" not in response.content
    thumb = admin_client.get(f"/admin/images/imageupload/{stored.pk}/thumbnail/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    filtered = admin_client.get(
        f"/admin/images/imageupload/?chatbot__id__exact={stored.chatbot_id}"
    )
    assert filtered.status_code == 200 and str(stored.pk).encode() in filtered.content


def test_the_admin_list_costs_the_same_queries_for_many_images(admin_client, client, bot, stored):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert admin_client.get("/admin/images/imageupload/").status_code == 200
    for size in ((41, 30), (42, 30), (43, 30)):
        upload_new(client, bot, image_bytes("PNG", size=size))
    assert ImageUpload.objects.count() == 4
    with CaptureQueriesContext(connection) as four:
        assert admin_client.get("/admin/images/imageupload/").status_code == 200
    assert len(four) == len(one)


def test_visitors_and_non_staff_get_no_thumbnail(client, django_user_model, stored):
    anonymous = client.get(f"/admin/images/imageupload/{stored.pk}/thumbnail/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    user = django_user_model.objects.create_user("shopper", password="x")
    client.force_login(user)
    assert client.get(f"/admin/images/imageupload/{stored.pk}/thumbnail/").status_code == 302


def test_the_purge_command_runs_the_retention_job(stored, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.IMAGE_RETENTION_DAYS = 1
    ImageUpload.objects.filter(pk=stored.pk).update(
        created_at=timezone.now() - dt.timedelta(days=2)
    )
    out = StringIO()
    call_command("purge_images", stdout=out)
    assert "images expired: 1" in out.getvalue()
    assert not ImageUpload.objects.exists()
