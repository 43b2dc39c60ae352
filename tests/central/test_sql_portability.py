"""The page, the watchlist and the page's store modules run on either store (SQLite or PostgreSQL): checked
statically (ast over the source, as tests/test_architecture.py), so that no sqlite-utils or sqlite3 call on the
database comes back into them. Their SQL goes through ``central.store.portable`` or a store module that does."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Everything under these folders, and these files.
FOLDERS = ("central/web", "central/watchlist")
FILES = (
    "central/store/incidents.py",
    "central/store/integrity.py",
    "central/store/queries.py",
    "central/store/response_cache.py",
    "central/store/response_times.py",
    "central/store/shift_log.py",
    "central/auth/preferences.py",
)
SQLITE_MODULES = {"sqlite3", "sqlite_utils"}
# A connection's or a sqlite-utils Database's own ways to run SQL or hold a transaction.
DATABASE_METHODS = {
    "query",
    "execute",
    "executemany",
    "executescript",
    "table",
    "insert",
    "insert_all",
    "upsert",
    "upsert_all",
    "rows_where",
    "delete_where",
    "atomic",
    "commit",
    "rollback",
}
PORTABLE = "portable"  # ``from kuzet.central.store import portable``: the one receiver allowed those methods


def covered() -> list[Path]:
    paths = [path for folder in FOLDERS for path in sorted((REPO / folder).rglob("*.py"))]
    return paths + [REPO / name for name in FILES]


def _is_db(node: ast.AST) -> bool:
    """``db`` or ``….db()`` (``central().db()``, ``services().central.db()``)."""
    if isinstance(node, ast.Name):
        return node.id == "db"
    return isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "db"


def sqlite_only_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) for each use of SQLite's own API in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}")
                for a in node.names
                if a.name.split(".")[0] in SQLITE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SQLITE_MODULES:
            found.append((node.lineno, f"from {node.module} import"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr in DATABASE_METHODS and not (
                isinstance(receiver, ast.Name) and receiver.id == PORTABLE
            ):
                found.append((node.lineno, f".{node.func.attr}(...)"))
        elif isinstance(node, ast.Attribute) and node.attr == "conn":
            found.append((node.lineno, ".conn"))
        elif isinstance(node, ast.Subscript) and _is_db(node.value):
            found.append((node.lineno, "db[table]"))
    return found


def test_the_check_finds_sqlite_utils_calls():
    bad = """
import sqlite_utils
def f(central, db):
    db.query("SELECT 1")
    central().db()["events"].insert({})
    with db.conn:
        db.execute("DELETE FROM events")
    db.atomic()
"""
    assert sorted(sqlite_only_calls(bad)) == [
        (2, "import sqlite_utils"),
        (4, ".query(...)"),
        (5, ".insert(...)"),
        (5, "db[table]"),
        (6, ".conn"),
        (7, ".execute(...)"),
        (8, ".atomic(...)"),
    ]
    assert (
        sqlite_only_calls("from kuzet.central.store import portable\nportable.execute(db, 'SELECT 1')") == []
    )


@pytest.mark.parametrize("path", covered(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_sqlite_only_call_on_the_database(path):
    found = sqlite_only_calls(path.read_text())
    assert not found, (
        f"{path.relative_to(REPO)} uses SQLite's own API, which a PostgreSQL connection lacks: "
        + ", ".join(f"line {line}: {what}" for line, what in found)
        + " (use central.store.portable or a store module)"
    )
