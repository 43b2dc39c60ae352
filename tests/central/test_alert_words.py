"""Alerts keep their words as a message key and parameters, and each reader sees them in their own language:
on the alerts page, and on the live stream that pops the toast. The API and the logs keep the English."""

from __future__ import annotations

import html
import http.client
import json
import re

import pytest
from support.web import login, make_central, token_for

from kuzet.central import alerts
from kuzet.central.auth import preferences
from kuzet.central.web import create_app, i18n

NO_FREE_UNIT = alerts.say("no_free_unit", severity="high", event_type="loitering")
ESCALATED = alerts.say(
    "escalating", why=alerts.say("not_acknowledged", unit="badge-1", online="online", seconds=30)
)


def test_an_alert_keeps_its_key_its_parameters_and_its_english(tmp_path):
    db = make_central(tmp_path).db()
    row = alerts.add(db, "warning", ESCALATED, event_id="ev-1")
    assert row["message"] == "badge-1 (online) did not acknowledge within 30 s; escalating to the next unit"
    assert row["message_key"] == "escalating"
    assert row["message_params"] == {
        "why": {"key": "not_acknowledged", "params": {"unit": "badge-1", "online": "online", "seconds": 30}}
    }
    # Repeats of a device's condition keep the latest words, key and parameters alike.
    alerts.raise_for_device(db, "warning", alerts.say("no_position_to_reroute"), "cam-1", "c")
    repeat = alerts.raise_for_device(db, "warning", NO_FREE_UNIT, "cam-1", "c")
    assert (repeat["count"], repeat["message_key"]) == (2, "no_free_unit")


def test_a_wrong_key_or_a_missing_parameter_fails_where_the_alert_is_raised():
    with pytest.raises(KeyError):
        alerts.say("no_such_alert")
    with pytest.raises(KeyError):
        alerts.say("no_free_unit", severity="high")


def test_alerts_page_shows_the_words_in_the_readers_language(tmp_path):
    central = make_central(tmp_path, site={"language": "ru"})
    db = central.db()
    alerts.add(db, "warning", NO_FREE_UNIT)
    alerts.add(db, "critical", ESCALATED)
    alerts.add(db, "warning", "an alert stored before keys: shown as it is")
    preferences.update(db, "supervisor", language="kk")
    client = create_app(central).test_client()

    login(client, "operator")
    page = client.get("/alerts").get_data(as_text=True)
    assert "нет свободного наряда для события «Праздное нахождение» (важность: Высокая); ожидание" in page
    assert "badge-1 (в сети) не подтвердил за 30 с; передаётся следующему наряду" in page
    assert "an alert stored before keys: shown as it is" in page
    assert '<span class="level level-warning">Предупреждение</span>' in page  # the level too, not "warning"
    listed = client.get("/api/v1/alerts").get_json()["alerts"]
    assert {a["message"] for a in listed} >= {NO_FREE_UNIT.english, ESCALATED.english}  # the API: English

    client = create_app(central).test_client()
    login(client, "supervisor")
    page = client.get("/alerts").get_data(as_text=True)
    assert "«Ұзақ аялдау» оқиғасына бос жасақ жоқ (маңыздылығы: Жоғары); күтуде" in page


@pytest.fixture
def central_options():
    return {"accounts": True, "site": {"language": "ru"}}


