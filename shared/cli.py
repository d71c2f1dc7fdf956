"""The `ourvoice` command for operators."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time

from shared.config import SERVICES, check_production
from shared.settings import command as config_command
from shared.settings import settings


def service_command(service: str) -> list[str]:
    """The one command that runs a service: used by `ourvoice run`, the tests and the image."""
    return [sys.executable, "-m", f"services.{service}"]


def setup() -> None:
    """Create the database, every service's tables, the broker's exchanges and queues and
    each service's broker user, so that services started together find them in place."""
    import kombu

    from shared import access, accounts, broker, topology
    from shared.db import FOLLOWERS_DDL, Database, DatabaseProvider
    from shared.store import EventStore, open_store

    ddl, stores = [FOLLOWERS_DDL, *access.DDL, *accounts.DDL], []
    for name in SERVICES:
        service = importlib.import_module(f"services.{name}.service").Service
        for provider in vars(service).values():
            if isinstance(provider, DatabaseProvider):
                ddl.extend(provider.ddl)
            elif isinstance(provider, EventStore):
                stores.append(provider.store_class)
                ddl.extend(d for projection in provider.projections for d in projection.ddl)
    db = Database(max_size=1)
    db.migrate(*ddl)
    db.close()
    for store_class in stores:
        open_store(store_class).close()
    with kombu.Connection(settings().amqp_uri) as connection:
        topology.declare(connection.default_channel)
    broker.put_service_users()


def subscribers(args) -> int:
    """Office systems' broker users, each allowed to consume one queue of its own that the
    operator binds to `ourvoice.events` for an area."""
    import secrets

    import kombu

    from shared import broker, topology

    admin = broker.admin()
    if args.action == "list":
        permissions = admin.permissions()
        for user in sorted(permissions):
            name = user.removeprefix(broker.SUBSCRIBER_PREFIX)
            if name != user and permissions[user] == broker.subscriber_permissions(name):
                queue = topology.subscriber_queue_name(name)
                print(f"{name:<24} {user:<40} {queue}  {' '.join(admin.bindings(queue))}")
        return 0
    name = args.name
    if not broker.SUBSCRIBER_NAME.match(name):
        print(f"{name!r}: a subscriber's name is lowercase letters, digits and dashes",
              file=sys.stderr)
        return 2
    user, queue = broker.subscriber_user(name), topology.subscriber_queue(
        name, getattr(args, "bind", None) or [], checkpoints=getattr(args, "checkpoints", False))
    if args.action == "remove":
        if user not in admin.users():
            print(f"no subscriber {name}", file=sys.stderr)
            return 1
        admin.delete_user(user)
        with kombu.Connection(settings().amqp_uri) as connection:
            queue(connection.default_channel).delete()
        print(f"subscriber {name} removed: its user and its queue {queue.name}")
        return 0
    problems = [f"{key}: {problem}" for key in args.bind
                if (problem := broker.binding_key_problem(key, ombudsman=args.ombudsman))]
    if not args.bind and not args.checkpoints:
        problems.append("give --bind KEY (an area's events), --checkpoints, or both")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    if user in admin.users():
        print(f"subscriber {name} exists; remove it first to bind it again", file=sys.stderr)
        return 1
    with kombu.Connection(settings().amqp_uri) as connection:
        topology.EVENTS(connection.default_channel).declare()
        topology.AUDIT(connection.default_channel).declare()
        queue(connection.default_channel).declare()
    password = secrets.token_hex(24)
    admin.put_user(user, password)
    admin.set_permissions(user, broker.subscriber_permissions(name))
    bound = [f"{topology.EVENTS.name} with {' '.join(args.bind)}"] if args.bind else []
    bound += [f"{topology.AUDIT.name} (the chains' signed checkpoints)"] if args.checkpoints else []
    print(f"subscriber {name}: broker user {user} may consume only {queue.name}, bound to "
          f"{' and '.join(bound)}; the password is shown once:")
    print(password)
    return 0


def run(services: list[str]) -> int:
    """Start the services as separate processes; Ctrl-C (or SIGTERM) stops them all."""
    setup()
    processes = {name: subprocess.Popen(service_command(name)) for name in services}
    for name in services:
        print(f"{name:<14} http://{settings().address(name)}", flush=True)
    print("Ctrl-C stops them all.", flush=True)

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping the others",
                          file=sys.stderr)
                    stopping = True
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


def principal(args) -> int:
    from datetime import timedelta
    from uuid import UUID

    from shared import access
    from shared.db import Database
    from shared.offices import describe

    db = Database(max_size=1)
    try:
        db.migrate(*access.DDL)
        with db.transaction() as cursor:
            if args.action == "create":
                if args.office and describe(args.office) is None:
                    print(f"no such office: {args.office}", file=sys.stderr)
                    return 2
                try:
                    principal_id, token = access.create_principal(
                        cursor, args.role, args.office, timedelta(days=args.days))
                except ValueError as error:
                    print(error, file=sys.stderr)
                    return 2
                print(f"principal {principal_id} ({args.role}"
                      f"{' of ' + args.office if args.office else ''}), valid {args.days} days;"
                      " the token is shown once:")
                print(token)
                return 0
            try:
                revoked = access.revoke_principal(cursor, UUID(args.principal_id))
            except ValueError:
                revoked = False
            if not revoked:
                print(f"no principal {args.principal_id} to revoke (unknown or already revoked)",
                      file=sys.stderr)
                return 1
            print(f"principal {args.principal_id} revoked")
            return 0
    finally:
        db.close()


