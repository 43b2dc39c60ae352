"""What the demo achieved, counted from central's own database (not from anyone's say-so)."""

from __future__ import annotations

from kuzet.central.store import portable

ANSWERED = ("acknowledged", "en_route", "on_scene", "resolved")


def count(db) -> dict[str, int]:
    """``db``: either store's connection (``portable``)."""

    def one(sql: str) -> int:
        return portable.execute(db, sql).fetchone()[0]

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


def succeeded(result: dict[str, int]) -> bool:
    return (
        result["events"] > 0 and result["clips"] > 0 and result["acknowledged"] > 0 and result["errors"] == 0
    )
