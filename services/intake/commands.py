"""What operators do with intake: `ourvoice privacy erase TRACKING_CODE`."""

from __future__ import annotations

import argparse
import sys

from shared.operations import Command


def _privacy_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    erase = actions.add_parser(
        "erase", help="destroy a case's key so its name, phone and email can never be read again")
    erase.add_argument("tracking_code")


def privacy(args: argparse.Namespace) -> int:
    """Crypto-shred a citizen's name, phone and email: their case's key is destroyed."""
    from services.intake.privacy import erase_personal_data

    done, what = erase_personal_data(args.tracking_code, erased_by="operator")
    print(what, file=sys.stdout if done else sys.stderr)
    return 0 if done else 1


COMMANDS = (Command("privacy", "citizens' personal data", _privacy_arguments, privacy),)
