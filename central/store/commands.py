"""``kuzet central store status|migrate|retention``: the administrator's view of the store that ``[store]``
selects (the embedded SQLite file, or PostgreSQL), printed as JSON for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

from kuzet.shared import timeutil


def add_arguments(actions) -> None:
    store = actions.add_parser("store", help="the database [store] selects: status, migrations, partitions")
    store.add_argument(
        "store_action",
        choices=["status", "migrate", "retention"],
        help="status: engine, schema version, nearest-unit method, partitions; migrate: bring the schema to "
        "the newest version and create the coming months' partitions; retention (PostgreSQL): drop the "
        "months older than [storage] retention_days, keeping held events",
    )


def store_command(config, data_dir, args: argparse.Namespace) -> int:
    # Imported here: `kuzet --help` builds this parser on a camera too, which has no central dependencies.
    from kuzet.central.auth import audit
    from kuzet.central.store import retention
    from kuzet.central.store.backend import open_store
    from kuzet.central.store.objects import open_objects

    store = open_store(config.store, data_dir)  # opening migrates and creates the coming partitions
    # Retention audits what it removes: with central's audit key, which never lives on the database server.
    audit.use_key_file(
        config.store.url or Path(data_dir) / "kuzet.db", Path(data_dir) / config.storage.audit_key_file
    )
    try:
        report = store.describe()
        if args.store_action == "retention":
            if store.backend != "postgresql":
                print(
                    "retention by partitions is PostgreSQL's; SQLite's runs inside central", file=sys.stderr
                )
                return 2
            cutoff = timeutil.to_wire(timeutil.utc_now() - timedelta(days=config.storage.retention_days))
            objects = open_objects(config.media, Path(data_dir) / "media", Path(data_dir))
            dropped, removed = retention.run_on_postgresql(
                store,
                objects,
                retention_days=config.storage.retention_days,
                max_media_gb=config.storage.max_media_gb,
            )
            report = {
                "cutoff": cutoff,
                "dropped": [d.__dict__ for d in dropped],
                "removed": removed.as_dict(),
            }
        print(json.dumps(report, indent=2))
        return 0
    finally:
        store.close()
