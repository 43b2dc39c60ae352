/* The event queue: filtered list from /api/v1/events, kept current by the live stream without reloads. */
"use strict";
(() => {
  const body = document.getElementById("queue-body");
  const form = document.getElementById("filters");
  const canAct = document.body.dataset.canAct === "1";
  const canDispatch = body.dataset.canDispatch === "1";
  const rows = new Map();  // event_id -> event
  let loaded = false;

  function filters() {
    const values = {};
    for (const [key, value] of new FormData(form).entries()) if (value) values[key] = value;
    return values;
  }

  function matches(event) {
    const f = filters();
    const columns = { type: "event_type", severity: "severity", device: "device", zone: "zone" };
    for (const [key, column] of Object.entries(columns)) if (f[key] && event[column] !== f[key]) return false;
    if (f.status === "open" && event.status === "closed") return false;
    if (f.status && f.status !== "open" && event.status !== f.status) return false;
    return true;
  }

  function rowHtml(e) {
    let ack = canAct && e.status === "new" ? `<button class="small ack" data-id="${Kuzet.esc(e.event_id)}">${T("Acknowledge")}</button>` : "";
    if (canDispatch && !["closed", "dispatched"].includes(e.status)) {  // dispatch in one click, or choose on the unit board
      ack += ` <button class="small send-nearest" data-id="${Kuzet.esc(e.event_id)}">${Kuzet.esc(body.dataset.sendNearest)}</button>` +
        ` <button class="small choose-unit" data-id="${Kuzet.esc(e.event_id)}">${Kuzet.esc(body.dataset.chooseUnit)}</button>`;
    }
    return `<td><span class="sev sev-${Kuzet.esc(e.severity)}">${Kuzet.esc(Kuzet.word("severity", e.severity))}</span></td>
      <td class="mono" title="${Kuzet.esc(e.started_at)}">${Kuzet.time(e.started_at)}</td>
      <td>${Kuzet.esc(Kuzet.typeName(e.event_type))}</td>
      <td>${Kuzet.esc(Kuzet.objectName(e.label))}${e.score != null ? ` <span class="muted">${Math.round(e.score * 100)}%</span>` : ""}</td>
      <td>${Kuzet.esc(e.device)}</td>
      <td>${Kuzet.esc(e.zone || "—")}</td>
      <td><span class="status status-${Kuzet.esc(e.status)}">${Kuzet.esc(Kuzet.word("status", e.status))}</span>${e.hold ? ` <span title="${T("evidence on hold")}">🔒</span>` : ""}</td>
      <td>${Kuzet.esc(e.assigned_to || "")}${e.dispatched_unit ? ` <span class="muted" title="${T("patrol unit sent")}">🚓 ${Kuzet.esc(e.dispatched_unit)}</span>` : ""}</td>
      <td>${ack}</td>`;
  }

  function sortKey(e) { return (e.received_at || "") + e.event_id; }

  function render(event, fresh) {
    let tr = document.getElementById("ev-" + event.event_id);
    if (!matches(event)) { if (tr) tr.remove(); rows.delete(event.event_id); return; }
    rows.set(event.event_id, event);
    if (!tr) {
      tr = document.createElement("tr");
      tr.id = "ev-" + event.event_id;
      tr.dataset.id = event.event_id;
      // keep newest first
      const after = [...body.children].find((other) => sortKey(rows.get(other.dataset.id) || {}) < sortKey(event));
      body.insertBefore(tr, after || null);
    }
    const wasFresh = tr.classList.contains("fresh");  // an update (snapshot, clip) must not cut the highlight short
    tr.className = `clickable sevrow-${event.severity}${event.status === "closed" ? " closed" : ""}${wasFresh ? " fresh" : ""}`;
    tr.innerHTML = rowHtml(event);
    if (fresh) { tr.classList.remove("fresh"); void tr.offsetWidth; tr.classList.add("fresh"); }
    document.getElementById("queue-empty").hidden = body.children.length > 0;
  }

  async function load() {
    // status is always in the address, empty for "all": a bare address means the default, open events.
    const query = new URLSearchParams({ status: "", ...filters() }).toString();
    history.replaceState(null, "", "?" + query);
    const data = await Kuzet.api("GET", "/api/v1/events?limit=300&" + query);
    body.innerHTML = "";
    rows.clear();
    data.events.forEach((e) => render(e, false));
    document.getElementById("queue-empty").hidden = data.events.length > 0;
    loaded = true;
    body.dataset.loaded = "1";
  }

  let countersPending = null;
  function refreshCounters() {
    clearTimeout(countersPending);
    countersPending = setTimeout(async () => {
      const c = await Kuzet.api("GET", "/api/v1/events/counters");
      document.getElementById("c-open").textContent = c.open;
      document.getElementById("c-new").textContent = c.by_status.new || 0;
      for (const s of ["critical", "high", "medium"]) document.getElementById("c-" + s).textContent = c.by_severity[s] || 0;
    }, 300);
  }

  form.addEventListener("change", load);
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  body.addEventListener("click", async (e) => {
    const button = e.target.closest("button.ack");
    if (button) {
      e.stopPropagation();
      button.disabled = true;
      try { render((await Kuzet.api("POST", `/api/v1/events/${button.dataset.id}/ack`)).event, false); }
      catch (err) { Kuzet.toast(T("Could not acknowledge"), err.message); button.disabled = false; }
      return;
    }
    const send = e.target.closest("button.send-nearest");
    if (send) {
      e.stopPropagation();
      send.disabled = true;
      try {
        const d = await Kuzet.api("POST", "/api/v1/dispatches/nearest", { event_id: send.dataset.id });
        Kuzet.toast(body.dataset.sent.replace("%(unit)s", d.unit), "", null);
      } catch (err) { Kuzet.toast(body.dataset.sendFailed, err.message, "high"); send.disabled = false; }
      return;
    }
    const choose = e.target.closest("button.choose-unit");
    if (choose) { window.location = "/units?event=" + encodeURIComponent(choose.dataset.id); return; }
    const tr = e.target.closest("tr");
    if (tr) window.location = "/events/" + tr.dataset.id;
  });

  Kuzet.on("event", (event) => {
    const known = rows.has(event.event_id);
    render(event, !known);
    refreshCounters();
    // Only critical and high events interrupt with a toast; the others arrive quietly in the list.
    if (!known && loaded && event.status === "new" && matches(event) && ["critical", "high"].includes(event.severity)) {
      Kuzet.toast(`${Kuzet.typeName(event.event_type)} · ${Kuzet.objectName(event.label)}`, `${event.device}${event.zone ? " · " + event.zone : ""} · ${Kuzet.word("severity", event.severity)}`, event.severity, "/events/" + event.event_id);
    }
  });
  Kuzet.on("open", () => { if (loaded) { load(); refreshCounters(); } });  // catch up after a reconnect
  load();
})();
