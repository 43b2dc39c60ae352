"""``kuzet central store ...`` against the store ``[store]`` selects, and central refusing a store it cannot
reach."""

from __future__ import annotations

import json

import tomli_w

from kuzet.central.store import migrate
from kuzet.shared.cli import main


def _config(tmp_path, url: str = "") -> str:
    path = tmp_path / "central.toml"
    path.write_text(tomli_w.dumps({"store": {"url": url}, "storage": {"dir": str(tmp_path / "data")}}))
    return str(path)


def test_status_of_the_embedded_sqlite_store(tmp_path, capsys):
    assert main(["central", "--config", _config(tmp_path), "store", "status"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["backend"], report["schema_version"]) == ("sqlite", len(migrate.available("sqlite")))
    assert (tmp_path / "data" / "kuzet.db").is_file()


def test_status_and_retention_of_a_postgresql_store(tmp_path, postgres_url, capsys):
    config = _config(tmp_path, postgres_url)
    assert main(["central", "--config", config, "store", "migrate"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "postgresql" and report["nearest_units"] in ("postgis-knn", "sql-distance")
    assert len(report["partitions"]) == 4  # this month and three ahead
    assert main(["central", "--config", config, "store", "retention"]) == 0
    assert json.loads(capsys.readouterr().out)["dropped"] == []  # nothing is that old


def test_central_says_which_store_it_cannot_reach_and_keeps_nothing_elsewhere(tmp_path, capsys):
    url = "postgresql://nobody:secret@127.0.0.1:1/kuzet"  # nothing listens on port 1
    assert main(["central", "--config", _config(tmp_path, url), "run"]) == 1
    said = capsys.readouterr().err
    assert "cannot open the PostgreSQL store nobody@127.0.0.1:1/kuzet ([store] url)" in said
    assert "secret" not in said
    assert not (tmp_path / "data" / "kuzet.db").exists()  # nothing was stored in SQLite instead
