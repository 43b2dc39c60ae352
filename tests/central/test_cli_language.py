"""What `kuzet central` prints for a person at the centre speaks the site's language, or the shell's when that is
Russian, Kazakh or English, through the page's catalogues; output for scripts (JSON) stays as it is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kuzet.central import speech

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    ("environ", "site", "chosen"),
    [
        ({}, "ru", "ru"),
        ({"LANG": "C.UTF-8"}, "kk", "kk"),  # a server's default says nothing about its reader
        ({"LANG": "ru_RU.UTF-8"}, "en", "ru"),
        ({"LANG": "en_US.UTF-8"}, "ru", "en"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "kk_KZ.UTF-8"}, "ru", "kk"),  # LC_ALL first, as gettext reads them
        ({"LC_MESSAGES": "de_DE.UTF-8", "LANG": "en_US.UTF-8"}, "ru", "ru"),  # not one of ours: the site's
    ],
)
def test_the_shell_or_the_site_chooses_the_language(environ, site, chosen):
    assert speech.chosen(site, environ) == chosen


def _kuzet(tmp_path, language: str, *args, stdin: str = "", lang: str = "C.UTF-8"):
    config = tmp_path / "central.toml"
    config.write_text(f'[site]\nlanguage = "{language}"\n')
    environ = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kuzet.shared.cli",
            "central",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path),
        ]
        + list(args),
        input=stdin,
        env={**environ, "LANG": lang},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_administrators_commands_speak_russian_on_a_russian_site(tmp_path):
    made = _kuzet(
        tmp_path, "ru", "create-user", "dana", "--role", "supervisor", "--password-stdin", stdin=PASSWORD
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "учётная запись dana создана: роль supervisor"
    token = _kuzet(tmp_path, "ru", "create-token", "dana", "--name", "ночная выгрузка")
    assert token.returncode == 0, token.stderr
    assert "сохраните его сейчас, повторно он не показывается" in token.stderr
    wrong = _kuzet(tmp_path, "ru", "create-token", "ghost", "--name", "x")
    assert (
        wrong.returncode == 2 and wrong.stderr.strip() == "create-token: нет активной учётной записи 'ghost'"
    )
    verdict = _kuzet(tmp_path, "ru", "verify-audit")
    assert verdict.returncode == 0, verdict.stderr
    assert verdict.stdout.startswith("журнал аудита цел: записей: 2, цепочка хешей проверена")
    checked = _kuzet(tmp_path, "ru", "verify-media")
    assert checked.stdout.strip() == "Проверено медиафайлов: 0; не совпадают со своим SHA-256: 0"
    missing = _kuzet(tmp_path, "ru", "reinstate-device", "cam-x", "--reason", "найдена")
    assert missing.returncode == 1 and missing.stderr.strip() == "reinstate-device: устройства cam-x нет"


def test_kazakh_on_a_kazakh_site_and_english_for_whoever_asks(tmp_path):
    made = _kuzet(
        tmp_path, "kk", "create-user", "dana", "--role", "operator", "--password-stdin", stdin=PASSWORD
    )
    assert made.stdout.strip() == "dana тіркелгісі жасалды: рөлі operator", made.stderr
    evidence = _kuzet(tmp_path, "kk", "verify-evidence", "badge-1")
    assert evidence.stdout.strip() == "badge-1: дәлел сегменттері алынбады", evidence.stderr
    english = _kuzet(tmp_path, "kk", "verify-audit", lang="en_US.UTF-8")
    assert english.stdout.startswith("audit log intact: 2 entries"), english.stderr
