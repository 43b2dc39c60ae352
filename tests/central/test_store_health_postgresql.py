"""Ingest's rule for PostgreSQL's errors: the server's or the connection's trouble holds the messages (tried
again later), a row's own fault dead-letters it. Real errors from the throw-away cluster."""

from __future__ import annotations

import psycopg
import pytest

from kuzet.central.ingest.store_health import transient


def _raised(conn, sql: str, params=()) -> Exception:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, params)
    return caught.value


def test_a_rows_own_fault_is_not_the_stores_trouble(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert not transient(_raised(conn, "INSERT INTO t VALUES (1)"))  # unique violation, 23505
        assert not transient(_raised(conn, "SELECT 1 / 0"))  # division by zero, 22012


def test_a_connection_ended_by_the_server_is(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as victim, psycopg.connect(postgres_url) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
        admin.commit()
        assert transient(_raised(victim, "SELECT 1"))  # admin shutdown (57P01) or the connection lost
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    assert transient(refused.value)
