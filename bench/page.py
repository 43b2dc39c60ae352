"""The triage board under a city's load: ``--cameras`` simulated cameras raise incidents over real MQTT into one
central process (ingest, routing and the web page, SQLite) whose store already holds ``--events`` events, while
``--pages`` operator pages are open on the board at once.

    flock /tmp/kuzet-bench.lock .venv/bin/python bench/page.py --cameras 1000 --minutes 10 --events 100000 \
        --pages 50 --json

Central runs alone in this process, as ``kuzet central run`` composes it; the rest runs in child processes:

- the cameras: each its own MQTT client id (250 to a process), raising events at ``--rate-per-hour`` each (60: what reaches
  central after the edge's incident lifecycle), Poisson arrivals, three times as often for a tenth of the run
  (a burst); each event is opened with a small snapshot and closed by the edge 10-30 s later;
- ``--browsers`` real headless Chromium pages (Debian's chromium through selenium, as the browser tests) that
  load the board again and again: first paint is navigation start to the board's rows in the DOM
  (``#board-body[data-loaded]``, which the board sets after drawing them); a live update is an event's
  publish time on its camera to the moment its incident's row on the page first links to it (a
  MutationObserver records ``performance.timeOrigin + performance.now()``, corrected by the page's measured
  clock offset); events already on the board when it loaded are not counted as live updates;
- the other pages as light HTTP clients: each holds the live stream open with an operator's token, asking
  for the board's pushed incidents as the board's script does (``?with=incidents``), and reads
  ``GET /api/v1/incidents`` when its stream opens, as that script does (central pushes every change after).

The store is filled through ingest's own batched write (``central.store.events.apply``) with events spread over
the past four weeks, all but ``--open-share`` of them closed. Prints one JSON object; ``live_update_ms`` and
``first_paint_ms`` are over all browser samples, ``api_incidents_ms`` over the HTTP clients' reads.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import http.client
import json
import logging
import multiprocessing
import os
import queue
import random
import resource
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not an installed copy

from kuzet.central.auth import tokens, users  # noqa: E402
from kuzet.central.broker import MosquittoServer  # noqa: E402
from kuzet.central.config import CentralConfig  # noqa: E402
from kuzet.central.context import Central  # noqa: E402
from kuzet.central.service import start_parts  # noqa: E402
from kuzet.central.store import events as event_store  # noqa: E402
from kuzet.shared import ids, messages, timeutil, topics  # noqa: E402

SITE = "pavlodar"
OPERATOR = ("bench-operator", "bench operator password")
TYPES = ("loitering", "crowd", "running", "zone_enter")
ZONES = ("gate", "platform", "square")
# Mostly quiet events; critical and high ones sort to the top of the board, where a live update is seen.
SEVERITIES = (("low", 45), ("medium", 35), ("high", 15), ("critical", 5))
BURST = (0.4, 0.5, 3.0)  # from, to (shares of the run), rate multiplier
CAMERAS_PER_PROCESS = 250
_EVENT_HEADER = b"\nevent: event\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="how long the cameras publish (fractions too)"
    )
    parser.add_argument("--events", type=int, default=100_000, help="events in the store before the run")
    parser.add_argument(
        "--pages", type=int, default=50, help="operator pages open at once, browsers included"
    )
    parser.add_argument("--browsers", type=int, default=3, help="how many of the pages are real Chromium")
    parser.add_argument("--rate-per-hour", type=float, default=60.0, help="events per camera-hour")
    parser.add_argument(
        "--open-share", type=float, default=0.01, help="share of the stored events not closed"
    )
    parser.add_argument("--dwell", type=float, default=20.0, help="seconds a browser stays before reloading")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if args.browsers > args.pages:
        parser.error("--browsers cannot exceed --pages")
    if args.browsers and not (shutil.which("chromium") and shutil.which("chromedriver")):
        parser.error("Debian's chromium and chromium-driver are needed for --browsers (or pass --browsers 0)")
    logging.basicConfig(level=logging.ERROR if args.json else logging.INFO)
    _raise_open_files()  # a thousand camera connections, through Mosquitto too
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="kuzet-page-") as tmp,
        MosquittoServer(workdir=Path(tmp) / "mq") as mq,
    ):
        result = run(mq.url, Path(tmp) / "central", args)
    result["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result))
    return 0 if result["stored"] == result["published"] and result["errors"] == 0 else 1


def run(url: str, data_dir: Path, args) -> dict:
    config = CentralConfig.model_validate(
        {
            "mqtt": {"url": url},
            "ingest": {"accept_unregistered": True},  # the simulated cameras are not registered
            "site": {"language": "ru"},
            "http": {"streams": max(100, args.pages)},  # a thread per open live stream, beside the requests'
        }
    )
    central = Central(config=config, data_dir=data_dir)
    users.create_user(central.db(), *OPERATOR, "operator", actor="bench")
    token = tokens.create_token(central.db(), OPERATOR[0], "bench", actor="bench")
    fill(central, args.events, args.open_share, args.cameras, args.seed)
    spawn = multiprocessing.get_context("spawn")
    stop, results = spawn.Event(), spawn.Queue()
    with contextlib.ExitStack() as running:
        parts = start_parts(central, running, web_host="127.0.0.1", web_port=0)
        if not parts.ingest.subscribed.is_set():
            raise SystemExit("central's ingest could not subscribe")
        base = parts.web.url
        processes: list = []  # every child, stopped before central is, however the run ends
        running.callback(_stop_children, stop, processes)
        children = [
            spawn.Process(target=_http_pages, args=(base, token, args.pages - args.browsers, stop, results)),
            spawn.Process(target=_browser_pages, args=(base, args.browsers, args.dwell, stop, results)),
        ]
        processes.extend(children)
        for child in children:
            child.start()
        # The cameras start once every page is open, or after two minutes with those that are (the report says
        # how many were).
        _wait(lambda: central.hub.subscribers >= args.pages, 120)
        streams_at_start = central.hub.subscribers
        # paho waits on its sockets with select(), which takes no descriptor above 1023: a few hundred
        # cameras per process.
        groups = range(0, args.cameras, CAMERAS_PER_PROCESS)
        cameras = [spawn.Process(target=_cameras, args=(url, args, first, results)) for first in groups]
        processes.extend(cameras)
        for child in cameras:
            child.start()
        collected = _collect(results, len(cameras), cameras, timeout_s=args.minutes * 60 + 300)
        camera_side = _merge([collected.pop(("cameras", first)) for first in groups])
        published_at: dict[str, float] = camera_side["published_at"]
        stored = _wait_for_store(central, published_at)
        stop.set()
        collected |= _collect(results, 2, children, timeout_s=120)
    http_pages, browsers = collected["http"], collected["browsers"]
    live = [
        seen_ms - published_at[event_id] * 1000
        for event_id, seen_ms, loaded_ms in browsers["seen"]
        if event_id in published_at and published_at[event_id] * 1000 >= loaded_ms
    ]
    return {
        "cameras": args.cameras,
        "events_in_store": args.events,
        "minutes": args.minutes,
        "pages": args.pages,
        "published": len(published_at),
        "stored": stored,
        "first_paint_ms": _percentiles(browsers["paints"]),
        "live_update_ms": _percentiles(live),
        "api_incidents_ms": _percentiles(http_pages["api_ms"]),
        "stream_clients_ok": http_pages["streams_ok"] + browsers["pages_ok"],
        "errors": http_pages["errors"] + browsers["errors"] + camera_side["errors"],
        # Context for the figures above: how many samples, and what the board and the load looked like.
        "samples": {
            "first_paint": len(browsers["paints"]),
            "live_update": len(live),
            "api_incidents": len(http_pages["api_ms"]),
        },
        "streams_at_start": streams_at_start,
        "messages_published": camera_side["messages"],
        "stream_events_per_page": http_pages["events_per_page"],
    }


# --- the store before the run ------------------------------------------------------------------------------


def fill(central: Central, count: int, open_share: float, cameras: int, seed: int) -> None:
    """``count`` events over the past four weeks through ingest's own batched write, then all but the
    newest ``open_share`` closed by an operator (the workflow's column, set in bulk: nobody waits on them)."""
    rng = random.Random(seed)
    now = timeutil.utc_now()
    conn = central.db().conn
    ages = sorted((rng.uniform(3600, 28 * 86400) for _ in range(count)), reverse=True)
    open_from = count - int(count * open_share)
    for start in range(0, count, 5000):
        batch = []
        for age in ages[start : start + 5000]:
            started = now - timedelta(seconds=age)
            message = messages.Event(
                device=_camera(rng.randrange(cameras)),
                event_id=ids.new_id(),
                seq=1,
                state="closed",
                event_type=rng.choice(TYPES),
                severity=rng.choice(("low", "medium", "high")),  # the live run's critical ones stay on top
                label="person",
                score=0.8,
                started_at=started,
                ended_at=started + timedelta(seconds=30),
                zone=rng.choice(ZONES),
                ts=started + timedelta(seconds=30),
            )
            batch.append(event_store.Received(message, SITE, timeutil.to_wire(message.ts)))
        with conn:
            event_store.apply(conn, batch)
    with conn:
        conn.execute(
            "UPDATE events SET status = 'closed' WHERE rowid IN "
            "(SELECT rowid FROM events ORDER BY started_at LIMIT ?)",
            (open_from,),
        )


def _camera(n: int) -> str:
    return f"cam-{n:04d}"


# --- the cameras ---------------------------------------------------------------------------------------------


def _schedule(args) -> list[tuple[float, int]]:
    """(seconds from the start, camera) of every event: Poisson arrivals at the cameras' rate, with a burst."""
    rng = random.Random(args.seed + 1)
    duration = args.minutes * 60
    rate = args.cameras * args.rate_per_hour / 3600
    at, arrivals = 0.0, []
    while True:
        in_burst = BURST[0] * duration <= at < BURST[1] * duration
        at += rng.expovariate(rate * (BURST[2] if in_burst else 1))
        if at >= duration:
            return arrivals
        arrivals.append((at, rng.randrange(args.cameras)))


def _cameras(url: str, args, first: int, results) -> None:
    """Cameras ``first`` up to ``first + CAMERAS_PER_PROCESS``: their share of the one schedule."""
    from kuzet.shared.config import MqttSection
    from kuzet.shared.mqtt import Link

    logging.basicConfig(level=logging.ERROR)
    mine = range(first, min(args.cameras, first + CAMERAS_PER_PROCESS))
    rng = random.Random(args.seed + 2 + first)
    snapshot = _jpeg()
    sha256 = hashlib.sha256(snapshot).hexdigest()
    links = {n: Link(MqttSection(url=url), f"bench-{_camera(n)}").start(wait_s=30) for n in mine}
    published_at: dict[str, float] = {}
    closing: list[tuple[float, int, messages.Event]] = []  # (when, camera, the open event) to close later
    errors = 0
    pending: list = []  # QoS 1 publishes, each waited for before its camera disconnects

    def send(camera: int, message) -> None:
        nonlocal errors
        try:
            topic = topics.up(SITE, _camera(camera), message.type)
            pending.append(links[camera].publish(topic, messages.encode(message)))
        except Exception:
            errors += 1

    begin = time.monotonic()
    for offset, camera in _schedule(args):
        if camera not in links:
            continue
        while closing and closing[0][0] <= offset:
            due, cam, opened = closing.pop(0)
            _sleep_until(begin + due)
            now = timeutil.utc_now()
            send(
                cam,
                opened.model_copy(
                    update={"id": ids.new_id(), "ts": now, "seq": 1, "state": "closed", "ended_at": now}
                ),
            )
        _sleep_until(begin + offset)
        event = messages.Event(
            device=_camera(camera),
            event_id=ids.new_id(),
            seq=0,
            state="open",
            event_type=rng.choice(TYPES),
            severity=_weighted(rng, SEVERITIES),
            label="person",
            score=0.9,
            started_at=timeutil.utc_now() - timedelta(seconds=5),
            zone=rng.choice(ZONES),
            snapshot_sha256=sha256,
        )
        published_at[event.event_id] = time.time()
        send(camera, event)
        snap = messages.Snapshot(
            device=_camera(camera),
            event_id=event.event_id,
            sha256=sha256,
            width=160,
            height=120,
            data=messages.to_base64(snapshot),
        )
        send(camera, snap)
        bisect.insort(closing, (offset + rng.uniform(10, 30), camera, event), key=lambda item: item[0])
    for info in pending:
        try:
            info.wait_for_publish(30)
        except Exception:
            errors += 1
    for link in links.values():
        link.stop()
    results.put(
        (("cameras", first), {"published_at": published_at, "messages": len(pending), "errors": errors})
    )


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _weighted(rng: random.Random, choices) -> str:
    return rng.choices([value for value, _ in choices], weights=[weight for _, weight in choices])[0]


def _jpeg() -> bytes:
    """A small snapshot, as a camera sends with each event (boxes drawn)."""
    import cv2
    import numpy as np

    frame = np.full((120, 160, 3), 70, np.uint8)
    cv2.rectangle(frame, (60, 30), (90, 110), (0, 0, 255), 2)
    return cv2.imencode(".jpg", frame)[1].tobytes()


# --- the pages: light HTTP clients ---------------------------------------------------------------------------


def _http_pages(base: str, token: str, count: int, stop, results) -> None:
    """``count`` pages as the board's script behaves, one thread each; what they saw, together."""
    outcome = {"api_ms": [], "errors": 0, "streams_ok": 0, "events_per_page": []}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_http_page, args=(base, token, stop, outcome, lock), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = sorted(outcome["events_per_page"])
    outcome["events_per_page"] = {"min": events[0], "max": events[-1]} if events else None
    results.put(("http", outcome))


def _http_page(base: str, token: str, stop, outcome: dict, lock: threading.Lock) -> None:
    """One page: its live stream held open (reopened 3 s after it fails, as EventSource does), the board read
    when the stream opens. A refused or dropped stream is an error."""
    host, port = base.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}"}
    api = http.client.HTTPConnection(host, int(port), timeout=30)
    timings, errors, events, open_at_end = [], 0, 0, False

    def read_board() -> None:
        nonlocal errors
        start = time.perf_counter()
        try:
            api.request("GET", "/api/v1/incidents", headers=headers)
            response = api.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            api.close()  # reconnects on the next request
            return
        if response.status != 200 or b'"incidents"' not in body:
            errors += 1
            return
        timings.append((time.perf_counter() - start) * 1000)

    while not stop.is_set():
        stream = None
        try:
            stream = socket.create_connection((host, int(port)), timeout=10)
            stream.sendall(
                f"GET /api/v1/stream?with=incidents HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            head = stream.recv(1 << 16)
        except OSError:
            head = b""
        if not head.startswith(b"HTTP/1.1 200"):
            errors += 1
            if stream is not None:
                stream.close()
            stop.wait(3)
            continue
        read_board()  # the board reads itself when its stream opens
        sent, open_at_end = _follow(stream, head, stop)
        events += sent
        stream.close()
        if not open_at_end:
            errors += 1  # central dropped the stream before the run ended
            stop.wait(3)
    with lock:
        outcome["api_ms"].extend(timings)
        outcome["errors"] += errors
        outcome["streams_ok"] += int(open_at_end)
        outcome["events_per_page"].append(events)


def _follow(stream: socket.socket, head: bytes, stop) -> tuple[int, bool]:
    """Count the events a stream sends until the run ends; (events, whether it was still open)."""
    events, tail = 0, head[-(len(_EVENT_HEADER) - 1) :]
    stream.settimeout(0.5)
    while not stop.is_set():
        try:
            data = stream.recv(1 << 16)
        except TimeoutError:
            continue
        except OSError:
            return events, False
        if not data:
            return events, False
        chunk = tail + data
        events += chunk.count(_EVENT_HEADER)
        tail = chunk[-(len(_EVENT_HEADER) - 1) :]  # a header cut in two by the read, never a whole one
    return events, True


# --- the pages: real Chromium --------------------------------------------------------------------------------

# Installed before the board's own scripts on every load: when the board says its rows are drawn
# (data-loaded), first paint; afterwards, the first moment each event id is linked from a row.
_OBSERVER = """
window.__bench = {paint: null, loadedAt: null, seen: {}};
new MutationObserver(() => {
  const body = document.getElementById("board-body");
  if (!body || !body.dataset.loaded) return;
  const now = performance.now();
  const ids = [...body.querySelectorAll('a[href^="/events/"]')].map((a) => a.getAttribute("href").slice(8));
  if (window.__bench.paint === null) {
    window.__bench.paint = now;
    window.__bench.loadedAt = performance.timeOrigin + now;
    ids.forEach((id) => { window.__bench.seen[id] = null; });  // on the board already: not a live update
    return;
  }
  for (const id of ids) if (!(id in window.__bench.seen)) window.__bench.seen[id] = performance.timeOrigin + now;
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-loaded"]});
"""


def _browser_pages(base: str, count: int, dwell_s: float, stop, results) -> None:
    outcome = {"paints": [], "seen": [], "errors": 0, "pages_ok": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_browser_page, args=(base, dwell_s, stop, outcome, lock), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(("browsers", outcome))


def _browser_page(base: str, dwell_s: float, stop, outcome: dict, lock: threading.Lock) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,900"):
        options.add_argument(argument)
    paints, seen, errors, driver = [], [], 0, None
    try:
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys(OPERATOR[0])
        driver.find_element(By.ID, "password").send_keys(OPERATOR[1])
        driver.find_element(By.ID, "login").click()
        WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _OBSERVER})
        while not stop.is_set():
            try:
                driver.get(base + "/incidents")
                paint = WebDriverWait(driver, 60, poll_frequency=0.05).until(
                    lambda d: d.execute_script("return window.__bench && window.__bench.paint")
                )
                paints.append(paint)
                stop.wait(dwell_s)
                offset = _clock_offset_ms(driver)
                state = driver.execute_script("return window.__bench")
            except Exception:
                errors += 1
                continue
            seen.extend(
                (event_id, at - offset, state["loadedAt"] - offset)
                for event_id, at in state["seen"].items()
                if at is not None
            )
    except Exception:
        errors += 1
    finally:
        if driver is not None:
            driver.quit()
    with lock:
        outcome["paints"].extend(paints)
        outcome["seen"].extend(seen)
        outcome["errors"] += errors
        outcome["pages_ok"] += int(bool(paints) and errors == 0)


