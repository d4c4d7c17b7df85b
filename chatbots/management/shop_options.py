"""The --shop / --create-shop options the import commands share."""

from __future__ import annotations

from django.core.management.base import CommandParser


def add_shop_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--shop",
        metavar="SLUG",
        help="The shop the chatbots belong to (may be left out when there is only one).",
    )
    parser.add_argument(
        "--create-shop",
        metavar="NAME",
        default="",
        help="Create the --shop shop under this name if it does not exist yet.",
    )
