"""`python -m config.daphne <daphne's arguments>`: Daphne, on the event loop EVENT_LOOP names.

Daphne makes its loop when `daphne.server` is imported (Twisted's asyncio reactor runs on it),
so the loop policy is set here first; everything else is Daphne's own command line.
"""

from __future__ import annotations


def main() -> None:
    from config.event_loop import install_policy

    install_policy()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
