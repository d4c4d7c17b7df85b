from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Shops and staff"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 - audit log receivers
