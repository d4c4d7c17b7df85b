"""`manage.py customer_data export|erase --shop SLUG (--user-id ID | --email EMAIL)`: the same
services as the staff API, for operators at a shell (docs/privacy.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Shop
from config.errors import ApiError
from privacy import services


class Command(BaseCommand):
    help = "Export (JSON to stdout) or erase everything a shop holds about one customer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["export", "erase"])
        parser.add_argument("--shop", required=True, help="The shop's slug.")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user-id", help="The widget user id the shop's site passed.")
        who.add_argument("--email", help="An email address the customer used.")

    def handle(self, *args, **options) -> None:
        shop = Shop.objects.filter(slug=options["shop"]).first()
        if shop is None:
            raise CommandError(f"No shop with the slug {options['shop']!r}.")
        try:
            customer = services.Customer.of(user_id=options["user_id"], email=options["email"])
        except ApiError as exc:
            raise CommandError(exc.message) from None
        if options["action"] == "export":
            data = services.customer_export(shop=shop, customer=customer)
        else:
            data = services.customer_erase(shop=shop, customer=customer)
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
