"""Provisioning costs, each against a baseline measured in the same run; prints one JSON object.

- device identity + bundle (key, certificate, config check) per device, vs site-init;
- a device's mutual-TLS connect to site-init's Mosquitto vs a plain TCP connect to a plain Mosquitto;
- a signed model update's verify + install vs copying the same bytes, and its download over HTTP (as the
  camera's ``install_update`` with a ``url`` does) vs reading the same file;
- flash (write + fsync + read-back verify) of an image file vs a plain file copy.

Run: python -m bench.provision_bench [--devices 20] [--image-mb 64]
"""

from __future__ import annotations

import argparse
import functools
import getpass
import http.server
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from kuzet.central.broker import MosquittoServer, free_port
from kuzet.edge.updates.fetch import fetch_bundle
from kuzet.edge.updates.installer import install
from kuzet.provisioning import signing
from kuzet.provisioning.bundle import write_folder
from kuzet.provisioning.device import provision_device
from kuzet.provisioning.flash import flash
from kuzet.provisioning.site import SiteSettings
from kuzet.provisioning.site_init import init_site


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def connect_ms(port: int, tls: tuple[Path, Path, Path] | None, rounds: int) -> float:
    samples = []
    for i in range(rounds):
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{i}", protocol=paho.MQTTv5)
        if tls:
            client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]))
        start = time.perf_counter()
        client.connect("localhost", port)
        while not client.is_connected():
            client.loop(timeout=0.01)
        samples.append((time.perf_counter() - start) * 1000)
        client.disconnect()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--image-mb", type=int, default=64)
    parser.add_argument("--connects", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kuzet-bench-"))
    result: dict = {}
    try:
        port = free_port()
        settings = SiteSettings(
            site="bench", broker_hosts=["localhost"], broker_port=port, broker_user=getpass.getuser()
        )
        holder = {}
        site_s = timed(
            lambda: holder.setdefault("paths", init_site(work / "site", settings, listen="127.0.0.1"))
        )
        paths = holder["paths"]
        per_device = []
        for i in range(args.devices):
            start = time.perf_counter()
            record, bundle = provision_device(paths, settings, "camera", f"bench {i}")
            write_folder(bundle, work / "devices" / record.device_id)
            per_device.append(time.perf_counter() - start)
        result["site_init_ms"] = round(site_s * 1000, 1)
        result["device_bundle_ms_median"] = round(statistics.median(per_device) * 1000, 1)
        result["device_vs_site_init_ratio"] = round(statistics.median(per_device) / site_s, 3)

        device = work / "devices" / record.device_id
        with MosquittoServer(port=port, config=paths.mosquitto_conf.read_text(), workdir=work / "m-tls"):
            tls_ms = connect_ms(
                port, (device / "ca.crt", device / "device.crt", device / "device.key"), args.connects
            )
        with MosquittoServer(workdir=work / "m-plain") as plain:
            plain_ms = connect_ms(plain.port, None, args.connects)
        result["mtls_connect_ms_median"] = round(tls_ms, 2)
        result["plain_connect_ms_median"] = round(plain_ms, 2)
        result["mtls_vs_plain_connect_ratio"] = round(tls_ms / plain_ms, 1)

        model = work / "model"
        model.mkdir()
        (model / "detect.tflite").write_bytes(os.urandom(4 * 2**20))
        key = signing.load_private_key(paths.signing_key)
        signing.sign_update(model, work / "model.tar", key, "model", "1")
        install_s = timed(lambda: install(work / "model.tar", paths.signing_public_key, work / "installed"))
        copy_s = timed(lambda: shutil.copytree(model, work / "copied"))
        result["update_4mib_install_ms"] = round(install_s * 1000, 1)
        result["update_vs_plain_copy_ratio"] = round(install_s / copy_s, 1)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(work))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/model.tar"
        try:
            fetch_s = timed(
                lambda: fetch_bundle(url=url, path=None, downloads=work / "downloads", max_bytes=2**30)
            )
        finally:
            server.shutdown()
            server.server_close()
        read_s = timed(lambda: (work / "model.tar").read_bytes())
        result["update_4mib_download_ms"] = round(fetch_s * 1000, 1)
        result["update_download_vs_file_read_ratio"] = round(fetch_s / read_s, 1)

        image = work / "os.img"
        image.write_bytes(os.urandom(args.image_mb * 2**20))
        target = work / "card.bin"
        target.touch()
        flash_s = timed(lambda: flash(image, target, progress=False))
        copy_s = timed(lambda: shutil.copyfile(image, work / "copy.bin"))
        result["flash_mb_per_s"] = round(args.image_mb / flash_s, 1)
        result["flash_vs_plain_copy_ratio"] = round(flash_s / copy_s, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
