/* Leaflet set up the Kuzet way: tiles only if configured (the site's own, served by central, or a tile
   server's), otherwise a plain grid; always a scale. Beyond the tile set's deepest zoom Leaflet enlarges its
   deepest tiles (maxNativeZoom) instead of asking for tiles that do not exist. */
"use strict";
const KuzetMap = {
  create(element, lat, lon, zoom) {
    const map = L.map(element, { zoomControl: true, attributionControl: true, maxZoom: 19 }).setView([lat, lon], zoom);
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
    L.control.scale({ metric: true, imperial: false }).addTo(map);
    return map;
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
