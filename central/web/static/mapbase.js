/* Leaflet set up the Kuzet way: tiles only if configured, otherwise a plain grid; always a scale. */
"use strict";
const KuzetMap = {
  create(element, lat, lon, zoom) {
    const map = L.map(element, { zoomControl: true, attributionControl: true }).setView([lat, lon], zoom);
    const tileUrl = element.dataset.tileUrl;
    if (tileUrl) {
      L.tileLayer(tileUrl, { attribution: element.dataset.tileAttribution || "", maxZoom: 19 }).addTo(map);
    } else {
      element.classList.add("no-tiles");
      map.attributionControl.setPrefix(T("no map tiles configured"));
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
