"""What the demo achieved, counted from central's own database (not from anyone's say-so)."""

from __future__ import annotations

from pathlib import Path

from kuzet.central.store.schema import open_database

ANSWERED = ("acknowledged", "en_route", "on_scene", "resolved")


def count(db_path: Path) -> dict[str, int]:
    db = open_database(db_path)
    try:
        one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "events": one("select count(*) from events"),
            "clips": one("select count(*) from clips where state = 'verified' and purpose = 'event'"),
            "dispatches": one("select count(*) from dispatches"),
            "acknowledged": one(
                "select count(distinct dispatch_id) from dispatch_log where state in "
                f"({', '.join(repr(s) for s in ANSWERED)})"
            ),
            "dead_letters": one("select count(*) from dead_letters"),
        }
    finally:
        db.close()


def succeeded(result: dict[str, int]) -> bool:
    return (
        result["events"] > 0 and result["clips"] > 0 and result["acknowledged"] > 0 and result["errors"] == 0
    )
