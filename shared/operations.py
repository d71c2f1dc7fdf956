"""What a service offers the people who operate it, declared by the service and found
by the `ourvoice` command, which knows the services; this kernel knows none of them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """`ourvoice <name> ...`: `arguments` adds the command's own arguments (or
    sub-commands) to its parser; `run` does it and returns the exit status."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
