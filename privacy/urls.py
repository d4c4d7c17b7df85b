"""Routes of the privacy app, under /api/."""

from django.urls import path

from privacy import api

urlpatterns = [
    path("shops/<slug:slug>/retention", api.retention, name="shop-retention"),
    path("shops/<slug:slug>/customers/export", api.customer_export, name="customer-export"),
    path("shops/<slug:slug>/customers/erase", api.customer_erase, name="customer-erase"),
]
