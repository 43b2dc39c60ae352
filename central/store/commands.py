"""``kuzet central store status|migrate|retention``: the administrator's view of the store that ``[store]``
selects (the embedded SQLite file, or PostgreSQL), printed as JSON for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from kuzet.central.store.backend import open_store
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
    store = open_store(config.store, data_dir)  # opening migrates and creates the coming partitions
    try:
        report = store.describe()
        if args.store_action == "retention":
            if store.backend != "postgresql":
                print(
                    "retention by partitions is PostgreSQL's; SQLite's runs inside central", file=sys.stderr
                )
                return 2
            cutoff = timeutil.to_wire(timeutil.utc_now() - timedelta(days=config.storage.retention_days))
            dropped = store.drop_expired_partitions(cutoff)
            report = {"cutoff": cutoff, "dropped": [d.__dict__ for d in dropped]}
        print(json.dumps(report, indent=2))
        return 0
    finally:
        store.close()
