"""Who may do what, for `ourvoice principal`, `ourvoice staff` and `ourvoice
subscribers`: tokens of principals, named accounts of the people who work cases, and
office systems' broker users. None of them belongs to one service."""

from __future__ import annotations

import sys

from shared.settings import settings


def principal(args) -> int:
    from datetime import timedelta
    from uuid import UUID

    from shared import access
    from shared.db import Database
    from shared.offices import describe

    db = Database(max_size=1)
    try:
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
