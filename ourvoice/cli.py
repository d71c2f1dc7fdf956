"""The `ourvoice` command for operators."""

from __future__ import annotations

import argparse
import os
import sys

from shared.config import SERVICES, check_production
from shared.settings import command as config_command

# The commands of the whole system; the others are the services' own, found through the
# registry, which imports every service (a couple of seconds): only done when one of
# theirs, or the help, is asked for.
OWN = ("setup", "migrate", "principal", "staff", "subscribers", "audit", "projections", "config", "run")


def main(argv: list[str] | None = None) -> int:
    from shared.access import ROLES

    argv = sys.argv[1:] if argv is None else argv
    asked = next((arg for arg in argv if not arg.startswith("-")), None)
    if asked in OWN:
        offered_commands = []
    else:
        from ourvoice import registry

        offered_commands = registry.commands()

    parser = argparse.ArgumentParser(prog="ourvoice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create the database, tables, exchanges and queues")
    migrating = commands.add_parser(
        "migrate", help="bring the tables up to date; `migrate status`: what is applied, "
        "what is pending (exit 1 if any is)")
    migrating.add_argument("action", nargs="?", choices=("up", "status"), default="up")
    principals = commands.add_parser("principal", help="tokens for staff, ombudsmen, auditors, admins")
    actions = principals.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a principal and print its token (last line)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--office", help="office id, for staff and ombudsmen (e.g. owso-1201)")
    create.add_argument("--days", type=int, default=365, help="how long the token is valid")
    revoke = actions.add_parser("revoke", help="revoke a principal's token at once")
    revoke.add_argument("principal_id")
    staffing = commands.add_parser("staff", help="named accounts of staff, ombudsmen, "
                                   "auditors and admins, who log in with a password")
    staff_actions = staffing.add_subparsers(dest="action", required=True)
    adding_staff = staff_actions.add_parser(
        "add", help="make an account; print its one-time password (last line)")
    adding_staff.add_argument("--name", required=True, help="the person's name, as shown")
    adding_staff.add_argument("--username", required=True)
    adding_staff.add_argument("--office", help="office id, for staff and ombudsmen (e.g. owso-1201)")
    adding_staff.add_argument("--role", required=True, choices=ROLES)
    adding_staff.add_argument("--totp", action="store_true",
                              help="with a second factor (TOTP), printed as an otpauth URI")
    staff_actions.add_parser("list", help="every account, its role, office and state")
    disabling = staff_actions.add_parser("disable", help="disable an account; its sessions end")
    disabling.add_argument("username")
    resetting = staff_actions.add_parser(
        "reset-password", help="a new one-time password (last line); the sessions end")
    resetting.add_argument("username")
    requiring = staff_actions.add_parser(
        "require-totp", help="the roles whose accounts need a second factor (TOTP) to log in")
    requiring.add_argument("--roles", required=True,
                           help="comma-separated, e.g. ombudsman,admin (empty: none)")
    offered = {}
    for command in offered_commands:  # what each service offers its operators
        command.arguments(commands.add_parser(command.name, help=command.help))
        offered[command.name] = command.run
    subscribing = commands.add_parser(
        "subscribers", help="office systems' broker users, each consuming a queue of its own")
    subscriber_actions = subscribing.add_subparsers(dest="action", required=True)
    adding_subscriber = subscriber_actions.add_parser(
        "add", help="make a user and its queue ourvoice.subscriber.NAME; print the password "
        "(last line)")
    adding_subscriber.add_argument("name")
    adding_subscriber.add_argument(
        "--bind", action="append", default=[], metavar="KEY",
        help="an area's routing keys: *.12.1201 (a district), *.12.* (a province), "
        "CaseRouted.12.* (one event type); again for more")
    adding_subscriber.add_argument(
        "--ombudsman", action="store_true",
        help="may also bind sensitive cases' events: *.sensitive.12.1201, *.sensitive.12.*")
    adding_subscriber.add_argument(
        "--checkpoints", action="store_true",
        help="also (or only) the hash chains' signed checkpoints, for auditors' systems")
    subscriber_actions.add_parser("list", help="the subscribers, their queues and bindings")
    removing_subscriber = subscriber_actions.add_parser(
        "remove", help="delete a subscriber's user and queue")
    removing_subscriber.add_argument("name")
    audit = commands.add_parser("audit", help="case histories and the stores' hash chains")
    audit_actions = audit.add_subparsers(dest="action", required=True)
    history = audit_actions.add_parser(
        "history", help="every event of a case from every service, who did it, the state after")
    history.add_argument("tracking_code")
    history.add_argument("--as-of", metavar="TIME", help="the case as it stood then (ISO 8601;"
                         " without an offset, a time in --zone)")
    history.add_argument("--zone", default="Asia/Phnom_Penh",
                         help="the time zone of --as-of and of the times shown "
                         "(default Asia/Phnom_Penh)")
    history.add_argument("--json", action="store_true", help="for machines")
    verifying = audit_actions.add_parser(
        "verify", help="check every hash chain; exit 1 naming the first broken link")
    verifying.add_argument("--against", metavar="CHECKPOINT_FILE",
                           help="a signed checkpoint the chains must still pass through")
    verifying.add_argument("--public-key", help="the key the checkpoint must be signed with "
                           "(base64; default: this deployment's, from OURVOICE_CHECKPOINT_KEY)")
    checkpointing = audit_actions.add_parser(
        "checkpoint", help="sign every chain's head, print it (JSON) and publish it on "
        "ourvoice.audit")
    checkpointing.add_argument("--out", metavar="FILE", help="also write it to this file")
    checkpointing.add_argument("--no-publish", action="store_true",
                               help="do not publish it to the broker")
    audit_actions.add_parser("public-key", help="the key checkpoints are verified with (base64)")
    projections = commands.add_parser("projections", help="read models: rebuild and status")
    projection_actions = projections.add_subparsers(dest="action", required=True)
    rebuilding = projection_actions.add_parser(
        "rebuild", help="rebuild read models from events beside the live ones, then swap")
    rebuilding.add_argument("names", nargs="*", metavar="NAME")
    rebuilding.add_argument("--all", action="store_true", help="every read model")
    rebuilding.add_argument("--check", action="store_true",
                            help="compare with the live model row for row, and keep the live one")
    projection_actions.add_parser("status", help="each read model's position and lag")
    config_command.arguments(commands.add_parser(config_command.name, help=config_command.help))
    run_parser = commands.add_parser("run", help="run services as separate processes")
    run_parser.add_argument("services", nargs="*", metavar="SERVICE",
                            help=f"any of {', '.join(SERVICES)} (default: all)")
    args = parser.parse_args(argv)
    if args.command == config_command.name:
        return config_command.run(args)  # it names every problem, and starts nothing
    check_production()  # the same check as every service's, before touching anything
    unknown = set(getattr(args, "services", [])) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if args.command == "run":
        from ourvoice.supervisor import run

        return run(args.services or list(SERVICES))
    try:
        return operate(args, offered)
    except Exception as error:
        if not isinstance(error, unreachable_errors()):
            raise
        print(f"the database cannot be used: {unreachable(error)}", file=sys.stderr)
        return 1


