"""What each operator chose for their own page: the language, and whether urgent incidents sound and notify.

Kept beside the account in its own table (made on first use), so that the choice follows the operator from
one workstation to the next. On either store's connection (``portable``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kuzet.central.store import portable

LANGUAGES = ("ru", "kk", "en")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS user_preferences (username TEXT PRIMARY KEY, language TEXT,"
    " sound INTEGER NOT NULL DEFAULT 1, notifications INTEGER NOT NULL DEFAULT 1)"
)


@dataclass(frozen=True)
class Preferences:
    language: str | None = None  # None: the site's default language
    sound: bool = True
    notifications: bool = True


def _ensure(db) -> None:
    portable.execute(db, _SCHEMA)


def get(db, username: str) -> Preferences:
    _ensure(db)
    row = portable.execute(
        db, "SELECT language, sound, notifications FROM user_preferences WHERE username = ?", [username]
    ).fetchone()
    if row is None:
        return Preferences()
    return Preferences(language=row[0], sound=bool(row[1]), notifications=bool(row[2]))


def update(db, username: str, **changes) -> Preferences:
    """Change some of the account's preferences; an unknown language is refused (ValueError)."""
    language = changes.get("language")
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    merged = {**asdict(get(db, username)), **changes}
    with portable.transaction(db):
        portable.execute(
            db,
            "INSERT INTO user_preferences (username, language, sound, notifications) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(username) DO UPDATE SET language = excluded.language, sound = excluded.sound,"
            " notifications = excluded.notifications",
            [username, merged["language"], int(merged["sound"]), int(merged["notifications"])],
        )
    return Preferences(**merged)