def _clock_offset_ms(driver) -> float:
    """The page's clock less this process's, from a round trip (the same host: close to zero, measured)."""
    before = time.time()
    page = driver.execute_script("return performance.timeOrigin + performance.now()")
    after = time.time()
    return page - (before + after) / 2 * 1000


# --- measuring -----------------------------------------------------------------------------------------------


def _collect(results, count: int, processes, timeout_s: float) -> dict:
    """``count`` results from ``processes``; stops the bench at once when one of them has died without its."""
    collected = {}
    deadline = time.monotonic() + timeout_s
    while len(collected) < count:
        try:
            name, value = results.get(timeout=1.0)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {len(collected)} of {count} results") from None
            dead = [p.name for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"{', '.join(dead)} failed (see its traceback above)") from None
            continue
        collected[name] = value
    return collected


def _stop_children(stop, processes) -> None:
    """Tell every child to finish (the browsers quit Chromium), then end those that do not in time."""
    stop.set()
    for child in processes:
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)


def _merge(parts: list[dict]) -> dict:
    return {
        "published_at": {key: value for part in parts for key, value in part["published_at"].items()},
        "messages": sum(part["messages"] for part in parts),
        "errors": sum(part["errors"] for part in parts),
    }


def _wait_for_store(central: Central, published_at: dict[str, float], timeout_s: float = 60) -> int:
    """How many of the published events are in the store once ingest has caught up (or given up waiting)."""
    wanted = list(published_at)

    def stored() -> int:
        found = 0
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found += (
                central.db()
                .execute(
                    f"SELECT count(*) FROM events WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk
                )
                .fetchone()[0]
            )
        return found

    _wait(lambda: stored() == len(wanted), timeout_s, every_s=1.0)
    return stored()


def _wait(condition, timeout_s: float, every_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return bool(condition())


def _percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"p50": None, "p95": None}
    ordered = sorted(samples)
    return {
        "p50": round(ordered[len(ordered) // 2], 1),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
    }


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    sys.exit(main())
