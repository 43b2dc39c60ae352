"""Every word of the watchlist an operator reads goes through ``_``/``ngettext`` and has its Russian and Kazakh
translation in translations_ru_kk.po-fragment, for the merger's catalogues."""

from __future__ import annotations

import ast
import re
from pathlib import Path

WATCHLIST = Path(__file__).resolve().parents[2] / "central" / "watchlist"
TEMPLATE_CALL = re.compile(r"""(?<![\w.])_\(\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def marked() -> set[str]:
    found = set()
    for path in WATCHLIST.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "ngettext")
            ):
                found.add(node.args[0].value)
    for path in (WATCHLIST / "templates").glob("*.html"):
        found |= {ast.literal_eval(m.group(1)) for m in TEMPLATE_CALL.finditer(path.read_text())}
    return found


def catalogue(language: str) -> dict[str, str]:
    text = (WATCHLIST / "translations_ru_kk.po-fragment").read_text()
    section = text.split(f"# ---- {language} ----")[1].split("# ---- ")[0]
    entries = {}
    for block in section.strip().split("\n\n")[1:]:
        msgid = ast.literal_eval(re.search(r"^msgid (\".*\")$", block, re.M).group(1))
        entries[msgid] = ast.literal_eval(re.search(r"^msgstr(?:\[0\])? (\".*\")$", block, re.M).group(1))
    return entries


def test_every_marked_string_has_a_russian_and_a_kazakh_translation():
    words = marked()
    assert "Possible match" in words and "Watchlist" in words
    for language, alphabet in (("ru", "[А-Яа-яЁё]"), ("kk", "[А-Яа-яӘәҒғҚқҢңӨөҰұҮүҺһІі]")):
        translated = catalogue(language)
        assert words <= set(translated), sorted(words - set(translated))
        for msgid, msgstr in translated.items():
            assert re.search(alphabet, msgstr), (language, msgid)
            placeholders = re.compile(r"%\(\w+\)\w")
            assert sorted(placeholders.findall(msgid)) == sorted(placeholders.findall(msgstr)), (
                language,
                msgid,
            )
