"""Store-and-forward for field devices: a durable SQLite outbox in front of MQTT, clip chunking and disk quotas.

Shared by the camera and the badge agents::

    outbox = Outbox(storage / "outbox.db")
    spool = ClipSpool(storage / "clips", outbox, site=site, device=device)
    publisher = Publisher(outbox, link, resolvers={"clip": spool.chunk_payload}).start()
    publisher.enqueue(topic, payload, kind="event", priority=PRIORITY_EVENT)  # the outbox's one door
    with publisher.transaction() as tx:  # several writes that must commit together
        tx.put(topic, event_payload, kind="event", priority=PRIORITY_EVENT)
        spool.promise(tx, clip_id, recording=path, event_id=event_id)  # the event names a clip being recorded
    spool.add(clip_path, clip_id=clip_id, event_id=event_id); publisher.wake()  # or spool.lost(clip_id, reason)
    # on down/clip_request: spool.handle_request(request); publisher.wake()
    # on down/resend (the broker lost what it acknowledged): publisher.resend(request.id, request.since.timestamp())
"""

from kuzet.edge.delivery.clips import ClipSpool
from kuzet.edge.delivery.outbox import (
    PRIORITY_CLIP,
    PRIORITY_EVENT,
    PRIORITY_RESULT,
    PRIORITY_SNAPSHOT,
    Outbox,
)
from kuzet.edge.delivery.publisher import DeliverySettings, Publisher

__all__ = [
    "PRIORITY_CLIP",
    "PRIORITY_EVENT",
    "PRIORITY_RESULT",
    "PRIORITY_SNAPSHOT",
    "ClipSpool",
    "DeliverySettings",
    "Outbox",
    "Publisher",
]
