from django.contrib import admin  # noqa: F401 - admin classes are added by the admin module
