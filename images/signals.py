"""Files follow their rows: when an ImageUpload row is deleted (directly, by retention, or with
its conversation), its image and thumbnail files are deleted once that deletion commits."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from images.models import ImageUpload


@receiver(post_delete, sender=ImageUpload, dispatch_uid="images.files_follow_rows")
def image_files_follow_row(sender, instance: ImageUpload, **kwargs) -> None:
    from images.services import image_files_delete

    names = [instance.storage_name, instance.thumbnail_name]
    # After commit: a rolled-back deletion must not leave a row pointing at nothing.
    transaction.on_commit(lambda: image_files_delete(names=names))
