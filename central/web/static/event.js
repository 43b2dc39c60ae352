/* Event detail: the position on a small map, the event's state and its dispatches kept current live, and the
   operator's dispatch controls (recommend and send, confirm, cancel, reassign, intercept) through routing's API. */
"use strict";
(() => {
  const page = document.getElementById("event");
  const eventId = page.dataset.eventId;
  const routing = page.dataset.routing === "1";
  const canDispatch = page.dataset.canDispatch === "1";
  const ACTIVE = ["sent", "acknowledged", "en_route", "on_scene"];

  const mini = document.getElementById("minimap");
  if (mini) {
    const lat = parseFloat(mini.dataset.lat), lon = parseFloat(mini.dataset.lon);
    const map = KuzetMap.create(mini, lat, lon, 16);
    L.circleMarker([lat, lon], { radius: 9, color: "#0b0f14", weight: 2, fillColor: KuzetMap.severityColour(mini.dataset.severity), fillOpacity: 1 }).addTo(map);
  }

  // --- the event's own state -------------------------------------------------------------------------------
  function showEvent(e) {
    const status = document.getElementById("event-status");
    status.textContent = Kuzet.word("status", e.status);
    status.className = "status status-" + e.status;
    page.dataset.status = e.status;
    document.getElementById("event-assigned").textContent = e.assigned_to || "—";
    if (e.edge_state) document.getElementById("event-edge-state").textContent = `${Kuzet.word("edge", e.edge_state)} (${T("update %(seq)s", { seq: e.seq })})`;
    if (e.score != null) document.getElementById("event-score").textContent = `${Math.round(e.score * 100)}%`;
    const unit = document.getElementById("event-unit");
    unit.innerHTML = e.dispatched_unit ? `<a href="/devices/${encodeURIComponent(e.dispatched_unit)}">${Kuzet.esc(e.dispatched_unit)}</a>` : "—";
    const ack = document.getElementById("ack-form");
    if (ack && e.status !== "new") ack.remove();
    const closed = e.status === "closed";
    for (const id of ["open-actions", "dispatch-panel"]) {
      const element = document.getElementById(id);
      if (element) element.hidden = closed;
    }
  }
  Kuzet.on("event", (e) => { if (e.event_id === eventId) { showEvent(e); reloadEvidence(); } });
  // What changed while the stream was down (or before it first opened) came on no stream: read the event again.
  Kuzet.on("open", async () => {
    try { showEvent((await Kuzet.api("GET", `/api/v1/events/${encodeURIComponent(eventId)}`)).event); }
    catch (err) { Kuzet.toast(T("Cannot refresh the event"), err.message, "high"); }
  });

  // --- clip, snapshot and track timeline: redrawn by central when they arrive ----------------------------
  // Each panel carries a signature of what it shows; only a panel whose signature changed is replaced, so a
  // clip being watched is not reset by a later track update.
  const evidence = document.getElementById("evidence-panels");
  let evidencePending = null;
  function reloadEvidence() {
    clearTimeout(evidencePending);
    evidencePending = setTimeout(async () => {
      let html;
      try {
        const response = await fetch(`/events/${encodeURIComponent(eventId)}/evidence-panels`, { credentials: "same-origin" });
        if (!response.ok) throw new Error(response.statusText);
        html = await response.text();
      } catch (err) { Kuzet.toast(T("Cannot refresh the evidence"), err.message, "high"); return; }
      const fresh = document.createElement("div");
      fresh.innerHTML = html;
      for (const panel of fresh.querySelectorAll("[data-panel]")) {
        const current = evidence.querySelector(`[data-panel="${panel.dataset.panel}"]`);
        if (current && current.dataset.signature !== panel.dataset.signature) current.replaceWith(panel);
      }
      evidence.dataset.version = String(Number(evidence.dataset.version || 0) + 1);
    }, 150);
  }
  Kuzet.on("open", reloadEvidence);  // catch up after a reconnect (and on what arrived while the page loaded)

  // --- dispatch history -------------------------------------------------------------------------------------
  const list = document.getElementById("dispatch-list");

  function buttons(d) {
    if (!canDispatch) return "";
    const open = d.state === "proposed" || ACTIVE.includes(d.state);
    return (d.state === "proposed" ? `<button class="small primary confirm-dispatch" data-id="${d.dispatch_id}">${T("Confirm")}</button> ` : "") +
      (open ? `<button class="small reassign-dispatch" data-id="${d.dispatch_id}">${T("Reassign")}</button> ` : "") +
      (open ? `<button class="small danger cancel-dispatch" data-id="${d.dispatch_id}">${T("Cancel")}</button>` : "");
  }

  // Who acted: a person's name as it is; routing's own decisions ("routing", its actor name) in words.
  const actor = (name) => (!name || name === "routing" ? T("routing") : name);

  function dispatchHtml(d) {
    const km = d.distance_m ? ` · ${T("%(km)s km", { km: Kuzet.number(d.distance_m / 1000, 2) })}` : "";
    const radius = d.radius_m ? ` · ${T("within %(m)s m", { m: Kuzet.number(d.radius_m) })}` : "";
    const heading = d.direction_deg != null ? ` · ${T("heading %(deg)s°", { deg: Math.round(d.direction_deg) })}` : "";
    const log = (d.log || []).map((l) => `<li>${Kuzet.time(l.at)} — ${Kuzet.esc(Kuzet.word("dispatch", l.state))}${l.by ? ` (${Kuzet.esc(actor(l.by))})` : ""}${l.note ? ": " + Kuzet.esc(l.note) : ""}</li>`).join("");
    return `<strong><a href="/devices/${encodeURIComponent(d.unit)}">${Kuzet.esc(d.unit)}</a></strong> · ${Kuzet.esc(Kuzet.word("mode", d.mode))} ·
      <span class="status dispatch-state">${Kuzet.esc(Kuzet.word("dispatch", d.state))}</span>${km}${radius}${heading}
      <span class="muted">${T("by %(who)s at %(when)s", { who: Kuzet.esc(actor(d.created_by)), when: Kuzet.time(d.created_at) })}</span> ${buttons(d)}
      <div class="reassign-slot"></div>
      ${log ? `<ul class="plain muted dispatch-log">${log}</ul>` : ""}`;
  }

  let shown = "";
  function showDispatches(dispatches) {
    dispatches.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
    const html = dispatches.map((d) => `<li data-dispatch="${Kuzet.esc(d.dispatch_id)}" data-state="${Kuzet.esc(d.state)}">${dispatchHtml(d)}</li>`).join("");
    if (html === shown) return;  // nothing changed: keep the buttons under the operator's pointer
    shown = html;
    // A reassignment being filled in survives the redraw (another unit's answer must not wipe it).
    const openForms = [...list.querySelectorAll(".reassign-form")];
    list.innerHTML = html;
    for (const form of openForms) {
      const li = list.querySelector(`li[data-dispatch="${CSS.escape(form.dataset.id)}"]`);
      if (li && li.querySelector(".reassign-dispatch")) li.querySelector(".reassign-slot").appendChild(form);
    }
    document.getElementById("no-dispatch").hidden = dispatches.length > 0;
    list.dataset.version = String(Number(list.dataset.version || 0) + 1);
  }
  showDispatches(JSON.parse(document.getElementById("dispatch-data").textContent));

  let reloadPending = null;
  function reloadDispatches() {
    if (!routing) return;
    clearTimeout(reloadPending);
    reloadPending = setTimeout(async () => {
      try {
        const { dispatches } = await Kuzet.api("GET", `/api/v1/dispatches?event_id=${encodeURIComponent(eventId)}&log=1`);
        showDispatches(dispatches);
      } catch (err) { Kuzet.toast(T("Cannot refresh the dispatches"), err.message, "high"); }
    }, 150);
  }
  Kuzet.on("dispatch", (d) => { if (d.event_id === eventId) reloadDispatches(); });
  Kuzet.on("open", reloadDispatches);  // catch up after a reconnect

  // --- the operator's dispatch controls --------------------------------------------------------------------
  async function act(method, path, body, what) {
    try { await Kuzet.api(method, path, body); reloadDispatches(); return true; }
    catch (err) { Kuzet.toast(what || T("Dispatch refused"), err.message, "high"); return false; }
  }

  async function freeUnits() {
    const { units } = await Kuzet.api("GET", `/api/v1/dispatches/recommend?event_id=${encodeURIComponent(eventId)}`);
    return units;
  }

  const candidates = document.getElementById("candidates");
  const recommend = document.getElementById("recommend");
  if (recommend) {
    recommend.addEventListener("click", async () => {
      recommend.disabled = true;
      try {
        const units = await freeUnits();
        candidates.innerHTML = units.length ? units.map((u) => `<li class="row"><b>${Kuzet.esc(u.callsign || u.device_id)}</b>
          <span class="muted">${T("%(km)s km", { km: Kuzet.number(u.travel_m / 1000, 2) })} · ${Kuzet.esc(Kuzet.word("duty", u.duty))}</span><span class="spacer"></span>
          <button class="small primary send-unit" data-unit="${Kuzet.esc(u.device_id)}">${T("Send")}</button></li>`).join("")
          : `<li class="muted">${T("No patrol is available near this event.")}</li>`;
      } catch (err) { Kuzet.toast(T("Cannot recommend"), err.message, "high"); }
      recommend.disabled = false;
    });
  }

  const intercept = document.getElementById("intercept-form");
  if (intercept) {
    intercept.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = { event_id: eventId, radius_m: parseFloat(document.getElementById("intercept-radius").value) };
      const direction = document.getElementById("intercept-direction").value;
      if (direction !== "") body.direction_deg = parseFloat(direction) % 360;
      const description = document.getElementById("intercept-description").value.trim();
      if (description) body.description = description;
      const button = document.getElementById("intercept");
      button.disabled = true;
      try {
        // Ask first, with the number of units it will send (the template gives the words).
        const preview = await Kuzet.api("POST", "/api/v1/dispatches/intercept/preview", body);
        const fill = (text) => text.replace("%(radius)s", Math.round(preview.radius_m)).replace("%(num)s", preview.count)
          .replace("%(units)s", preview.units.map((u) => u.callsign || u.device_id).join(", "));
        if (!preview.count) { Kuzet.toast(fill(intercept.dataset.none), "", "high"); button.disabled = false; return; }
        if (!window.confirm(fill(intercept.dataset.confirm))) { button.disabled = false; return; }
        const { dispatches } = await Kuzet.api("POST", "/api/v1/dispatches/intercept", body);
        Kuzet.toast(T("Intercept sent"), T("Units sent: %(n)s, within %(m)s m", { n: dispatches.length, m: Kuzet.number(body.radius_m) }));
        reloadDispatches();
      } catch (err) { Kuzet.toast(T("Intercept refused"), err.message, "high"); }
      button.disabled = false;
    });
  }

  async function openReassign(li, dispatchId) {
    const slot = li.querySelector(".reassign-slot");
    if (slot.firstChild) { slot.innerHTML = ""; return; }
    let units;
    try { units = await freeUnits(); } catch (err) { Kuzet.toast(T("Cannot list units"), err.message, "high"); return; }
    if (!units.length) { Kuzet.toast(T("Cannot reassign"), T("No other patrol is free."), "high"); return; }
    slot.innerHTML = `<form class="reassign-form row" data-id="${Kuzet.esc(dispatchId)}">
      <select class="reassign-unit">${units.map((u) => `<option value="${Kuzet.esc(u.device_id)}">${Kuzet.esc(u.callsign || u.device_id)} · ${T("%(km)s km", { km: Kuzet.number(u.travel_m / 1000, 2) })}</option>`).join("")}</select>
      <input class="reassign-reason" maxlength="200" placeholder="${T("why (told to the first unit)")}">
      <button class="small primary">${T("Reassign")}</button></form>`;
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target.closest(".reassign-form");
    if (!form) return;
    e.preventDefault();
    const unit = form.querySelector(".reassign-unit").value;
    const reason = form.querySelector(".reassign-reason").value.trim();
    form.querySelector("button").disabled = true;
    if (!(await act("POST", `/api/v1/dispatches/${form.dataset.id}/reassign`, { unit, reason }, T("Reassignment refused")))) {
      form.querySelector("button").disabled = false;
    }
  });

  document.addEventListener("click", (e) => {
    const send = e.target.closest(".send-unit");
    if (send) { send.disabled = true; act("POST", "/api/v1/dispatches", { event_id: eventId, unit: send.dataset.unit }).then(() => { candidates.innerHTML = ""; }); }
    const confirmButton = e.target.closest(".confirm-dispatch");
    if (confirmButton) { confirmButton.disabled = true; act("POST", `/api/v1/dispatches/${confirmButton.dataset.id}/confirm`); }
    const reassign = e.target.closest(".reassign-dispatch");
    if (reassign) openReassign(reassign.closest("li"), reassign.dataset.id);
    const cancel = e.target.closest(".cancel-dispatch");
    if (cancel) {
      const reason = prompt(T("Why cancel this dispatch?"));
      if (reason) act("POST", `/api/v1/dispatches/${cancel.dataset.id}/cancel`, { reason });
    }
  });
})();
