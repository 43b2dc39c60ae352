"""Central's device API, as the technician's laptop uses it: register, look up, revoke. Standard library only.

``POST /api/v1/devices`` (201), ``GET /api/v1/devices/<id>`` (``online``, ``last_seen``, ``status``),
``POST /api/v1/devices/<id>/revoke`` (200); every call carries ``Authorization: Bearer <token>`` from
``kuzet central create-token``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class CentralError(RuntimeError):
    """Central refused or could not be reached. ``unreachable`` tells the two apart."""

    def __init__(self, message: str, unreachable: bool = False, status: int | None = None):
        super().__init__(message)
        self.unreachable = unreachable
        self.status = status


class CentralClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0):
        if not base_url:
            raise CentralError("central's URL is not set (--central URL, or central_url in site.toml)")
        if not token:
            raise CentralError(
                "no API token (--token or KUZET_TOKEN; create one with 'kuzet central create-token')"
            )
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def register(self, payload: dict) -> dict:
        return self._call("POST", "/api/v1/devices", payload, expect=(200, 201))

    def device(self, device_id: str) -> dict:
        return self._call("GET", f"/api/v1/devices/{device_id}", expect=(200,))

    def revoke(self, device_id: str) -> dict:
        return self._call("POST", f"/api/v1/devices/{device_id}/revoke", {}, expect=(200,))

    def _call(self, method: str, path: str, body: dict | None = None, expect=(200,)) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CentralError(
                f"central at {self.base_url} is unreachable: {reason}", unreachable=True
            ) from None
        if status not in expect:
            detail = _error_text(text)
            hint = {401: " (is the token valid?)", 403: " (the token's user needs the technician role)"}.get(
                status, ""
            )
            raise CentralError(f"{method} {path}: HTTP {status}{hint}: {detail}", status=status)
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}


def _error_text(text: bytes) -> str:
    try:
        body = json.loads(text)
        return str(body.get("error") or body.get("message") or body) if isinstance(body, dict) else str(body)
    except ValueError:
        return text.decode(errors="replace")[:200]
