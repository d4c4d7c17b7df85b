"""REST endpoints of the images app (under /api/)."""

from django.urls import path

from images import api

urlpatterns = [
    path("upload-image", api.upload_image, name="upload-image"),
    path("images/<uuid:image_id>", api.image_get, name="image"),
]
