"""Central's clip spool is bounded (central.ingest.clips.SpoolLimits), over a real Mosquitto: a clip may claim
only what its chunks can carry and ``[ingest] max_clip_mb``, its chunks never more than it claimed, and the
clips being received hold at most ``spool_per_device_mb`` per device and a share of ``max_media_gb`` in all.
What is refused is dead-lettered with the reason and nothing of it is spooled."""

from __future__ import annotations

import contextlib
import hashlib

from support.ingest import dead_letter_rows, make_central, new_id, up, wait_for

from kuzet.central.ingest.service import IngestService
from kuzet.shared import messages
from kuzet.shared.config import MqttSection
from kuzet.shared.messages import CLIP_CHUNK_BYTES, MAX_CLIP_CHUNKS
from kuzet.shared.mqtt import Link

MIB = 1024 * 1024


def _chunk(
    device: str, clip_id: str, data: bytes, *, index: int, count: int, size: int
) -> messages.ClipChunk:
    return messages.ClipChunk(
        device=device,
        clip_id=clip_id,
        index=index,
        count=count,
        size=size,
        sha256=hashlib.sha256(b"whole clip " + clip_id.encode()).hexdigest(),
        chunk_sha256=hashlib.sha256(data).hexdigest(),
        content_type="video/mp4",
        data=messages.to_base64(data),
    )


def _spooled_bytes(central) -> int:
    spool = central.data_dir / "spool"
    return sum(p.stat().st_size for p in spool.rglob("*") if p.is_file())


def test_declared_sizes_and_the_spool_are_bounded(tmp_path, mosquitto):
    # 1 MiB per device; the spool's share of max_media_gb: 0.1 of 0.015 GiB = 1.5 MiB in all.
    central = make_central(
        tmp_path,
        mosquitto.url,
        ingest={"spool_per_device_mb": 1, "spool_share": 0.1},
        storage={"max_media_gb": 0.015},
    )
    with contextlib.ExitStack() as running:
        ingest = IngestService(central).start()
        running.callback(ingest.stop)
        link = Link(MqttSection(url=mosquitto.url), "cameras").start()
        running.callback(link.stop)

        def send(chunk: messages.ClipChunk) -> None:
            link.publish(up(chunk.device, "clip"), messages.encode(chunk)).wait_for_publish(5)

        piece = b"x" * 200_000
        huge, short, overfull = new_id(), new_id(), new_id()
        # The contract's largest clip: 100,000 chunks, 25 GiB. More than a clip may be here (1 GiB).
        send(
            _chunk(
                "cam-1", huge, piece, index=0, count=MAX_CLIP_CHUNKS, size=MAX_CLIP_CHUNKS * CLIP_CHUNK_BYTES
            )
        )
        # One chunk cannot carry 10 MiB.
        send(_chunk("cam-1", short, piece, index=0, count=1, size=10 * MIB))
        # A chunk bigger than the whole clip it belongs to.
        send(_chunk("cam-1", overfull, piece, index=0, count=2, size=150_000))
        # Within the limits: 800,000 bytes being received from cam-1...
        first = new_id()
        send(_chunk("cam-1", first, piece, index=0, count=4, size=800_000))
        # ...(and the overfull clip's 150,000) so cam-1 has no room for 400,000 more (1 MiB a device),
        # cam-2 has (1.35 MB in all),
        # and then cam-3 finds the spool full (1.5 MiB in all).
        crowded, other, full = new_id(), new_id(), new_id()
        send(_chunk("cam-1", crowded, piece, index=0, count=2, size=400_000))
        send(_chunk("cam-2", other, piece, index=0, count=2, size=400_000))
        send(_chunk("cam-3", full, piece, index=0, count=3, size=500_000))
        wait_for(lambda: len(dead_letter_rows(central)) >= 5, what="five refusals")

        reasons = [row["reason"] for row in dead_letter_rows(central)]
        by_clip = {
            clip: next(r for r in reasons if clip in r) for clip in (huge, short, overfull, crowded, full)
        }
        assert (
            f"claims {MAX_CLIP_CHUNKS * CLIP_CHUNK_BYTES} bytes; a clip may have {1024 * MIB}"
            in by_clip[huge]
        )
        assert f"1 chunks of at most {CLIP_CHUNK_BYTES} bytes cannot make {10 * MIB} bytes" in by_clip[short]
        assert "past the clip's 150000 bytes" in by_clip[overfull]
        assert f"cam-1 already has 950000 bytes being received; a device may have {MIB}" in by_clip[crowded]
        assert "the spool holds 1350000 bytes; it may hold" in by_clip[full]
        assert len(dead_letter_rows(central)) == 5
        assert ingest.counters.dead_letters_by_cause["media"] == 5

        wait_for(lambda: _spooled_bytes(central) == 2 * len(piece), what="the two accepted chunks spooled")
        assert {row["clip_id"] for row in central.db()["clips"].rows} == {first, other, overfull}
        # The overfull clip's row exists (its size was plausible) but none of its bytes were kept.
        assert not (central.data_dir / "spool" / overfull).exists()
    central.close()
