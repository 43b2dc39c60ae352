"""Which store central runs on, from ``[store]``: the embedded SQLite file in the data directory when ``url``
is empty, PostgreSQL when it is a ``postgresql://`` URL. Both offer the same face (``SqliteStore``,
``PostgresStore``)."""

from __future__ import annotations

from pathlib import Path

from kuzet.central.config import StoreSection


def open_store(section: StoreSection, data_dir: Path):
    if not section.url:
        from kuzet.central.store.sqlite import SqliteStore

        return SqliteStore(Path(data_dir) / "kuzet.db").open()
    # Imported only here: a site on SQLite needs no PostgreSQL driver.
    from kuzet.central.store.postgres import PostgresStore

    return PostgresStore(
        section.url,
        pool_min=section.pool_min,
        pool_max=section.pool_max,
        partitions_ahead_months=section.partitions_ahead_months,
    ).open()
