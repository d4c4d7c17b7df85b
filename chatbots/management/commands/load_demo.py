"""Load (or refresh) the demo chatbot; safe to run on every start."""

from django.core.management.base import BaseCommand

from chatbots.demo import demo_allow_origin, demo_flowise_load, demo_load


class Command(BaseCommand):
    help = "Create the demo chatbot with a small shop FAQ on the builtin endpoint."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--flowise-url",
            default="",
            help="Also create `demo-flowise` answering from this Flowise.",
        )

        parser.add_argument(
            "--origin", action="append", default=[], help="Allow the demo bots on this origin too."
        )

    def handle(self, *args, **options) -> None:
        chatbot = demo_load()
        for origin in options["origin"]:
            demo_allow_origin(origin=origin)
        self.stdout.write(f"Demo chatbot “{chatbot.public_id}” ready.")
        if options["flowise_url"]:
            other = demo_flowise_load(base_url=options["flowise_url"])
            self.stdout.write(f"Demo chatbot “{other.public_id}” ready ({options['flowise_url']}).")
            for origin in options["origin"]:
                demo_allow_origin(origin=origin)
