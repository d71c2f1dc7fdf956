"""What operators do with routing: `ourvoice directory import FILE`."""

from __future__ import annotations

import argparse
import sys

from shared.operations import Command


def _directory_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    importing = actions.add_parser(
        "import", help="amend the directory from a CSV file (office_id, kind, area, name_en, "
        "name_km, merged_into, address, phone, email, active)")
    importing.add_argument("file")


def directory(args: argparse.Namespace) -> int:
    """Record the amendments in an operator's CSV file as events of the directory."""
    from eventsourcing.application import AggregateNotFoundError

    from services.routing.application import Routing
    from services.routing.directory import (
        DIRECTORY_ID,
        Directory,
        amended,
        base_directory,
        read_amendments,
    )
    from shared.store import open_store

    path = args.file
    store = open_store(Routing)
    try:
        try:
            directory = store.repository.get(DIRECTORY_ID)
        except AggregateNotFoundError:
            directory = Directory()
        current = amended(base_directory(), directory.amendments)
        with open(path, encoding="utf-8-sig") as file:
            amendments, errors = read_amendments(file.read(), current)
        if errors:
            for error in errors:
                print(f"{path}: {error}", file=sys.stderr)
            print("nothing was recorded", file=sys.stderr)
            return 2
        for office_id, changes in amendments.items():
            directory.amend(office_id=office_id, changes=changes, by="operator")
        store.record(directory)
        print(f"{len(amendments)} office(s) amended; routing applies them within two seconds")
        return 0
    finally:
        store.close()


COMMANDS = (Command("directory", "the office directory", _directory_arguments, directory),)
