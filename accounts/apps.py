from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Shops and staff"

    def ready(self) -> None:
        from django.apps import apps
        from django.contrib.admin import options
        from django.contrib.admin.sites import all_sites
        from django.db import models

        from accounts import signals  # noqa: F401 - audit log receivers
        from config.input_guard import storable_json_form_field, validate_storable_json

        # The admin's form field for JSON: admins built from here on (inlines are, per request)
        # take it from the defaults, those the admin's autodiscovery built already get it now.
        json_form_field = {"form_class": storable_json_form_field()}
        options.FORMFIELD_FOR_DBFIELD_DEFAULTS.setdefault(models.JSONField, json_form_field)
        for site in all_sites:
            for model_admin in site._registry.values():
                model_admin.formfield_overrides.setdefault(models.JSONField, json_form_field)

        # Every JSONField of every app, whoever writes its model next: no admin form (or any
        # full_clean) sends PostgreSQL a value it refuses with a 500.
        for model in apps.get_models():
            for field in model._meta.concrete_fields:
                if isinstance(field, models.JSONField) and (
                    validate_storable_json not in field._validators
                ):
                    field._validators.append(validate_storable_json)
                    field.__dict__.pop("validators", None)  # a cached list, if read already
