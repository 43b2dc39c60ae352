/* The live map: cameras (squares), patrol units (dots, by duty) and open events (pulsing, by severity). */
"use strict";
(() => {
  const element = document.getElementById("map");
  const map = KuzetMap.create(element, parseFloat(element.dataset.lat), parseFloat(element.dataset.lon), parseInt(element.dataset.zoom, 10));
  const layers = { devices: L.layerGroup().addTo(map), units: L.layerGroup().addTo(map), events: L.layerGroup().addTo(map) };
  const markers = { devices: new Map(), units: new Map(), events: new Map() };
  L.control.layers(null, { Cameras: layers.devices, Patrols: layers.units, "Open events": layers.events }).addTo(map);
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "map-legend");
    div.innerHTML = '<i style="background:var(--accent);border-radius:2px"></i>camera<br><i style="background:var(--ok)"></i>patrol available<br>' +
      '<i style="background:#a371f7"></i>patrol busy / en route<br><i style="background:var(--sev-critical)"></i>open event';
    return div;
  };
  legend.addTo(map);

  function place(kind, id, lat, lon, icon, popup, label) {
    if (lat == null || lon == null) return;
    let marker = markers[kind].get(id);
    if (!marker) {
      marker = L.marker([lat, lon], { icon }).addTo(layers[kind]);
      if (label) marker.bindTooltip(label, { permanent: true, direction: "right", className: "map-label", offset: [8, 0] });
      markers[kind].set(id, marker);
    } else {
      marker.setLatLng([lat, lon]);
      marker.setIcon(icon);
    }
    marker.bindPopup(popup);
  }

  function device(d) {
    if (d.kind === "badge") return;  // badges are shown as units
    const state = d.revoked_at ? "revoked" : d.online ? "online" : "offline";
    place("devices", d.device_id, d.lat, d.lon, KuzetMap.dot("mk-camera" + (d.online ? "" : " offline"), 14),
      `<b>${Kuzet.esc(d.name || d.device_id)}</b><br>${state} · last seen ${Kuzet.ago(d.last_seen)}`, d.name || d.device_id);
  }

  function unit(u) {
    const cls = u.duty === "available" ? "" : u.duty === "off_duty" || !u.online ? " off" : " busy";
    place("units", u.device_id, u.lat, u.lon, KuzetMap.dot("mk-unit" + cls, 16),
      `<b>${Kuzet.esc(u.callsign || u.device_id)}</b><br>${Kuzet.esc(u.duty)}${u.current_dispatch ? " · on a dispatch" : ""}<br>position ${Kuzet.ago(u.position_at)}`,
      u.callsign || u.device_id);
  }

  function event(e) {
    const existing = markers.events.get(e.event_id);
    if (e.status === "closed" || e.lat == null) {
      if (existing) { existing.remove(); markers.events.delete(e.event_id); }
      return;
    }
    const icon = L.divIcon({ className: "", html: `<div class="mk mk-event" style="width:14px;height:14px;background:${KuzetMap.severityColour(e.severity)}"></div>`, iconSize: [14, 14], iconAnchor: [7, 7] });
    place("events", e.event_id, e.lat, e.lon, icon,
      `<b><a href="/events/${encodeURIComponent(e.event_id)}">${Kuzet.esc(Kuzet.typeName(e.event_type))}</a></b> · ${Kuzet.esc(e.severity)}<br>${Kuzet.esc(e.label)} · ${Kuzet.esc(e.device)}<br>${Kuzet.time(e.received_at)}`);
  }

  async function load() {
    const data = await Kuzet.api("GET", "/api/v1/map");
    Kuzet.noteDevices(data.devices);
    data.devices.forEach(device);
    data.units.forEach(unit);
    data.events.forEach(event);
    element.dataset.loaded = "1";
  }
  Kuzet.on("device", device);
  Kuzet.on("unit", (u) => { if (u.device_id) unit(u); });
  Kuzet.on("event", event);
  load();
})();
