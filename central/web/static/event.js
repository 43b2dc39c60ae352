/* Event detail: the position on a small map, and notice of changes made elsewhere (another operator, routing). */
"use strict";
(() => {
  const eventId = document.getElementById("event").dataset.eventId;
  const mini = document.getElementById("minimap");
  if (mini) {
    const lat = parseFloat(mini.dataset.lat), lon = parseFloat(mini.dataset.lon);
    const map = KuzetMap.create(mini, lat, lon, 16);
    L.circleMarker([lat, lon], { radius: 9, color: "#0b0f14", weight: 2, fillColor: KuzetMap.severityColour(mini.dataset.severity), fillOpacity: 1 }).addTo(map);
  }
  let noticed = false;
  function changed(what) {
    if (noticed) return;
    noticed = true;
    Kuzet.toast(`This event ${what}`, "Click to reload the page", null, location.pathname);
  }
  Kuzet.on("event", (event) => {
    if (event.event_id === eventId && event.status !== document.getElementById("event-status").textContent) changed("changed: " + event.status);
  });
  // Dispatching goes through routing's API (central.routing.web); the page reloads to show the result.
  const candidates = document.getElementById("candidates");
  const recommend = document.getElementById("recommend");
  if (recommend) {
    recommend.addEventListener("click", async () => {
      recommend.disabled = true;
      try {
        const { units } = await Kuzet.api("GET", `/api/v1/dispatches/recommend?event_id=${encodeURIComponent(eventId)}`);
        candidates.innerHTML = units.length ? units.map((u) => `<li class="row"><b>${Kuzet.esc(u.callsign || u.device_id)}</b>
          <span class="muted">${(u.travel_m / 1000).toFixed(2)} km · ${Kuzet.esc(u.duty)}</span><span class="spacer"></span>
          <button class="small primary send-unit" data-unit="${Kuzet.esc(u.device_id)}">Send</button></li>`).join("")
          : '<li class="muted">No patrol is available near this event.</li>';
      } catch (err) { Kuzet.toast("Cannot recommend", err.message, "high"); }
      recommend.disabled = false;
    });
  }
  async function act(method, path, body) {
    try { await Kuzet.api(method, path, body); location.reload(); }
    catch (err) { Kuzet.toast("Dispatch refused", err.message, "high"); }
  }
  document.addEventListener("click", (e) => {
    const send = e.target.closest(".send-unit");
    if (send) act("POST", "/api/v1/dispatches", { event_id: eventId, unit: send.dataset.unit });
    const confirmButton = e.target.closest(".confirm-dispatch");
    if (confirmButton) act("POST", `/api/v1/dispatches/${confirmButton.dataset.id}/confirm`);
    const cancel = e.target.closest(".cancel-dispatch");
    if (cancel) {
      const reason = prompt("Why cancel this dispatch?");
      if (reason) act("POST", `/api/v1/dispatches/${cancel.dataset.id}/cancel`, { reason });
    }
  });
  Kuzet.on("dispatch", (d) => { if (d.event_id === eventId) changed("has a dispatch update"); });
})();
