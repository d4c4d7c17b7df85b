"""Make sure a staff superuser exists; print a generated password once if none was given."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin user if missing (password from ADMIN_PASSWORD, else generated)."

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        username = settings.ADMIN_USERNAME
        user = User.objects.filter(username=username).first()
        if user is not None:
            if settings.ADMIN_PASSWORD and not user.check_password(settings.ADMIN_PASSWORD):
                user.set_password(settings.ADMIN_PASSWORD)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin user “{username}”: password set from ADMIN_PASSWORD.")
            else:
                self.stdout.write(f"Admin user “{username}” exists.")
            return
        password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if settings.ADMIN_PASSWORD:
            self.stdout.write(
                f"Admin user “{username}” created with the password from ADMIN_PASSWORD."
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"Admin user “{username}” created. Password (shown only this once): {password}"
                )
            )
