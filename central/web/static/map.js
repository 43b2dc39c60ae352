/* The live map: cameras (squares, with their field of view), patrol units (dots coloured by status), open
   events (pulsing, by severity, clustered where they crowd), and the dispatches under way (a line from each
   unit to where it is sent; a circle for an intercept's radius). Labels never cover one another; an event's
   popup shows its snapshot and sends the nearest unit. Words come from the template (#map-words). */
"use strict";
(() => {
  const element = document.getElementById("map");
  const words = JSON.parse(document.getElementById("map-words").textContent);
  const canDispatch = element.dataset.canDispatch === "1";
  const map = KuzetMap.create(element, parseFloat(element.dataset.lat), parseFloat(element.dataset.lon), parseInt(element.dataset.zoom, 10));
  // Cameras and patrols above the events, so that a crowd of events never hides them.
  map.createPane("views").style.zIndex = 390;
  map.createPane("units").style.zIndex = 640;
  map.createPane("cameras").style.zIndex = 630;
  const SEVERITY_RANK = { critical: 4, high: 3, medium: 2, low: 1, info: 0 };
  const events = L.markerClusterGroup({
    maxClusterRadius: 40, showCoverageOnHover: false, spiderfyOnMaxZoom: true,
    // A cluster takes the colour of its most severe event, and says how many it holds.
    iconCreateFunction: (cluster) => {
      const worst = cluster.getAllChildMarkers().reduce((w, m) => (SEVERITY_RANK[m.options.severity] > SEVERITY_RANK[w] ? m.options.severity : w), "info");
      return L.divIcon({ className: "", html: `<div class="event-cluster sev-${worst}"><span>${cluster.getChildCount()}</span></div>`, iconSize: [34, 34], iconAnchor: [17, 17] });
    },
  });
  const layers = {
    devices: L.layerGroup().addTo(map), views: L.layerGroup().addTo(map), units: L.layerGroup().addTo(map),
    events: events.addTo(map), dispatches: L.layerGroup().addTo(map),
  };
  const markers = { devices: new Map(), units: new Map(), events: new Map() };
  const views = new Map();  // camera id -> its field-of-view polygon
  const overlays = {};
  overlays[words.layer_cameras] = layers.devices;
  overlays[words.layer_views] = layers.views;
  overlays[words.layer_patrols] = layers.units;
  overlays[words.layer_events] = layers.events;
  overlays[words.layer_dispatches] = layers.dispatches;
  KuzetMap.layers(overlays, map);

  const UNIT_LEGEND = ["available", "sent", "en_route", "on_scene", "busy", "offline"];
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "map-legend");
    div.innerHTML = `<i class="lg-camera"></i>${Kuzet.esc(words.legend_camera)}<br>` +
      UNIT_LEGEND.map((s) => `<i class="mk-unit st-${s}"></i>${Kuzet.esc(words.status[s])}`).join("<br>") +
      `<br><i style="background:var(--sev-critical)"></i>${Kuzet.esc(words.legend_event)}` +
      `<br><i class="lg-line"></i>${Kuzet.esc(words.legend_dispatch)}`;
    return div;
  };
  legend.addTo(map);

  function place(kind, id, lat, lon, icon, popup, label, options = {}) {
    if (lat == null || lon == null) return null;
    let marker = markers[kind].get(id);
    if (!marker) {
      marker = L.marker([lat, lon], { icon, ...options }).addTo(layers[kind]);
      // Leaflet puts a tooltip's text into innerHTML: names come from devices and operators, so escape them.
      if (label) marker.bindTooltip(Kuzet.esc(label), { permanent: true, direction: "right", className: "map-label", offset: [8, 0] });
      markers[kind].set(id, marker);
    } else {
      // Only what changed: a clustered marker that "moves" is taken out and put back, closing its open popup
      // and reopening it blank for a moment, on every live update.
      const at = marker.getLatLng();
      if (at.lat !== lat || at.lng !== lon) marker.setLatLng([lat, lon]);
      if (marker.options.icon.options.html !== icon.options.html || marker.options.icon.options.className !== icon.options.className) marker.setIcon(icon);
      Object.assign(marker.options, options);
    }
    // An open popup keeps its DOM (an image loading, a button half-pressed) unless what it says changed.
    const current = marker.getPopup();
    if (!current || current.getContent() !== popup) marker.bindPopup(popup);
    return marker;
  }

  // --- cameras and their field of view ------------------------------------------------------------------
  function device(d) {
    if (d.kind === "badge") return;  // badges are shown as units
    const state = d.revoked_at ? words.status.revoked : d.online ? words.online : words.status.offline;
    place("devices", d.device_id, d.lat, d.lon, KuzetMap.dot("mk-camera" + (d.online ? "" : " offline"), 14),
      `<b><a href="/devices/${encodeURIComponent(d.device_id)}">${Kuzet.esc(d.name || d.device_id)}</a></b><br>${Kuzet.esc(state)} · ${Kuzet.esc(T("last seen %(when)s", { when: Kuzet.ago(d.last_seen) }))}`,
      d.name || d.device_id, { pane: "cameras" });
    if (d.lat == null || d.heading_deg == null) return;
    const points = KuzetMap.sector(d.lat, d.lon, d.heading_deg, d.fov_deg || 60, d.view_m || 100);
    const style = { pane: "views", color: "#4f9dff", weight: 1, fillOpacity: d.online ? 0.18 : 0.06, className: "camera-view" };
    const view = views.get(d.device_id);
    if (view) { view.setLatLngs(points); view.setStyle(style); }
    else views.set(d.device_id, L.polygon(points, style).addTo(layers.views));
  }

  // --- patrols, coloured by what they are doing ---------------------------------------------------------
  const unitsById = new Map();
  function unitStatus(u) {
    if (!u.online) return "offline";
    if (u.current_dispatch) return lines.get(u.current_dispatch)?.state || "sent";
    if (u.duty === "off_duty") return "off_duty";
    return u.duty === "available" ? "available" : "busy";
  }

  function unit(u) {
    unitsById.set(u.device_id, u);
    const status = unitStatus(u);
    place("units", u.device_id, u.lat, u.lon, KuzetMap.dot(`mk-unit st-${status}`, 16),
      `<b><a href="/devices/${encodeURIComponent(u.device_id)}">${Kuzet.esc(u.callsign || u.device_id)}</a></b><br>${Kuzet.esc(words.status[status] || status)}` +
      `<br>${Kuzet.esc(T("position %(when)s", { when: Kuzet.ago(u.position_at) }))}<br><a href="/units">${Kuzet.esc(words.unit_board)}</a>`,
      u.callsign || u.device_id, { pane: "units" });
    for (const line of lines.values()) if (line.unit === u.device_id) drawLine(line);
    declutterSoon();
  }

  // --- dispatches: unit -> place lines, intercept circles -------------------------------------------------
  const SHOWN = ["proposed", "sent", "acknowledged", "en_route", "on_scene"];
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
      if (line.path) line.path.bindPopup(`<b>${Kuzet.esc(d.unit)}</b> · ${Kuzet.esc(Kuzet.word("mode", d.mode))} · ${Kuzet.esc(words.status[d.state] || d.state)}` +
        (d.event_id ? `<br><a href="/events/${encodeURIComponent(d.event_id)}">${Kuzet.esc(words.the_event)}</a>` : ""));
    }
    const holder = unitsById.get(d.unit);
    if (holder) unit(holder);  // its colour follows the dispatch's state
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

  // --- open events, clustered -----------------------------------------------------------------------------
  const eventsById = new Map();
  function event(e) {
    const prior = eventsById.get(e.event_id);
    if (prior && !e.snapshot_sha256) e.snapshot_sha256 = prior.snapshot_sha256;  // a live update may not carry it
    eventsById.set(e.event_id, e);
    const existing = markers.events.get(e.event_id);
    if (e.status === "closed" || e.lat == null) {
      if (existing) { layers.events.removeLayer(existing); markers.events.delete(e.event_id); }
      eventsById.delete(e.event_id);
      return;
    }
    const icon = L.divIcon({ className: "", html: `<div class="mk mk-event" style="width:14px;height:14px;background:${KuzetMap.severityColour(e.severity)}"></div>`, iconSize: [14, 14], iconAnchor: [7, 7] });
    if (existing && existing.options.severity !== e.severity) { layers.events.removeLayer(existing); markers.events.delete(e.event_id); }
    place("events", e.event_id, e.lat, e.lon, icon, eventPopup(e), null, { severity: e.severity });
    layers.events.refreshClusters();
  }

  // An event's popup: what and where, its snapshot (loaded when the popup opens), and the dispatch buttons.
  function eventPopup(e) {
    const id = encodeURIComponent(e.event_id);
    const snapshot = e.snapshot_sha256 ? `<img class="popup-snapshot" src="/media/${encodeURIComponent(e.snapshot_sha256)}" alt="">` : "";
    const send = canDispatch && e.status !== "dispatched"
      ? `<div class="popup-actions"><button class="small primary map-send-nearest" data-id="${Kuzet.esc(e.event_id)}">${Kuzet.esc(words.send_nearest)}</button>` +
        ` <a href="/units?event=${id}">${Kuzet.esc(words.choose_unit)}</a></div>`
      : "";
    return `<div class="event-popup" data-event="${Kuzet.esc(e.event_id)}"><b><a href="/events/${id}">${Kuzet.esc(Kuzet.typeName(e.event_type))}</a></b> · ${Kuzet.esc(Kuzet.word("severity", e.severity))}` +
      `<br>${Kuzet.esc(Kuzet.objectName(e.label))} · ${Kuzet.esc(e.device)}<br>${Kuzet.time(e.received_at)}${snapshot}${send}</div>`;
  }

  element.addEventListener("click", async (click) => {
    const button = click.target.closest("button.map-send-nearest");
    if (!button) return;
    button.disabled = true;
    try {
      const d = await Kuzet.api("POST", "/api/v1/dispatches/nearest", { event_id: button.dataset.id });
      Kuzet.toast(words.sent.replace("%(unit)s", d.unit), "", null);
      map.closePopup();
    } catch (err) {
      Kuzet.toast(words.failed, err.message, "high");
      button.disabled = false;
    }
  });

  // --- labels: patrols first, then cameras; a label that would cover another is hidden -----------------
  let declutterPending = null;
  function declutterSoon() {
    clearTimeout(declutterPending);
    declutterPending = setTimeout(() => {
      const tooltips = [...markers.units.values(), ...markers.devices.values()].map((m) => m.getTooltip()).filter(Boolean);
      KuzetMap.declutter(tooltips);
      element.dataset.decluttered = "1";
    }, 50);
  }
  map.on("zoomend moveend overlayadd overlayremove", declutterSoon);

  async function load() {
    const data = await Kuzet.api("GET", "/api/v1/map");
    Kuzet.noteDevices(data.devices);
    (data.dispatches || []).forEach(dispatch);
    data.devices.forEach(device);
    data.units.forEach(unit);
    data.events.forEach(event);
    (data.dispatches || []).forEach(dispatch);  // again: lines need their units' markers
    declutterSoon();
    element.dataset.loaded = "1";
  }
  Kuzet.on("device", (d) => { device(d); declutterSoon(); });
  Kuzet.on("unit", (u) => { if (u.device_id) unit(u); });
  Kuzet.on("event", event);
  Kuzet.on("dispatch", dispatch);
  load();
})();
