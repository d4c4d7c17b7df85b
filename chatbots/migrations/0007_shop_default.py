"""Existing data moves into one default shop; existing staff become its admins.

Before shops, every staff user was staff of every chatbot. Their Django permissions still
decide what they may do; the membership only keeps them seeing what they saw. Operators make
owners afterwards (docs/access.md). A fresh database gets no default shop.
"""

from django.db import migrations


def to_default_shop(apps, schema_editor):
    Shop = apps.get_model("accounts", "Shop")
    Membership = apps.get_model("accounts", "Membership")
    User = apps.get_model("auth", "User")
    models = [
        apps.get_model("chatbots", name) for name in ("Chatbot", "AIEndpoint", "PromptTemplate")
    ]
    if not any(model.objects.filter(shop__isnull=True).exists() for model in models):
        return
    shop, _ = Shop.objects.get_or_create(slug="default", defaults={"name": "Default shop"})
    for model in models:
        model.objects.filter(shop__isnull=True).update(shop=shop)
    for user in User.objects.filter(is_staff=True, is_superuser=False, is_active=True):
        Membership.objects.get_or_create(user=user, shop=shop, defaults={"role": "admin"})


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("chatbots", "0006_shop"),
    ]

    operations = [migrations.RunPython(to_default_shop, migrations.RunPython.noop)]
