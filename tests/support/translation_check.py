"""Finds words on the page that are not wrapped for translation: in templates (text and the attributes people
read) outside ``{{ }}``/``{% %}``, and in scripts (text inside HTML built by a script, and what is handed to
the functions that show text) outside ``T("...")``. Used by tests/central/test_translations.py."""

from __future__ import annotations

import re
import warnings
from html.parser import HTMLParser

WORD = re.compile(r"[^\W\d_]{2,}")
READ_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label"}
# Written as they are in every language: the brands, hash and id prefixes, audit action names.
NOT_WORDS = {"KUZET", "Kuzet", "Leaflet", "sha256", "event:…, user:…, device:…", "media.view"}
# Functions whose string arguments people read (toasts, dialogs, the live view's status line, the map).
SHOWN_BY = {"toast", "prompt", "confirm", "alert", "idle", "setPrefix", "bindTooltip", "bindPopup"}
SHOWN_THROUGH = {"textContent", "innerHTML", "innerText", "title", "placeholder"}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        self.found += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            self.found.append(data)


def _is_words(text: str) -> bool:
    text = re.sub(r"[\s·]+", " ", text).strip(" ·")
    if text in NOT_WORDS:
        return False
    for name in ("KUZET", "Kuzet", "sha256", "Enter", "Esc"):  # and the names printed on keyboard keys
        text = text.replace(name, "")
    return bool(WORD.search(text))


def _words(html: str, code: bool = False) -> list[str]:
    parser = _Text()
    parser.feed(html)
    parser.close()
    # In a script, a nested template literal leaves pieces of code between tags: `).join("")}` is not prose.
    found = [text for text in parser.found if not (code and ("}" in text or "=>" in text))]
    return [text.strip() for text in found if _is_words(text)]


def _is_sentence(text: str) -> bool:
    """What a function call shows: words with spaces, or a capitalised word; not a severity, class or path."""
    return bool(re.search(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}", text) or re.match(r"[^\W\d_a-zа-я]\w", text))


def unwrapped_in_template(source: str) -> list[str]:
    """Text a template shows that is not inside a Jinja expression or tag (so not passed through _())."""
    bare = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", source, flags=re.S)
    return _words(bare)


def _without_interpolations(template: str) -> str:
    """`a ${b} c` -> 'a   c' (nested braces and strings inside ${} included)."""
    out, depth, i = [], 0, 0
    while i < len(template):
        if depth == 0 and template.startswith("${", i):
            depth, i = 1, i + 2
            out.append(" ")
            continue
        if depth:
            depth += {"{": 1, "}": -1}.get(template[i], 0)
        else:
            out.append(template[i])
        i += 1
    return "".join(out)


def unwrapped_in_script(source: str) -> list[str]:
    """Literal text a script shows that is not a T("...") argument: text in the HTML it builds, and strings
    handed to the functions and properties that show text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from babel.messages.jslexer import tokenize

        tokens = [
            t
            for t in tokenize(source, template_string=True)
            if t.type not in ("linecomment", "multilinecomment")
        ]
    found: list[str] = []
    calls: list[bool] = []  # one per open parenthesis: whether it is a call whose arguments people read
    for index, token in enumerate(tokens):
        before = tokens[index - 1].value if index else ""
        before2 = tokens[index - 2].value if index > 1 else ""
        if token.type == "operator" and token.value == "(":
            calls.append(before.split(".")[-1] in SHOWN_BY or (calls[-1] if calls else False))
            continue
        if token.type == "operator" and token.value == ")":
            if calls:
                calls.pop()
            continue
        if token.type not in ("string", "template_string"):
            continue
        if before == "(" and before2 == "T":
            continue
        text = token.value[1:-1]
        if token.type == "template_string":
            text = _without_interpolations(text)
        if "<" in text:
            found += _words(text, code=True)
            continue
        assigned = before in ("=", "+=") and before2.split(".")[-1] in SHOWN_THROUGH
        if (assigned or (calls and calls[-1])) and _is_sentence(text) and _is_words(text):
            found.append(text.strip())
    return found


def bad_script_calls(source: str) -> list[str]:
    """T( calls whose argument is not one double-quoted literal (they would never reach the catalogues)."""
    code = re.sub(r"//[^\n]*", "", source)
    return [m.group(0) for m in re.finditer(r"(?<!function )\bT\((?!\s*\")[^)]{0,40}", code)]
