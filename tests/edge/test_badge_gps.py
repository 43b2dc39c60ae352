"""Where the badge is: NMEA from a serial GPS (through a real pseudo-terminal), gpsd's JSON protocol over a
socket, and route files; and the agent's location reports on movement and on a duty change."""

from __future__ import annotations

import json
import os
import socket
import threading

import pynmea2
import pytest
from support.patrol import SITE, badge_config, point, start_badge, wait_for

from kuzet.edge.badge.config import BadgeConfig
from kuzet.edge.badge.gps import GpsdClient, RouteWalker, SerialGps, load_route
from kuzet.shared import topics
from kuzet.shared.config import ConfigError, MqttSection, parse
from kuzet.shared.geo import haversine_m
from kuzet.shared.messages import decode
from kuzet.shared.mqtt import Link


def nmea(kind: str, fields: tuple[str, ...]) -> bytes:
    sentence = pynmea2.RMC("GP", "RMC", fields) if kind == "RMC" else pynmea2.GGA("GP", "GGA", fields)
    return (str(sentence) + "\r\n").encode()


def test_serial_nmea_through_a_pty():
    controller, device = os.openpty()
    sentences = [
        b"garbage that is not NMEA\r\n",
        nmea("RMC", ("120000", "V", "", "", "", "", "", "", "211126", "", "")),  # no fix: ignored
        nmea(
            "GGA", ("120001", "5217.238", "N", "07658.044", "E", "1", "08", "0.9", "1", "M", "1", "M", "", "")
        ),
        nmea("RMC", ("120001", "A", "5217.238", "N", "07658.044", "E", "10.0", "84.4", "211126", "", "")),
    ]
    streaming = threading.Event()

    def module():  # a GPS module repeats its sentences every second; faster here
        while not streaming.wait(0.1):
            for sentence in sentences:
                os.write(controller, sentence)

    writer = threading.Thread(target=module, daemon=True)
    writer.start()
    gps = SerialGps(os.ttyname(device), 9600).start()
    try:
        fix = wait_for(gps.current, what="a GPS fix")
        assert fix.source == "gps"
        assert fix.lat == pytest.approx(52 + 17.238 / 60) and fix.lon == pytest.approx(76 + 58.044 / 60)
        assert fix.speed_mps == pytest.approx(5.144, abs=0.01)  # 10 knots
        assert fix.heading_deg == pytest.approx(84.4)
        assert fix.accuracy_m == pytest.approx(4.5)  # HDOP 0.9
    finally:
        streaming.set()
        writer.join()
        gps.stop()
        os.close(controller)
        os.close(device)


def test_gpsd_json_protocol():
    server = socket.create_server(("127.0.0.1", 0))
    commands = []

    def gpsd():
        connection, _ = server.accept()
        with connection:
            connection.sendall(b'{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}\n')
            commands.append(connection.recv(200))
            connection.sendall(b'{"class":"TPV","mode":1}\n')  # no fix: ignored
            tpv = {
                "class": "TPV",
                "mode": 3,
                "lat": 53.2144,
                "lon": 63.6246,
                "speed": 1.2,
                "track": 271.5,
                "epx": 3.1,
                "epy": 4.2,
            }
            connection.sendall(json.dumps(tpv).encode() + b"\n")
            threading.Event().wait(2)

    thread = threading.Thread(target=gpsd, daemon=True)
    thread.start()
    client = GpsdClient("127.0.0.1", server.getsockname()[1]).start()
    try:
        fix = wait_for(client.current, what="a gpsd fix")
        assert commands[0].startswith(b"?WATCH=") and b'"json":true' in commands[0]
        assert (fix.source, fix.lat, fix.lon, fix.heading_deg, fix.accuracy_m) == (
            "gpsd",
            53.2144,
            63.6246,
            271.5,
            4.2,
        )
    finally:
        client.stop()
        server.close()


def test_route_files_and_walking(tmp_path):
    start, end = point(0), point(1000)
    geojson = tmp_path / "route.geojson"
    geojson.write_text(
        json.dumps(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[start[1], start[0]], [end[1], end[0]]]},
            }
        )
    )
    assert load_route(geojson) == [start, end]
    csv = tmp_path / "route.csv"
    csv.write_text(f"lat,lon\n{start[0]},{start[1]}\n{end[0]},{end[1]}\n")
    assert load_route(csv) == [start, end]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{start[0]},{start[1]}\nnorth,east\n")
    with pytest.raises(ValueError, match="bad row"):
        load_route(bad)

    walker = RouteWalker([start, end], speed_mps=100.0, loop=False).start()
    first = walker.current()

    def moved_50m():
        fix = walker.current()
        return fix if haversine_m(start[0], start[1], fix.lat, fix.lon) > 50 else None

    later = wait_for(moved_50m, what="moving")
    assert later.heading_deg == pytest.approx(0.0, abs=0.5)  # due north
    assert haversine_m(first.lat, first.lon, start[0], start[1]) < haversine_m(
        later.lat, later.lon, start[0], start[1]
    )


def test_route_source_needs_a_file():
    with pytest.raises(ConfigError, match="route_file"):
        parse({"device": {"id": "badge-1"}, "gps": {"source": "route"}}, BadgeConfig)
    with pytest.raises(ConfigError, match="unknown key"):
        parse({"device": {"id": "badge-1"}, "gps": {"sorce": "route"}}, BadgeConfig)


def test_location_reported_on_movement_and_on_duty_change(tmp_path, mosquitto):
    received = []
    listener = Link(MqttSection(url=mosquitto.url), "listener")
    listener.subscribe(topics.up(SITE, "badge-9", "location"), lambda t, p: received.append(decode(t, p)))
    listener.start()
    config = badge_config(tmp_path, mosquitto.url, "badge-9", point(0))
    route = tmp_path / "walk.csv"
    route.write_text(f"{point(0)[0]},{point(0)[1]}\n{point(5000)[0]},{point(5000)[1]}\n")
    config.gps.route_file = route
    config.gps.route_speed_mps = 40.0  # a car
    config.gps.report_interval_s = 3600  # so every report here is for movement or duty
    config.gps.min_movement_m = 25.0
    agent = start_badge(tmp_path, mosquitto.url, "badge-9", point(0), gps=config.gps.model_dump())
    try:
        wait_for(lambda: len(received) >= 3, what="reports while moving")
        moved = [
            haversine_m(a.position.lat, a.position.lon, b.position.lat, b.position.lon)
            for a, b in zip(received, received[1:], strict=False)
        ]
        assert all(m >= 25.0 for m in moved[:2])
        assert received[-1].fix == "route" and received[-1].speed_mps == 40.0
        agent.set_duty("busy")
        wait_for(lambda: any(r.duty == "busy" for r in received), what="report on duty change")
    finally:
        agent.stop()
        listener.stop()
