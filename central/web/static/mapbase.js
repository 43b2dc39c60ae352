/* Leaflet set up the Kuzet way: tiles only if configured (the site's own, served by central, or a tile
   server's), otherwise a plain grid; always a scale. Beyond the tile set's deepest zoom Leaflet enlarges its
   deepest tiles (maxNativeZoom) instead of asking for tiles that do not exist. */
"use strict";
const KuzetMap = {
  create(element, lat, lon, zoom) {
    const map = L.map(element, { zoomControl: false, attributionControl: true, maxZoom: 19 }).setView([lat, lon], zoom);
    // Leaflet's own words are English: its buttons' titles, its brand link's title, its scale's units.
    L.control.zoom({ zoomInTitle: T("Zoom in"), zoomOutTitle: T("Zoom out") }).addTo(map);
    map.attributionControl.setPrefix("Leaflet");
    const tileUrl = element.dataset.tileUrl;
    if (tileUrl) {
      const ds = element.dataset;
      L.tileLayer(tileUrl, {
        attribution: ds.tileAttribution || "", maxZoom: 19,
        minNativeZoom: parseInt(ds.tileMinZoom || "0", 10), maxNativeZoom: parseInt(ds.tileMaxZoom || "19", 10),
        className: "site-tiles",
      }).addTo(map);
    } else {
      element.classList.add("no-tiles");
      map.attributionControl.setPrefix(Kuzet.esc(element.dataset.tileProblem || element.dataset.noTiles || T("no map tiles configured")));
    }
    new KuzetMap.Scale({ metric: true, imperial: false }).addTo(map);
    return map;
  },
  // Leaflet 1.9's metric scale with the units in the reader's language ("500 м", "1 км").
  Scale: L.Control.Scale.extend({
    _updateMetric(maxMeters) {
      const metres = this._getRoundNum(maxMeters);
      const text = metres < 1000 ? T("%(n)s m", { n: metres }) : T("%(n)s km", { n: Kuzet.number(metres / 1000) });
      this._updateScale(this._mScale, text, metres / maxMeters);
    },
  }),
  // The layers control's button, titled in English by Leaflet.
  layers(overlays, map) {
    const control = L.control.layers(null, overlays).addTo(map);
    const toggle = control.getContainer().querySelector(".leaflet-control-layers-toggle");
    if (toggle) toggle.title = T("Layers");
    return control;
  },
  dot(className, size) {
    return L.divIcon({ className: "", html: `<div class="mk ${className}" style="width:${size}px;height:${size}px"></div>`, iconSize: [size, size], iconAnchor: [size / 2, size / 2] });
  },
  // A camera's field of view: a sector from its place, `heading` degrees from north, `fov` wide, `range` metres.
  sector(lat, lon, heading, fov, range) {
    const points = [[lat, lon]];
    const metresPerDegLat = 111320, metresPerDegLon = 111320 * Math.cos(lat * Math.PI / 180);
    for (let i = 0; i <= 16; i++) {
      const bearing = (heading - fov / 2 + (fov * i) / 16) * Math.PI / 180;
      points.push([lat + (range * Math.cos(bearing)) / metresPerDegLat, lon + (range * Math.sin(bearing)) / metresPerDegLon]);
    }
    return points;
  },
  // Permanent labels that would cover one another: the first in `tooltips` (most important first) stays,
  // any later one overlapping a shown label is hidden until a zoom or a move makes room.
  declutter(tooltips) {
    const shown = [];
    for (const tooltip of tooltips) {
      const element = tooltip.getElement && tooltip.getElement();
      if (!element) continue;
      element.classList.remove("label-hidden");
      const box = element.getBoundingClientRect();
      if (!box.width) continue;  // its layer is switched off
      const overlaps = shown.some((b) => box.left < b.right && box.right > b.left && box.top < b.bottom && box.bottom > b.top);
      if (overlaps) element.classList.add("label-hidden");
      else shown.push(box);
    }
  },
  severityColour(severity) {
    return getComputedStyle(document.documentElement).getPropertyValue("--sev-" + severity).trim() || "#ff3b4e";
  },
};
