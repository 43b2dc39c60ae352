"""Real HTTP against a real central: the web server as ``kuzet central run`` serves it (waitress, on a free
port), and a small browser that keeps its own cookie and can send from a chosen loopback address (Linux
answers on all of 127.0.0.0/8), so tests can be two computers at once."""

from __future__ import annotations

import http.client
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from support.web import PASSWORD


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Browser:
    """One computer with one browser: cookies kept between requests, every request from ``source``."""

    def __init__(self, base_url: str, source: str = "127.0.0.1"):
        parts = urlsplit(base_url)
        self.host, self.port, self.source = parts.hostname, parts.port, source
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10, source_address=(self.source, 0))
        try:
            sent = dict(headers or {})
            body = None
            if form is not None:
                body = urlencode(form)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            raw = conn.getresponse()
            data = raw.read()
            for name, value in raw.getheaders():
                if name.lower() == "set-cookie":
                    jar = SimpleCookie()
                    jar.load(value)
                    for key, morsel in jar.items():
                        if morsel.value == "" or "expires=thu, 01 jan 1970" in value.lower():
                            self.cookies.pop(key, None)
                        else:
                            self.cookies[key] = morsel.value
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def csrf(self, path: str = "/login") -> str:
        page = self.get(path).text
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def login(self, username: str, password: str = PASSWORD) -> Response:
        token = self.csrf("/login")
        return self.request(
            "POST", "/login", form={"username": username, "password": password, "csrf_token": token}
        )

    def post(self, path: str, form: dict | None = None) -> Response:
        token = self.csrf("/login")
        return self.request("POST", path, form={**(form or {}), "csrf_token": token})
