"""Which store central runs on, from ``[store]``: the embedded SQLite file in the data directory when ``url``
is empty, PostgreSQL when it is a ``postgresql://`` URL. Both offer the same face (``SqliteStore``,
``PostgresStore``)."""

from __future__ import annotations

from pathlib import Path

from kuzet.central.config import StoreSection


class StoreUnavailable(RuntimeError):
    """The PostgreSQL server of ``[store] url`` cannot be reached or refuses the log-in; the message says
    where and why (without the password)."""


def open_store(section: StoreSection, data_dir: Path):
    """The store, opened: its schema brought to the newest version. ``StoreUnavailable`` if PostgreSQL's
    server cannot be reached within the pool's 30 s."""
    if not section.url:
        from kuzet.central.store.sqlite import SqliteStore

        return SqliteStore(Path(data_dir) / "kuzet.db").open()
    # Imported only here: a site on SQLite needs no PostgreSQL driver.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from kuzet.central.store.postgres import PostgresStore

    store = PostgresStore(
        section.url,
        pool_min=section.pool_min,
        pool_max=section.pool_max,
        partitions_ahead_months=section.partitions_ahead_months,
    )
    try:
        return store.open()
    except psycopg.OperationalError as exc:  # the pool's timeout is one too
        store.close()
        info = conninfo_to_dict(section.url)
        where = (
            f"{info.get('user', '')}@{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        )
        raise StoreUnavailable(f"cannot open the PostgreSQL store {where} ([store] url): {exc}") from exc
