"""`./run manage purge_images`: the image retention job (expired images, orphaned files)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from images.services import images_retention_run


class Command(BaseCommand):
    help = "Delete images older than IMAGE_RETENTION_DAYS and stored files no image refers to."

    def handle(self, *args, **options) -> None:
        result = images_retention_run()
        self.stdout.write(
            f"images expired: {result['expired']}, orphaned files deleted: {result['orphan_files']}"
        )
