"""Existing error-log rows get their chatbot's shop (rows without a chatbot stay platform's)."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def fill(apps, schema_editor):
    ErrorLog = apps.get_model("monitoring", "ErrorLog")
    Chatbot = apps.get_model("chatbots", "Chatbot")
    ErrorLog.objects.filter(chatbot_id__isnull=False, shop_id__isnull=True).update(
        shop_id=Subquery(Chatbot.objects.filter(pk=OuterRef("chatbot_id")).values("shop_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0002_shop"),
        ("chatbots", "0008_shop_required"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
