/* The unit board: every patrol's status (in words), a live timer of how long it has been in it, its incident,
   and its distance to the selected incident; send the nearest unit or a chosen one in one click. Rows come
   from /api/v1/unit-board and are fetched again whenever a unit, dispatch or event changes. */
"use strict";
(() => {
  const words = JSON.parse(document.getElementById("unit-words").textContent);
  const table = document.getElementById("unit-board");
  const body = document.getElementById("board-body");
  const select = document.getElementById("incident");
  const nearestButton = document.getElementById("send-nearest");
  const note = document.getElementById("board-note");
  const canDispatch = table.dataset.canDispatch === "1";
  const RANK = { critical: 4, high: 3, medium: 2, low: 1, info: 0 };
  const fill = (text, values) => text.replace(/%\((\w+)\)s/g, (_, k) => values[k] ?? "");
  let board = { units: [], nearest: null };
  let incidents = new Map();

  function distance(m) {
    if (m == null) return words.none;
    return m < 1000 ? fill(words.m, { n: Math.round(m) }) : fill(words.km, { n: Kuzet.number(m / 1000, 1) });
  }

  function duration(iso) {
    if (!iso) return words.none;
    const s = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 1000));
    const two = (n) => String(n).padStart(2, "0");
    const [h, m] = [Math.floor(s / 3600), Math.floor(s / 60) % 60];
    return (h ? `${h}:${two(m)}` : `${m}`) + ":" + two(s % 60);
  }

  function incidentCell(d) {
    if (!d) return words.none;
    const what = `${Kuzet.esc(Kuzet.typeName(d.event_type || d.mode))}${d.label ? " · " + Kuzet.esc(Kuzet.objectName(d.label)) : ""}`;
    const sev = d.severity ? `<span class="sev sev-${Kuzet.esc(d.severity)}">${Kuzet.esc(Kuzet.word("severity", d.severity))}</span> ` : "";
    return d.event_id ? `${sev}<a href="/events/${encodeURIComponent(d.event_id)}">${what}</a>` : `${sev}${what}`;
  }

  function actions(u) {
    if (!canDispatch || !select.value) return "";
    if (u.status === "available") {
      return `<button class="small send" data-unit="${Kuzet.esc(u.device_id)}">${Kuzet.esc(words.send)}</button>`;
    }
    if (u.may_divert) {  // busy with a less urgent incident than the selected one
      return `<button class="small danger divert" data-unit="${Kuzet.esc(u.device_id)}">${Kuzet.esc(words.divert)}</button>`;
    }
    return "";
  }

  function render() {
    body.innerHTML = board.units.map((u) => {
      const nearest = u.device_id === board.nearest;
      return `<tr id="unit-${Kuzet.esc(u.device_id)}" data-unit="${Kuzet.esc(u.device_id)}" data-status="${Kuzet.esc(u.status)}" class="${nearest ? "nearest" : ""}">
        <td><b>${Kuzet.esc(u.callsign || u.device_id)}</b>${u.callsign && u.callsign !== u.device_id ? ` <span class="muted">${Kuzet.esc(u.device_id)}</span>` : ""}${nearest ? `<span class="tag-nearest">${Kuzet.esc(words.nearest)}</span>` : ""}</td>
        <td><span class="unit-status st-${Kuzet.esc(u.status)}">${Kuzet.esc(words.status[u.status] || u.status)}</span></td>
        <td class="since mono" data-since="${Kuzet.esc(u.status_since || "")}">${duration(u.status_since)}</td>
        <td>${incidentCell(u.dispatch)}</td>
        <td class="mono distance">${distance(u.distance_m)}</td>
        <td><div class="board-actions">${actions(u)}</div></td></tr>`;
    }).join("");
    document.getElementById("board-empty").hidden = board.units.length > 0;
    if (nearestButton) {
      nearestButton.disabled = !select.value || !board.nearest;
      const unit = board.units.find((u) => u.device_id === board.nearest);
      nearestButton.textContent = unit ? `${words.send_nearest}: ${unit.callsign || unit.device_id} (${distance(unit.distance_m)})` : words.send_nearest;
    }
    body.dataset.loaded = "1";
  }

  async function loadBoard() {
    const query = select.value ? "?event_id=" + encodeURIComponent(select.value) : "";
    try {
      board = await Kuzet.api("GET", "/api/v1/unit-board" + query);
      note.textContent = select.value && !board.nearest ? words.no_free : "";
    } catch (err) {
      note.textContent = err.message;
      board = { units: [], nearest: null };
    }
    render();
  }

  async function loadIncidents() {
    const data = await Kuzet.api("GET", "/api/v1/events?status=open&limit=300");
    const open = data.events.filter((e) => e.status !== "closed");
    open.sort((a, b) => (RANK[b.severity] - RANK[a.severity]) || (a.received_at < b.received_at ? -1 : 1));
    incidents = new Map(open.map((e) => [e.event_id, e]));
    const keep = select.value || select.dataset.selected;
    select.length = 1;
    for (const e of open) {
      const option = new Option(`${Kuzet.word("severity", e.severity)} · ${Kuzet.typeName(e.event_type)} · ${Kuzet.objectName(e.label)} · ${e.device} · ${Kuzet.time(e.received_at)}`, e.event_id);
      select.add(option);
    }
    select.value = incidents.has(keep) ? keep : "";
    select.dataset.loaded = "1";
  }

  async function send(path, payload, button) {
    if (button) button.disabled = true;
    try {
      const d = await Kuzet.api("POST", path, payload);
      Kuzet.toast(fill(words.sent, { unit: d.unit }), Kuzet.typeName(incidents.get(payload.event_id)?.event_type || ""), null);
    } catch (err) {
      Kuzet.toast(words.failed, err.message, "high");
    }
    await loadBoard();
  }

  select.addEventListener("change", () => {
    history.replaceState(null, "", select.value ? "?event=" + encodeURIComponent(select.value) : location.pathname);
    loadBoard();
  });
  if (nearestButton) nearestButton.addEventListener("click", () => send("/api/v1/dispatches/nearest", { event_id: select.value }, nearestButton));
  body.addEventListener("click", (e) => {
    const button = e.target.closest("button.send");
    if (button) send("/api/v1/dispatches", { event_id: select.value, unit: button.dataset.unit }, button);
    const divert = e.target.closest("button.divert");
    if (divert) confirmDivert(divert);
  });

  async function confirmDivert(button) {
    const unit = board.units.find((u) => u.device_id === button.dataset.unit);
    const target = incidents.get(select.value);
    if (!unit || !target) return;
    const question = fill(words.divert_confirm, {
      unit: unit.callsign || unit.device_id,
      old: `${Kuzet.word("severity", unit.dispatch.severity)} ${Kuzet.typeName(unit.dispatch.event_type)}`,
      new: `${Kuzet.word("severity", target.severity)} ${Kuzet.typeName(target.event_type)}`,
    });
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await Kuzet.api("POST", `/api/v1/units/${encodeURIComponent(unit.device_id)}/divert`, { event_id: select.value, reason: words.divert_reason });
      Kuzet.toast(fill(words.diverted, { unit: unit.callsign || unit.device_id }), "", "high");
    } catch (err) {
      Kuzet.toast(words.failed, err.message, "high");
    }
    await loadBoard();
  }

  let pending = null;
  const refresh = () => { clearTimeout(pending); pending = setTimeout(loadBoard, 250); };
  let pendingIncidents = null;
  Kuzet.on("unit", refresh);
  Kuzet.on("dispatch", refresh);
  Kuzet.on("event", () => { clearTimeout(pendingIncidents); pendingIncidents = setTimeout(() => loadIncidents().then(loadBoard), 400); });
  Kuzet.on("open", () => loadIncidents().then(loadBoard));
  setInterval(() => { for (const cell of body.querySelectorAll("td.since")) cell.textContent = duration(cell.dataset.since); }, 1000);
  loadIncidents().then(loadBoard);
})();
