"""The device runtime: what the street camera and the patrol badge both run around their own work.

``device.DeviceRuntime``: the MQTT link, delivery (durable outbox, publisher, clip spool), availability and the
heartbeat; ``commands.CommandRegistry``: central's commands as a ``{name: handler}`` table with one policy
(expiry, command threads, bad messages counted and kept, unknown commands answered, one place that answers);
``updates.UpdateCommands``: ``install_update`` and ``rollback_update``.

A device keeps only what is its own::

    runtime = DeviceRuntime(kind="camera", site=site, device=device, mqtt=config.mqtt, storage=storage,
                            spool_dir=storage / "clips", spool_limits={...}, status=self.status,
                            heartbeat_s=lambda: config.health.heartbeat_s)
    runtime.commands.register_all({"snapshot": self._snapshot, "live_stop": self._live_stop})
    UpdateCommands(updates, base=lambda: self.base_config, prepare=..., switch=...).register(runtime.commands)
    runtime.start()
    runtime.deliver("event", event, PRIORITY_EVENT)
"""

from kuzet.edge.runtime.commands import CommandRegistry, Handler, RejectedLog, Reply
from kuzet.edge.runtime.device import DeviceRuntime
from kuzet.edge.runtime.updates import UpdateCommands

__all__ = ["CommandRegistry", "DeviceRuntime", "Handler", "RejectedLog", "Reply", "UpdateCommands"]
