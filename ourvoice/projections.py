"""`ourvoice projections status` and `rebuild`: every read model the services declare,
found through the registry, rebuilt with the generic machinery of `shared.rebuild`."""

from __future__ import annotations

import time
from collections.abc import Callable

from psycopg import sql

from ourvoice import registry
from shared.db import Database
from shared.logs import StoreLog
from shared.rebuild import Outcome, existing_stores, rebuild, rebuild_subscriber
from shared.store import CaseStore, Projection, Subscriber


def read_models() -> dict[str, tuple[type[CaseStore] | None, Projection | Subscriber]]:
    """Name -> (the store it follows, or None when fed by the broker; the model)."""
    found: dict[str, tuple[type[CaseStore] | None, Projection | Subscriber]] = {
        projection.name: (store, projection) for store, projection in registry.projections()}
    found |= {subscriber.name: (None, subscriber) for subscriber in registry.subscribers()}
    return dict(sorted(found.items()))


def status(db: Database) -> list[dict]:
    """Each read model's position and how far behind its events it is: a subscriber's,
    of the events its service's queue is bound to."""
    from shared.topology import TAKES

    rows = []
    with db.transaction() as cursor:
        stores = [store.name for store in existing_stores(db, list(registry.stores().values()))]
        heads = {}
        for store in stores:
            cursor.execute(sql.SQL("SELECT coalesce(max(notification_id), 0) AS head FROM {}")
                           .format(sql.Identifier(f"{store}_events")))
            heads[store] = cursor.fetchone()["head"]
        for name, (store, model) in read_models().items():
            if store is not None:
                cursor.execute("SELECT position FROM ourvoice_followers WHERE name = %s",
                               (f"projection:{name}",))
                found = cursor.fetchone()
                position = found["position"] if found else 0
                cursor.execute(sql.SQL("SELECT count(*) AS n FROM {} WHERE notification_id > %s")
                               .format(sql.Identifier(f"{store.name}_events")), (position,))
                rows.append({"name": name, "fed_by": f"{store.name} log", "position": position,
                             "head": heads.get(store.name, 0), "behind": cursor.fetchone()["n"]})
                continue
            taken = r"\.(" + "|".join(TAKES[model.consumer]) + ")$"
            published = {}
            for source in stores:
                cursor.execute(sql.SQL("SELECT count(*) AS n FROM {} WHERE topic ~ %s")
                               .format(sql.Identifier(f"{source}_events")), (taken,))
                published[source] = cursor.fetchone()["n"]
            cursor.execute(sql.SQL("SELECT application_name AS store, count(*) AS n"
                                   " FROM {} GROUP BY 1")
                           .format(sql.Identifier(f"{model.consumer}_tracking")))
            applied = {r["store"]: r["n"] for r in cursor.fetchall()}
            rows.append({"name": name, "fed_by": "public events",
                         "position": sum(applied.get(s, 0) for s in stores),
                         "head": sum(published.values()),
                         "behind": sum(max(published[s] - applied.get(s, 0), 0) for s in stores),
                         "per_store": {s: {"applied": applied.get(s, 0),
                                           "published": published[s]} for s in stores}})
    return rows


def rebuild_model(db: Database, name: str, *, swap: bool,
                  progress: Callable[[int], None] | None = None) -> Outcome:
    store, model = read_models()[name]
    if store is None:
        return rebuild_subscriber(db, model, list(registry.stores().values()), swap=swap,
                                  progress=progress)
    return rebuild(db, StoreLog(db, store), model, swap=swap, progress=progress)


def expected_events(db: Database, name: str) -> int:
    """Roughly how many events a rebuild replays, for its progress bar."""
    for row in status(db):
        if row["name"] == name:
            return row["position"]
    return 0


def command(args) -> int:
    """`projections status` and `projections rebuild [NAME...|--all] [--check]`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
    from rich.text import Text

    class EventsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} events/s" if speed else "… events/s")

    console = Console()
    db = Database(max_size=2)
    try:
        models = read_models()
        if args.action == "status":
            table = Table("read model", "fed by", "position", "of", "behind")
            for row in status(db):
                table.add_row(row["name"], row["fed_by"], f"{row['position']:,}",
                              f"{row['head']:,}", f"{row['behind']:,}")
            console.print(table)
            from shared.chain import relay_alarms

            with db.transaction() as cursor:
                alarms = relay_alarms(cursor)
            for store, notification_id, reason, since in alarms:
                console.print(f"relay {store}: STOPPED at notification {notification_id} since "
                              f"{since.isoformat(timespec='seconds')}: {reason}", style="red",
                              soft_wrap=True)
            return 1 if alarms else 0
        names = list(models) if args.all else args.names
        unknown = [n for n in names if n not in models]
        if unknown or not names:
            console.print(f"name read models to rebuild, or --all; known: {', '.join(models)}"
                          if not unknown else f"no such read model: {', '.join(unknown)}",
                          style="red")
            return 2
        failed = False
        for name in names:
            expected = expected_events(db, name)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          EventsPerSecond(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task(name, total=expected or None)
                started = time.monotonic()
                outcome = rebuild_model(db, name, swap=not args.check,
                                        progress=lambda n, task=task: bar.advance(task, n))
                bar.update(task, total=max(expected, outcome.events), completed=outcome.events)
            seconds = time.monotonic() - started
            differing = sum(outcome.differences.values())
            rate = outcome.events / seconds if seconds else 0.0
            verb = "compared with" if args.check else "swapped in for"
            tables = ", ".join(f"{t}: {n}" for t, n in outcome.differences.items() if n)
            console.print(f"{name}: {outcome.events:,} events replayed in {seconds:.1f} s "
                          f"({rate:,.0f} events/s), {verb} the live model; "
                          + (f"{differing} rows differed ({tables})" if differing
                             else "the same row for row"), soft_wrap=True)
            failed = failed or (args.check and differing > 0)
        return 1 if failed else 0
    finally:
        db.close()