def test_the_live_stream_carries_the_alert_in_the_readers_words(central, web_server):
    """Each stream says the alert in its own reader's language, even when readers of two languages are sent
    the same alert at once (the message is made once per language, not once for every stream)."""
    preferences.update(central.db(), "supervisor", language="kk")
    host, port = web_server.url.removeprefix("http://").split(":")
    streams = {}
    for username in ("operator", "supervisor"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request(
            "GET", "/api/v1/stream", headers={"Authorization": f"Bearer {token_for(central, username)}"}
        )
        response = connection.getresponse()
        assert response.readline().startswith(b"retry:")
        streams[username] = (connection, response)
    try:
        central.hub.publish("alert", alerts.add(central.db(), "critical", NO_FREE_UNIT))
        said = {username: _next_alert(response) for username, (_, response) in streams.items()}
        assert (
            said["operator"]["text"]
            == "нет свободного наряда для события «Праздное нахождение» (важность: Высокая); ожидание"
        )
        assert said["supervisor"]["text"].startswith("«Ұзақ аялдау» оқиғасына бос жасақ жоқ")
        assert {alert["message"] for alert in said.values()} == {NO_FREE_UNIT.english}
    finally:
        for connection, _ in streams.values():
            connection.close()


def _next_alert(response) -> dict:
    """The data of the next alert a stream sends (keep-alives and other messages skipped)."""
    fields: dict[str, str] = {}
    while True:
        line = response.readline().decode().rstrip("\n")
        if line == "" and fields.get("event") == "alert":
            return json.loads(fields["data"])
        if line == "":
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value


def test_every_parameter_of_every_alert_is_a_word_a_verbatim_value_or_other_words():
    # A new parameter carrying a state ("left_type") would otherwise reach a Russian reader as "crowd".
    unclassified = {
        (key, name)
        for key, text in alerts.MESSAGES.items()
        for name in re.findall(r"%\((\w+)\)", text)
        if name not in alerts.WORDS and name not in alerts.VERBATIM and name not in alerts.NESTED
    }
    assert unclassified == set()
    assert set(alerts.WORDS.values()) <= set(i18n.LABELS)
    with pytest.raises(TypeError, match="severity is a severity key"):
        alerts.say("no_free_unit", severity=3, event_type="crowd")


def test_states_kinds_and_central_own_words_inside_an_alert_are_in_the_readers_language(tmp_path):
    central = make_central(tmp_path, site={"language": "ru"})
    db = central.db()
    diverted = alerts.say(
        "diverted_requeued",
        unit="badge-1",
        left_severity="medium",
        left_type="crowd",
        severity="critical",
        event_type="panic",
    )
    alerts.add(db, "warning", diverted)
    revoked = alerts.say("device_revoked_because", device="badge-2", reason="украден")
    alerts.add(db, "warning", alerts.say("revoked_on_dispatch", why=revoked, dispatch="d-1"))
    altered = alerts.say(
        "media_altered", kind="clip", sha256="ab" * 32, owner="ev-1", problem=alerts.say("media_missing")
    )
    alerts.add(db, "critical", altered)
    failing = alerts.say(
        "store_failing", what=alerts.say("the_database"), error="disk full", held=alerts.say("held_at_broker")
    )
    alerts.add(db, "critical", failing)
    client = create_app(central).test_client()
    login(client, "operator")
    page = html.unescape(client.get("/alerts").get_data(as_text=True))
    assert (
        "badge-1 переброшен с события «Скопление людей» (Средняя) на событие «ТРЕВОГА» (Критическая); "
        "событие «Скопление людей» ждёт следующий свободный наряд" in page
    )
    assert "badge-2 отозван: украден во время направления d-1" in page
    assert f"доказательство видеоклип {'ab' * 32} (ev-1): файл отсутствует" in page
    assert "не смог записать в базу данных (disk full); пока что сообщения устройств ждут" in page
    shown = page.split("<main", 1)[1].split('<script type="application/json"', 1)[0]
    for english in ("crowd", "medium", "was revoked", "clip ", "the file is missing", "the database"):
        assert english not in shown
    assert diverted.english.startswith(
        "badge-1 was diverted from the medium crowd event"
    )  # the API's English


def test_a_badges_evidence_finding_is_said_in_the_readers_language(tmp_path):
    from datetime import UTC, datetime, timedelta

    from kuzet.shared import evidence, timeutil
    from kuzet.shared.messages import EvidenceSegment

    start = datetime(2026, 12, 5, 8, tzinfo=UTC)

    def segment(index, previous=None):
        ended = start + timedelta(minutes=index + 1)
        fields = (
            "0" * 64,
            index,
            timeutil.to_wire(start + timedelta(minutes=index)),
            timeutil.to_wire(ended),
        )
        chain = evidence.chain_hash(previous, *fields)
        return EvidenceSegment(
            device="badge-1", segment_id=f"{index:026d}", index=index, started_at=start + timedelta(minutes=index),
            ended_at=ended, size=1, sha256="0" * 64, prev_chain_sha256=previous, chain_sha256=chain,
            content_type="video/mp4",
        )  # fmt: skip

    first = segment(0)
    found = evidence.check_link(segment(3, first.chain_sha256), first)
    assert (found.code, found.params) == ("out_of_order", {"index": 3, "previous": 0})
    assert (
        str(found) == "index 3 follows 0: a segment is missing or out of order"
    )  # the API and logs: English
    central = make_central(tmp_path, site={"language": "ru"})
    problem = alerts.say(f"evidence_{found.code}", **found.params)
    alerts.add(
        central.db(),
        "critical",
        alerts.say("evidence_chain_broken", device="badge-1", index=3, problem=problem),
    )
    client = create_app(central).test_client()
    login(client, "operator")
    page = html.unescape(client.get("/alerts").get_data(as_text=True))
    assert "segment is missing" not in page
    assert "номер 3 идёт после 0: сегмент пропущен или не по порядку" in page
