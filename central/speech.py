"""The language of what central's command line prints for a person at the centre (accounts, tokens, the audit
log's, the evidence's and the media's checks): the page's catalogues (central/web/translations), in the language
the shell asks for (``LC_ALL``, ``LC_MESSAGES`` or ``LANG``: ``ru_RU.UTF-8``, as gettext programs read it) when
it is Russian, Kazakh or English, else the site's (``[site] language``). Output for scripts (JSON) and for
technicians (``kuzet central store``, ``kuzet provision``) stays English: docs/web.md."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

LANGUAGES = ("ru", "kk", "en")
CATALOGUES = Path(__file__).resolve().parent / "web" / "translations"


def chosen(site_language: str, environ: Mapping[str, str] = os.environ) -> str:
    """The shell's language if it is one of ours, else the site's: the first of LC_ALL, LC_MESSAGES and LANG
    that is set decides, as for any gettext program (C or POSIX: the site's)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            code = value.split(".")[0].split("_")[0].lower()
            return code if code in LANGUAGES else site_language
    return site_language


@contextmanager
def speaking(language: str) -> Iterator[None]:
    """Within it, Flask-Babel's gettext (and the lazy strings of central/auth's errors) speak ``language``."""
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    Babel(app, locale_selector=lambda: language, default_translation_directories=str(CATALOGUES))
    with app.app_context():
        yield
