/* Leaflet set up the Kuzet way: tiles only if configured (the site's own, served by central, or a tile
   server's), otherwise a plain grid; always a scale. Beyond the tile set's deepest zoom Leaflet enlarges its
   deepest tiles (maxNativeZoom) instead of asking for tiles that do not exist. */
"use strict";
const KuzetMap = {
  create(element, lat, lon, zoom) {
    const map = L.map(element, { zoomControl: true, attributionControl: true }).setView([lat, lon], zoom);
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
      map.attributionControl.setPrefix(Kuzet.esc(element.dataset.tileProblem || element.dataset.noTiles || "no map tiles configured"));
    }
    L.control.scale({ metric: true, imperial: false }).addTo(map);
    return map;
  },
  dot(className, size) {
    return L.divIcon({ className: "", html: `<div class="mk ${className}" style="width:${size}px;height:${size}px"></div>`, iconSize: [size, size], iconAnchor: [size / 2, size / 2] });
  },
  severityColour(severity) {
    return getComputedStyle(document.documentElement).getPropertyValue("--sev-" + severity).trim() || "#ff3b4e";
  },
};
