"""Configuration history keeps no secrets: strip the encrypted keys from versions already stored
(chatbots/admin.py registers the models with their secret fields excluded from now on)."""

import json

from django.db import migrations

# (app label, model, secret fields) of the models in the history that hold secrets.
SECRETS = [
    ("chatbots", "aiendpoint", ["api_key"]),
    ("chatbots", "knowledgebase", ["api_key"]),
]


def strip_secrets(apps, schema_editor):
    Version = apps.get_model("reversion", "Version")
    ContentType = apps.get_model("contenttypes", "ContentType")
    for app_label, model, fields in SECRETS:
        content_type = ContentType.objects.filter(app_label=app_label, model=model).first()
        if content_type is None:
            continue
        versions = Version.objects.filter(content_type=content_type, format="json")
        for version in versions.iterator():
            try:
                data = json.loads(version.serialized_data)
            except ValueError:
                continue
            changed = False
            for item in data:
                for name in fields:
                    if item.get("fields", {}).pop(name, None) is not None:
                        changed = True
            if changed:
                version.serialized_data = json.dumps(data)
                version.save(update_fields=["serialized_data"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("chatbots", "0008_shop_required"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("reversion", "0002_add_index_on_version_for_content_type_and_db"),
    ]

    operations = [migrations.RunPython(strip_secrets, migrations.RunPython.noop)]
