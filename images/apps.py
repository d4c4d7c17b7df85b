from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Images"

    def ready(self) -> None:
        from conversations import hooks
        from images import signals  # noqa: F401 - connects the file cleanup
        from images.context import image_context_provider
        from images.services import attachment_image_data, attachment_image_ids

        hooks.register_message_attachment("image_ids", attachment_image_ids)
        hooks.register_message_attachment("image_data", attachment_image_data)
        # Early (order 10): the description is context that later providers and the answer
        # flow may use.
        hooks.register_context_provider("images", image_context_provider, order=10)
