"""The page speaks Russian (the default), Kazakh and English: every word of the templates and scripts goes
through the catalogues, every catalogue is complete and compiled, and the page shows times in the site's zone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages import checkers
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from support.translation_check import bad_script_calls, unwrapped_in_script, unwrapped_in_template
from support.web import csrf_token, insert_event, login, make_central

from kuzet.central.auth import preferences
from kuzet.central.config import CentralConfig
from kuzet.central.web import create_app
from kuzet.shared import timeutil

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "central" / "web"
CATALOGUES = WEB / "translations"
LANGUAGES = ("ru", "kk", "en")


def catalogue(language: str):
    with (CATALOGUES / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=language)


TEMPLATES = sorted((WEB / "templates").glob("*.html")) + sorted(
    (REPO / "central" / "watchlist" / "templates").glob("*.html")
)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_word_of_a_template_is_wrapped(template):
    assert unwrapped_in_template(template.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("script", sorted((WEB / "static").glob("*.js")), ids=lambda p: p.name)
def test_every_word_of_a_script_is_wrapped(script):
    source = script.read_text(encoding="utf-8")
    assert unwrapped_in_script(source) == []
    assert bad_script_calls(source) == []


def test_the_checks_find_unwrapped_words():
    # The two checks above pass only if they can fail: each kind of miss they are meant to catch.
    template = '<p title="Hint here">{{ _("Wrapped") }} Plain words</p><input placeholder="{{ _(\'x\') }}">'
    assert unwrapped_in_template(template) == ["Hint here", "Plain words"]
    script = (
        'el.textContent = "Saved at last"; Kuzet.toast("Oops", `${n} <b>Bold words</b>`, "high");'
        ' ok = T("Wrapped"); tr.innerHTML = `<td>${T("Fine")}</td><td>Not fine</td>`;'
    )
    assert unwrapped_in_script(script) == ["Saved at last", "Oops", "Bold words", "Not fine"]
    assert bad_script_calls('T(name); T("good"); T(`tmpl`)') == ["T(name", "T(`tmpl`"]


def _extracted_msgids() -> set:
    method_map, options_map = parse_mapping_cfg((REPO / "babel.cfg").open())
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(REPO),
        method_map,
        options_map,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None},
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_word_is_translated_into_russian_kazakh_and_english():
    msgids = _extracted_msgids()
    assert len(msgids) > 250  # the extraction itself found the page's words
    for language in LANGUAGES:
        entries = {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalogue(language) if m.id}
        missing = sorted(msgids - set(entries))
        assert missing == [], f"{language}: not in the catalogue (run `make translations`)"
        untranslated = sorted(
            key
            for key in msgids
            if not all(
                entries[key].string if isinstance(entries[key].string, tuple) else [entries[key].string]
            )
            or entries[key].fuzzy
        )
        assert untranslated == [], f"{language}: no translation yet"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_their_placeholders(language):
    problems = []
    for message in catalogue(language):
        if not message.id:
            continue
        try:
            checkers.python_format(catalogue(language), message)
        except Exception as error:  # babel's TranslationError, with the reason
            problems.append(f"{message.id!r}: {error}")
    assert problems == []


def test_russian_and_kazakh_are_written_in_cyrillic():
    for language in ("ru", "kk"):
        latin_only = [
            m.id
            for m in catalogue(language)
            if m.id
            and isinstance(m.string, str)
            and re.search(
                r"[A-Za-z]{3}",
                re.sub(r"%\(\w+\)\w|CSV|JSON|API|CSRF|SHA-256|Bearer|Authorization|token", "", m.string),
            )
            and not re.search("[а-яәіңғүұқөһ]", m.string.lower())
        ]
        assert latin_only == [], language


def _key(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_is_up_to_date(language):
    with (CATALOGUES / language / "LC_MESSAGES" / "messages.mo").open("rb") as file:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(file) if m.id}
    source = {_key(m.id): _key(m.string) for m in catalogue(language) if m.id}
    assert compiled == source, "run `make translations` (pybabel compile) and commit the .mo files"


# --- the page itself -----------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path):
    central = make_central(tmp_path, site={"language": CentralConfig().site.language})
    yield create_app(central), central
    central.close()


def _page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _script_words(page: str) -> dict:
    return json.loads(
        re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S).group(1)
    )


def test_russian_by_default_with_times_in_the_site_zone(app):
    app, central = app
    event = insert_event(central, event_type="loitering", started_at="2026-11-21T08:05:09.123Z")
    client = app.test_client()
    login(client, "operator")
    queue = _page(client, "/")
    assert '<html lang="ru">' in queue and ">События<" in queue and "Выйти" in queue
    assert "Оперативный центр Kuzet" in queue  # the centre's name, where the site has not given its own
    detail = _page(client, f"/events/{event['event_id']}")
    # 08:05 UTC is 13:05 in Pavlodar (Asia/Almaty, UTC+5), in Russian month names.
    assert "21 нояб. 13:05:09" in detail
    assert "Праздное нахождение" in detail and "Новое" in detail
    # What the detector saw is a word too, on the page and in the scripts' dictionary (rows, popups, toasts).
    assert "Праздное нахождение — человек</h1>" in detail and "— person" not in detail
    words = _script_words(detail)
    assert words["labels"]["dispatch"]["en_route"] == "В пути" and words["timeZone"] == "Asia/Almaty"
    assert words["labels"]["object"]["car"] == "легковой автомобиль"
    assert words["words"]["Reassign"] == "Переназначить"


def test_language_choice_is_remembered_with_the_account(app):
    app, central = app
    client = app.test_client()
    login(client, "operator")
    page = _page(client, "/")
    response = client.post("/language", data={"language": "kk", "next": "/", "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert preferences.get(central.db(), "operator").language == "kk"
    # Another computer, another session: the account keeps its language.
    elsewhere = app.test_client()
    login(elsewhere, "operator")
    page = _page(elsewhere, "/")
    assert '<html lang="kk">' in page and ">Оқиғалар<" in page
    assert _script_words(page)["labels"]["dispatch"]["en_route"] == "Жолда"
    refused = client.post("/language", data={"language": "xx", "csrf_token": csrf_token(page)})
    assert refused.status_code == 400 and preferences.get(central.db(), "operator").language == "kk"


def test_log_in_page_switches_language_before_log_in(app):
    app, central = app
    client = app.test_client()
    page = _page(client, "/login")
    assert "Имя пользователя" in page
    client.post("/language", data={"language": "en", "next": "/login", "csrf_token": csrf_token(page)})
    assert "Username" in _page(client, "/login")
    wrong = login(client, "operator", "not the password at all")
    assert "wrong username or password" in wrong.get_data(as_text=True)
    login(client, "operator")  # the language chosen before logging in becomes the account's
    assert '<html lang="en">' in _page(client, "/")
    assert preferences.get(central.db(), "operator").language == "en"


def test_csv_has_headers_and_names_in_the_readers_language(app):
    app, central = app
    insert_event(central, event_type="crowd")
    client = app.test_client()
    login(client, "supervisor")
    text = client.get("/api/v1/stats.csv?period=hour&by=type").get_data(as_text=True)
    header, *rows = text.lstrip("\ufeff").splitlines()
    assert header == "Час (Asia/Almaty),Тип,События"
    assert any(row.split(",")[1:] == ["Скопление людей", "1"] for row in rows)
    page = _page(client, "/stats?by=type")  # the chart and its legend name the types in words too
    assert "Скопление людей (1)" in page and "Скопление людей: 1</title>" in page


def test_dates_are_typed_in_the_readers_order_not_the_browsers(app):
    app, central = app
    old = insert_event(central, event_type="crowd", started_at="2026-11-21T08:05:09.123Z")
    client = app.test_client()
    login(client, "operator")
    board = _page(client, "/incidents")
    assert 'placeholder="дд.мм.гггг чч:мм"' in board
    templates = [path.read_text(encoding="utf-8") for path in TEMPLATES]
    assert not [t for t in templates if 'type="date"' in t or "datetime-local" in t]

    def listed(**query):
        response = client.get("/api/v1/incidents", query_string=query)
        assert response.status_code == 200, response.get_json()
        return [i["latest_event_id"] for i in response.get_json()["incidents"]]

    # 08:05 UTC is 13:05 at the site: a range typed in local time finds it on either side of 13:05.
    assert listed(since="21.11.2026 13:00", until="21.11.2026 13:10") == [old["event_id"]]
    assert listed(since="21/11/2026 13:06") == [] and listed(until=" 21.11.2026  13:04 ") == []
    assert listed(since="2026-11-21T13:00") == [old["event_id"]]  # ISO from links and API clients, as before
    refused = client.get("/api/v1/incidents", query_string={"since": "11/21/2026 1:05 PM"})
    assert refused.status_code == 400
    assert (
        refused.get_json()["error"]
        == "С (since): '11/21/2026 1:05 PM' — не дата и время вида 31.12.2026 08:00"
    )


def test_a_devices_problems_and_kind_are_in_the_readers_words_and_the_api_keeps_its_english(app):
    app, central = app
    central.db()["devices"].insert(
        {
            "device_id": "cam-03",
            "kind": "camera",
            "online": 1,
            "last_seen": timeutil.now_wire(),
            "status": json.dumps({"cpu_temp_c": 86.0, "battery_pct": 9.0}),
        }
    )
    client = app.test_client()
    login(client, "technician")
    page = _page(client, "/devices/cam-03")
    assert "⚠ перегрев: 86 °C" in page and "⚠ батарея разряжена: 9%" in page and "камера ·" in page
    [device] = client.get("/api/v1/devices").get_json()["devices"]
    assert device["problems"] == ["hot: 86 °C", "battery low: 9%"]  # for scripts, as before
    assert device["problem_words"] == ["перегрев: 86 °C", "батарея разряжена: 9%"]  # what devices.js shows


def test_a_kazakh_site_defaults_to_russian_and_almaty_time():
    site = CentralConfig().site
    assert (site.language, site.timezone) == ("ru", "Asia/Almaty")


def test_an_unknown_site_time_zone_is_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CentralConfig.model_validate({"site": {"timezone": "Mars/Olympus"}})


def test_every_class_the_detector_names_has_a_word():
    from kuzet.central.web.objects import OBJECTS
    from kuzet.models.build import COCO80

    # The YOLOX build writes these names into labels.txt, one a class ("traffic light" is one, not two).
    assert len(COCO80) == 80 and COCO80[9] == "traffic light"
    assert [name for name in COCO80 if name not in OBJECTS] == []


def test_every_state_a_dispatch_or_its_history_shows_has_a_word():
    from kuzet.central.routing import lifecycle
    from kuzet.central.web.i18n import DISPATCH_STATES

    # "confirmed" is a history entry of its own: an operator (or the policy) confirmed a proposal.
    shown = {*lifecycle.STATES, "confirmed"}
    assert sorted(shown - set(DISPATCH_STATES)) == []


def _page_words(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S)
    return json.loads(block.group(1))


def test_a_scripts_count_takes_the_readers_plural_form(tmp_path):
    """N("%(n)s event…", "%(n)s events…", n) in the scripts: the page hands them each plural category's words
    (Intl.PluralRules' names), from the catalogue's plural forms: 1 событие, 2 события, 5 событий."""
    central = make_central(tmp_path, site={"language": "ru"})
    client = create_app(central).test_client()
    login(client, "operator")
    plurals = _page_words(client.get("/incidents").get_data(as_text=True))["plurals"]
    assert plurals["%(n)s event in this incident"] == {
        "one": "%(n)s событие в этом происшествии",  # 1, 21, 101
        "few": "%(n)s события в этом происшествии",  # 2, 22
        "many": "%(n)s событий в этом происшествии",  # 0, 5, 11, 25
    }
    preferences.update(central.db(), "operator", language="en")
    plurals = _page_words(client.get("/incidents").get_data(as_text=True))["plurals"]
    assert plurals["%(n)s incident"] == {"one": "%(n)s incident", "other": "%(n)s incidents"}
