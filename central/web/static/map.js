/* The live map: cameras (squares), patrol units (dots, by duty), open events (pulsing, by severity), and the
   dispatches under way (a line from each unit to where it is sent; a circle for an intercept's radius). */
"use strict";
(() => {
  const element = document.getElementById("map");
  const map = KuzetMap.create(element, parseFloat(element.dataset.lat), parseFloat(element.dataset.lon), parseInt(element.dataset.zoom, 10));
  const layers = {
    devices: L.layerGroup().addTo(map), units: L.layerGroup().addTo(map), events: L.layerGroup().addTo(map),
    dispatches: L.layerGroup().addTo(map),
  };
  const markers = { devices: new Map(), units: new Map(), events: new Map() };
  L.control.layers(null, { [T("Cameras")]: layers.devices, [T("Patrols")]: layers.units, [T("Open events")]: layers.events, [T("Dispatches")]: layers.dispatches }).addTo(map);
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "map-legend");
    div.innerHTML = `<i style="background:var(--accent);border-radius:2px"></i>${T("camera")}<br><i style="background:var(--ok)"></i>${T("patrol available")}<br>` +
      `<i style="background:#a371f7"></i>${T("patrol busy / en route")}<br><i style="background:var(--sev-critical)"></i>${T("open event")}<br>` +
      `<i style="background:#c8a6ff;border-radius:0;height:3px"></i>${T("dispatch (dashed: awaiting confirmation)")}`;
    return div;
  };
  legend.addTo(map);

  function place(kind, id, lat, lon, icon, popup, label) {
    if (lat == null || lon == null) return;
    let marker = markers[kind].get(id);
    if (!marker) {
      marker = L.marker([lat, lon], { icon }).addTo(layers[kind]);
      // Leaflet puts a tooltip's text into innerHTML: names come from devices and operators, so escape them.
      if (label) marker.bindTooltip(Kuzet.esc(label), { permanent: true, direction: "right", className: "map-label", offset: [8, 0] });
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
      `<b><a href="/devices/${encodeURIComponent(d.device_id)}">${Kuzet.esc(d.name || d.device_id)}</a></b><br>${Kuzet.esc(Kuzet.word("device", state))} · ${T("last seen %(when)s", { when: Kuzet.ago(d.last_seen) })}`, d.name || d.device_id);
  }

  function unit(u) {
    const cls = u.duty === "off_duty" || !u.online ? " off" : u.duty === "available" && !u.current_dispatch ? "" : " busy";
    place("units", u.device_id, u.lat, u.lon, KuzetMap.dot("mk-unit" + cls, 16),
      `<b><a href="/devices/${encodeURIComponent(u.device_id)}">${Kuzet.esc(u.callsign || u.device_id)}</a></b><br>${Kuzet.esc(Kuzet.word("duty", u.duty))}${u.current_dispatch ? " · " + T("on a dispatch") : ""}<br>${T("position %(when)s", { when: Kuzet.ago(u.position_at) })}`,
      u.callsign || u.device_id);
    for (const line of lines.values()) if (line.unit === u.device_id) drawLine(line);
  }

  // --- dispatches: unit -> place lines, intercept circles -------------------------------------------------
  const SHOWN = ["proposed", "confirmed", "sent", "acknowledged", "en_route", "on_scene"];
  const lines = new Map();  // dispatch_id -> {unit, lat, lon, state, path}
  const circles = new Map();  // intercept key -> {circle, dispatches: Set}

  function drawLine(line) {
    const marker = markers.units.get(line.unit);
    if (!marker) return;
    const points = [marker.getLatLng(), [line.lat, line.lon]];
    const style = { color: "#c8a6ff", weight: 3, opacity: 0.9, dashArray: line.state === "proposed" ? "6 6" : null, className: "dispatch-line" };
    if (line.path) { line.path.setLatLngs(points); line.path.setStyle(style); }
    else line.path = L.polyline(points, style).addTo(layers.dispatches);
  }

  function dispatch(d) {
    if (!d.dispatch_id || d.lat == null || d.lon == null) return;
    const shown = SHOWN.includes(d.state);
    let line = lines.get(d.dispatch_id);
    if (!shown) {
      if (line) { if (line.path) line.path.remove(); lines.delete(d.dispatch_id); }
    } else {
      if (!line) { line = { unit: d.unit }; lines.set(d.dispatch_id, line); }
      Object.assign(line, { lat: d.lat, lon: d.lon, state: d.state });
      drawLine(line);
      if (line.path) line.path.bindPopup(`<b>${Kuzet.esc(d.unit)}</b> · ${Kuzet.esc(Kuzet.word("mode", d.mode))} · ${Kuzet.esc(Kuzet.word("dispatch", d.state))}` +
        (d.event_id ? `<br><a href="/events/${encodeURIComponent(d.event_id)}">${T("the event")}</a>` : ""));
    }
    if (d.mode !== "intercept" || !d.radius_m) return;
    const key = d.event_id || `${d.lat},${d.lon}`;
    let area = circles.get(key);
    if (shown) {
      if (!area) {
        area = { dispatches: new Set(), circle: L.circle([d.lat, d.lon], { radius: d.radius_m, color: "#ff8a1f", weight: 2, fillOpacity: 0.08, dashArray: "4 6", className: "intercept-area" }).addTo(layers.dispatches) };
        circles.set(key, area);
      }
      area.dispatches.add(d.dispatch_id);
    } else if (area) {
      area.dispatches.delete(d.dispatch_id);
      if (!area.dispatches.size) { area.circle.remove(); circles.delete(key); }
    }
  }

  function event(e) {
    const existing = markers.events.get(e.event_id);
    if (e.status === "closed" || e.lat == null) {
      if (existing) { existing.remove(); markers.events.delete(e.event_id); }
      return;
    }
    const icon = L.divIcon({ className: "", html: `<div class="mk mk-event" style="width:14px;height:14px;background:${KuzetMap.severityColour(e.severity)}"></div>`, iconSize: [14, 14], iconAnchor: [7, 7] });
    place("events", e.event_id, e.lat, e.lon, icon,
      `<b><a href="/events/${encodeURIComponent(e.event_id)}">${Kuzet.esc(Kuzet.typeName(e.event_type))}</a></b> · ${Kuzet.esc(Kuzet.word("severity", e.severity))}<br>${Kuzet.esc(e.label)} · ${Kuzet.esc(e.device)}<br>${Kuzet.time(e.received_at)}`);
  }

  async function load() {
    const data = await Kuzet.api("GET", "/api/v1/map");
    Kuzet.noteDevices(data.devices);
    data.devices.forEach(device);
    data.units.forEach(unit);
    data.events.forEach(event);
    (data.dispatches || []).forEach(dispatch);
    element.dataset.loaded = "1";
  }
  Kuzet.on("device", device);
  Kuzet.on("unit", (u) => { if (u.device_id) unit(u); });
  Kuzet.on("event", event);
  Kuzet.on("dispatch", dispatch);
  load();
})();
