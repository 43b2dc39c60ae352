"""Where the unit board, the map's dispatching and the tiles take their words for operators: ``_`` and
``ngettext``, identity functions for now, also registered as Jinja globals. The languages work (Flask-Babel
with ru/kk/en catalogues) replaces this module; wrapping every string now means nothing is left to find."""

from __future__ import annotations

from flask import Flask


def _(text: str, **values) -> str:
    return text % values if values else text


def ngettext(singular: str, plural: str, number: int, **values) -> str:
    text = singular if number == 1 else plural
    return text % {"num": number, **values}


def install(app: Flask) -> None:
    # setdefault: where Flask-Babel is installed first, its functions win.
    app.jinja_env.globals.setdefault("_", _)
    app.jinja_env.globals.setdefault("ngettext", ngettext)
