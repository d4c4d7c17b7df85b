"""Load (or refresh) the demo chatbot; safe to run on every start."""

from django.core.management.base import BaseCommand

from chatbots.demo import demo_load


class Command(BaseCommand):
    help = "Create the demo chatbot with a small shop FAQ on the builtin endpoint."

    def handle(self, *args, **options) -> None:
        chatbot = demo_load()
        self.stdout.write(f"Demo chatbot “{chatbot.public_id}” ready.")