def staff(args) -> int:
    """Named accounts of the people who work cases: ombudsmen, office staff, auditors,
    admins. Passwords are shown once, when made, and must be changed at first login."""
    from shared import accounts
    from shared.db import Database

    db = Database(max_size=1)
    try:
        db.migrate(*accounts.DDL)
        with db.transaction() as cursor:
            try:
                if args.action == "list":
                    for row in accounts.every(cursor):
                        state = "disabled" if row["disabled_at"] else \
                            "must change password" if row["must_change_password"] else "active"
                        print(f"{row['username']:<24} {row['role']:<10} "
                              f"{row['office_id'] or '-':<28} {state:<21} "
                              f"{'totp' if row['has_totp'] else '-':<5} {row['name']}")
                    return 0
                if args.action == "disable":
                    if not accounts.disable(cursor, args.username):
                        print(f"no active account {args.username}", file=sys.stderr)
                        return 1
                    print(f"account {args.username} disabled; its sessions have ended")
                    return 0
                if args.action == "require-totp":
                    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
                    missing = accounts.require_totp(cursor, roles)
                    print(f"a second factor is now required of: {', '.join(roles) or 'no role'}")
                    if missing:
                        print("these accounts have none yet and cannot log in until their "
                              f"password is reset (which sets one up): {', '.join(missing)}")
                    return 0
                if args.action == "add":
                    issued = accounts.add(cursor, username=args.username, name=args.name,
                                          role=args.role, office_id=args.office, totp=args.totp)
                    print(f"account {args.username} ({args.role}"
                          f"{' of ' + args.office if args.office else ''}) added")
                else:
                    issued = accounts.reset_password(cursor, args.username)
                    print(f"account {args.username}: password reset, its sessions have ended")
            except accounts.AccountError as error:
                print(error, file=sys.stderr)
                return 2
            if issued.otpauth_uri:
                print("the second factor, to scan into an authenticator app (shown once):")
                print(issued.otpauth_uri)
            print("the one-time password, to be changed at first login, is shown once:")
            print(issued.one_time_password)
            return 0
    finally:
        db.close()


def directory_import(path: str) -> int:
    """Record the amendments in an operator's CSV file as events of the directory."""
    from eventsourcing.application import AggregateNotFoundError

    from services.routing.directory import (
        DIRECTORY_ID,
        Directory,
        amended,
        base_directory,
        read_amendments,
    )
    from services.routing.service import Routing
    from shared.store import open_store

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
        print(f"{len(amendments)} office(s) amended; routing applies them within a second")
        return 0
    finally:
        store.close()


def privacy_erase(tracking_code: str) -> int:
    """Crypto-shred a citizen's name, phone and email: their case's key is destroyed."""
    from services.intake.privacy import erase_personal_data

    done, what = erase_personal_data(tracking_code, erased_by="operator")
    print(what, file=sys.stdout if done else sys.stderr)
    return 0 if done else 1


def main(argv: list[str] | None = None) -> int:
    from shared.access import ROLES

    parser = argparse.ArgumentParser(prog="ourvoice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="create the database, tables, exchanges and queues")
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
    directory = commands.add_parser("directory", help="the office directory")
    directory_actions = directory.add_subparsers(dest="action", required=True)
    importing = directory_actions.add_parser(
        "import", help="amend the directory from a CSV file (office_id, kind, area, name_en, "
        "name_km, merged_into, address, phone, email, active)")
    importing.add_argument("file")
    privacy = commands.add_parser("privacy", help="citizens' personal data")
    privacy_actions = privacy.add_subparsers(dest="action", required=True)
    erase = privacy_actions.add_parser(
        "erase", help="destroy a case's key so its name, phone and email can never be read again")
    erase.add_argument("tracking_code")
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
    webhooks = commands.add_parser("webhooks", help="office systems' webhooks and dead letters")
    webhook_actions = webhooks.add_subparsers(dest="action", required=True)
    adding = webhook_actions.add_parser(
        "add", help="POST every public event of an area or office to a URL, signed")
    adding.add_argument("--url", required=True)
    adding.add_argument("--secret", help="shared secret for the signature (made and shown once "
                        "if not given)")
    target = adding.add_mutually_exclusive_group(required=True)
    target.add_argument("--area", help="province, district or commune code (12, 1201, 120101)")
    target.add_argument("--office", help="office id (e.g. owso-1201)")
    webhook_actions.add_parser("list", help="the registered webhooks")
    removing = webhook_actions.add_parser("remove", help="stop sending to a webhook")
    removing.add_argument("webhook_id")
    dead = webhook_actions.add_parser(
        "dead-letters", help="deliveries given up after their last try (every channel)")
    dead.add_argument("--retry", metavar="DELIVERY_ID", help="queue this one again")
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
    if args.command == "principal":
        return principal(args)
    if args.command == "staff":
        return staff(args)
    if args.command == "directory":
        return directory_import(args.file)
    if args.command == "subscribers":
        return subscribers(args)
    if args.command == "webhooks":
        from services.notifications.webhooks import command

        return command(args)
    if args.command == "audit":
        from services.reporting.commands import command as audit_command

        return audit_command(args)
    if args.command == "projections":
        from shared.rebuild import command as projections_command

        return projections_command(args)
    if args.command == "privacy":
        return privacy_erase(args.tracking_code)
    if args.command == "setup":
        setup()
        print("database, tables, exchanges, queues and the services' broker users are in place")
        return 0
    return run(args.services or list(SERVICES))


if __name__ == "__main__":
    sys.exit(main())