def operate(args: argparse.Namespace, offered: dict) -> int:
    """An operator's command on the database and broker: every one but `migrate` first
    brings the schema up to date, as a service does when it starts, so that a command
    never meets a table its migration has not made yet."""
    if args.command == "migrate":
        from ourvoice.setup import migrate

        return migrate(args)
    if args.command == "setup":
        from ourvoice.setup import setup

        setup()
        print("database, tables, exchanges, queues and the services' broker users are in place")
        return 0
    from ourvoice.setup import migrate_all

    migrate_all()
    if args.command in offered:
        return offered[args.command](args)
    return operations()[args.command](args)


def unreachable_errors() -> tuple[type[Exception], ...]:
    """What a database that is not there, not reachable or refuses us raises: psycopg's
    own, the pool's when no connection can be made, eventsourcing's around psycopg's."""
    import psycopg
    import psycopg_pool
    from eventsourcing.persistence import OperationalError

    return psycopg.OperationalError, psycopg_pool.PoolTimeout, OperationalError


def unreachable(error: Exception) -> str:
    """Which database, and psycopg's reason in one line (never the password)."""
    from shared.config import Postgres

    pg = Postgres.from_env()
    reason = " ".join(str(error).split()) or type(error).__name__
    return f"{pg.dbname} at {pg.host}:{pg.port} as {pg.user}: {reason}"


def operations() -> dict:
    """The commands of the whole system, by name (the services' own are in the registry)."""
    from ourvoice import access, chains, projections
    from ourvoice.audit import command as history

    def audit(args) -> int:
        return {"history": history, "verify": chains.verify, "checkpoint": chains.make_checkpoint,
                "public-key": chains.public_key}[args.action](args)

    return {"principal": access.principal, "staff": access.staff,
            "subscribers": access.subscribers, "audit": audit, "projections": projections.command}


if __name__ == "__main__":
    sys.exit(main())
