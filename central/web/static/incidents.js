/* The triage board: incidents (events folded by camera, zone and type) from /api/v1/incidents, most urgent
   first; central pushes each change of them on the live stream ("incidents": the changed groups whole,
   central.web.board), merged here, and the list is read again only when the stream (re)connects or a filter
   is set (a filtered board reads again after each change). Waiting timers tick here. Only critical and high incidents interrupt (a
   sound, a desktop notification), each switchable per account. Keyboard: j/k, Enter, x, a, d, c, ?. */
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("board-config").textContent);
  const body = document.getElementById("board-body");
  const form = document.getElementById("board-filters");
  const help = document.getElementById("help");
  let incidents = [];
  let total = 0, limit = Infinity, version = -1;  // as last read or pushed; version orders reads and pushes
  let reading = 0;  // reads in flight: pushes meanwhile wait for the read (early)
  const early = [];
  let cursor = null;  // incident_id under the keyboard cursor
  const selected = new Set();  // incident ids
  const seenEvents = new Set();  // event ids already on the board (an interruption is for a new one only)
  let loaded = false;

  function query() {
    const values = {};
    for (const [key, value] of new FormData(form).entries()) if (value) values[key] = value;
    return new URLSearchParams(values).toString();
  }

  function waited(iso) {
    if (!iso) return "—";
    const s = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 1000));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
  }

  function rowHtml(i) {
    const times = i.count > 1 ? `${Kuzet.time(i.first_at)}<br>${Kuzet.time(i.last_at)}` : Kuzet.time(i.first_at);
    return `<td>${config.canAct ? `<input type="checkbox" class="pick" ${selected.has(i.incident_id) ? "checked" : ""}>` : ""}</td>
      <td><span class="sev sev-${Kuzet.esc(i.severity)}">${Kuzet.esc(Kuzet.word("severity", i.severity))}</span></td>
      <td class="thumb-cell"></td>
      <td><a href="/events/${encodeURIComponent(i.latest_event_id)}"><b>${Kuzet.esc(Kuzet.word("type", i.event_type))}</b></a>
        <span class="count" title="${Kuzet.esc(N("%(n)s event in this incident", "%(n)s events in this incident", i.count))}">×${i.count}</span><br><span class="muted">${Kuzet.esc(Kuzet.objectName(i.label))}</span></td>
      <td>${Kuzet.esc(i.camera_name || i.device)}<br><span class="muted">${Kuzet.esc(i.zone || "")}</span></td>
      <td class="mono">${times}</td>
      <td class="mono waiting" data-since="${Kuzet.esc(i.waiting_since || "")}"></td>
      <td><span class="status status-${Kuzet.esc(i.status)}">${Kuzet.esc(Kuzet.word("status", i.status))}</span></td>`;
  }

  // Rows are kept between redraws and rewritten only when what they show changed (the timers tick apart), and a
  // thumbnail is kept while its snapshot is the same: media is fetched (and each view audited) anew for every
  // new image, and a board is pushed to many times a second.
  const drawn = new Map();  // incident_id -> {tr, html, src, img}
  function thumbnail(row, sha256, rewritten) {
    const src = config.media && sha256 ? "/media/" + encodeURIComponent(sha256) : "";
    if (row.src !== src) {
      row.src = src;
      row.img = src ? Object.assign(document.createElement("img"), { className: "thumb", loading: "lazy", alt: T("snapshot of the event"), src }) : null;
    } else if (!rewritten) return;
    row.tr.querySelector(".thumb-cell").replaceChildren(...(row.img ? [row.img] : []));
  }
  function render() {
    let next = body.firstChild;
    for (const i of incidents) {
      let row = drawn.get(i.incident_id);
      if (!row) {
        row = { tr: document.createElement("tr"), html: "" };
        row.tr.id = "inc-" + i.incident_id;
        row.tr.dataset.id = i.incident_id;
        drawn.set(i.incident_id, row);
      }
      const html = rowHtml(i);
      const rewritten = row.html !== html;
      if (rewritten) { row.tr.innerHTML = html; row.html = html; }
      thumbnail(row, i.snapshot_sha256, rewritten);
      row.tr.className = `sevrow-${i.severity}${i.incident_id === cursor ? " cursor" : ""}`;
      if (row.tr === next) next = next.nextSibling; else body.insertBefore(row.tr, next);
    }
    while (next) { const gone = next; next = next.nextSibling; drawn.delete(gone.dataset.id); gone.remove(); }
    document.getElementById("board-empty").hidden = incidents.length > 0;
    document.getElementById("board-total").textContent = N("%(n)s incident", "%(n)s incidents", total);
    tick();
    showSelection();
  }

  function tick() {
    for (const cell of body.querySelectorAll(".waiting")) {
      cell.textContent = waited(cell.dataset.since);
      const since = cell.dataset.since ? new Date(cell.dataset.since).getTime() : Date.now();
      cell.classList.toggle("long", Date.now() - since > 5 * 60 * 1000);
    }
  }
  setInterval(tick, 1000);

  function forget() {  // the selection and cursor on incidents no longer listed
    const ids = new Set(incidents.map((i) => i.incident_id));
    for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
    if (cursor && !ids.has(cursor)) cursor = null;
  }

  async function load() {
    reading += 1;
    let data;
    try { data = await Kuzet.api("GET", "/api/v1/incidents?" + query()); } finally { reading -= 1; }
    incidents = data.incidents;
    total = data.total;
    limit = data.limit || Infinity;
    version = data.version ?? -1;  // none: a filtered read from the store, which pushes do not update
    for (const i of incidents) i.event_ids.forEach((id) => seenEvents.add(id));
    const waiting = reading ? [] : early.splice(0);
    if (data.version !== undefined) waiting.forEach(merge);
    forget();
    render();
    loaded = true;
    body.dataset.loaded = "1";
  }

  // The same order as central's (central.web.board._order): most severe, then longest waiting, then the id.
  const compare = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  function order(a, b) {
    return (b.severity_rank - a.severity_rank) || ((a.waiting_since === null) - (b.waiting_since === null))
      || compare(a.waiting_since || a.first_at, b.waiting_since || b.first_at) || compare(a.incident_id, b.incident_id);
  }
  const groupOf = (i) => `${i.device}\u0000${i.zone || ""}\u0000${i.event_type}`;

  // A push replaces its groups' incidents whole; an update older than the list read is left out.
  function merge(update) {
    if (update.version < version) return;
    version = update.version;
    const changed = new Set(update.groups.map(groupOf));
    const merged = incidents.filter((i) => !changed.has(groupOf(i)));
    for (const group of update.groups) merged.push(...group.incidents);
    merged.sort(order);
    total = update.total;
    incidents = merged.slice(0, limit);
    // The list held only the first `limit`: those after it that now belong on it are read.
    if (incidents.length < Math.min(limit, total)) reloadSoon();
  }

  let drawing = null;
  function drawSoon() {  // one redraw for the pushes of a moment
    if (!drawing) drawing = setTimeout(() => { drawing = null; forget(); render(); }, 100);
  }

  function pushed(update) {
    if (query()) { if (loaded) reloadSoon(); return; }  // a filtered board reads its filter again
    if (reading || !loaded) { early.push(update); return; }
    merge(update);
    drawSoon();
  }

  // A filtered board reads again within a second of a change, whatever keeps arriving: a wait reset by every
  // change never ended under a city's steady stream of events, and the board stood still (bench/page.py).
  let pending = null, lastLoad = 0;
  function reloadSoon() {
    if (pending) return;  // the redraw already coming shows this update too
    const wait = Math.max(300, 1000 - (Date.now() - lastLoad));
    pending = setTimeout(() => { pending = null; lastLoad = Date.now(); load(); }, wait);
  }

  // --- interruptions: critical and high only ------------------------------------------------------------------
  const prefSound = document.getElementById("pref-sound");
  const prefNotify = document.getElementById("pref-notifications");
  let audio = null;
  function beep() {
    audio = audio || new AudioContext();
    const tone = audio.createOscillator(), gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.2;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.35);
  }
  function interrupt(e) {
    body.dataset.interrupts = String(Number(body.dataset.interrupts || 0) + 1);
    if (prefSound.checked) { try { beep(); } catch (err) { /* no audio device: the board still shows it */ } }
    if (prefNotify.checked && "Notification" in window && Notification.permission === "granted") {
      const note = new Notification(`${Kuzet.word("severity", e.severity)}: ${Kuzet.typeName(e.event_type)}`, { body: `${e.device}${e.zone ? " · " + e.zone : ""}`, tag: e.event_id });
      note.onclick = () => { window.focus(); window.location = "/events/" + e.event_id; };
    }
  }
  function askPermissionOnce() {
    if (prefNotify.checked && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
  }
  document.addEventListener("click", askPermissionOnce, { once: true });  // browsers ask only after a gesture
  for (const [input, key] of [[prefSound, "sound"], [prefNotify, "notifications"]]) {
    input.addEventListener("change", async () => {
      try { await Kuzet.api("POST", "/preferences", { [key]: input.checked }); if (key === "notifications") askPermissionOnce(); }
      catch (err) { Kuzet.toast(T("Could not save the setting"), err.message, "high"); input.checked = !input.checked; }
    });
  }

  Kuzet.on("event", (e) => {
    const fresh = !seenEvents.has(e.event_id);
    seenEvents.add(e.event_id);
    if (loaded && fresh && e.status === "new" && config.interrupting.includes(e.severity)) interrupt(e);
  });
  Kuzet.on("incidents", pushed);
  // Read again on every (re)connect, the first one too: what changed before the stream was open was not pushed.
  Kuzet.on("open", load);

  // --- selection and bulk actions ---------------------------------------------------------------------------
  function showSelection() {
    if (!config.canAct) return;
    const n = selected.size;
    document.getElementById("selected-count").textContent = n ? T("selected: %(n)s", { n }) : "";
    document.getElementById("bulk-ack").disabled = !n;
    document.getElementById("bulk-close").disabled = !n;
    document.getElementById("select-all").checked = n > 0 && n === incidents.length;
  }
  function targets() {
    const chosen = selected.size ? incidents.filter((i) => selected.has(i.incident_id)) : incidents.filter((i) => i.incident_id === cursor);
    return chosen.flatMap((i) => i.event_ids);
  }
  async function bulk(path, extra) {
    const eventIds = targets();
    if (!eventIds.length) return;
    try {
      const result = await Kuzet.api("POST", path, { event_ids: eventIds, ...extra });
      if (result.skipped.length) Kuzet.toast(T("Some were not changed"), result.skipped.map((s) => s.reason).slice(0, 3).join("; "), "high");
    } catch (err) { Kuzet.toast(T("Refused"), err.message, "high"); }
    selected.clear();
    load();
  }
  function acknowledge() { bulk("/api/v1/incidents/ack"); }
  function close() {
    if (!targets().length) return;
    const note = prompt(T("What was done? (required to close)"));
    if (note && note.trim()) bulk("/api/v1/incidents/close", { note: note.trim() });
  }
  async function dispatchNearest() {
    const incident = incidents.find((i) => i.incident_id === cursor);
    if (!incident || !config.canDispatch) return;
    try {
      const { units } = await Kuzet.api("GET", `/api/v1/dispatches/recommend?event_id=${encodeURIComponent(incident.latest_event_id)}`);
      if (!units.length) { Kuzet.toast(T("Cannot dispatch"), T("No patrol is available near this event."), "high"); return; }
      await Kuzet.api("POST", "/api/v1/dispatches", { event_id: incident.latest_event_id, unit: units[0].device_id });
      Kuzet.toast(T("Patrol sent"), units[0].callsign || units[0].device_id);
      load();
    } catch (err) { Kuzet.toast(T("Dispatch refused"), err.message, "high"); }
  }
  if (config.canAct) {
    document.getElementById("bulk-ack").addEventListener("click", acknowledge);
    document.getElementById("bulk-close").addEventListener("click", close);
    document.getElementById("select-all").addEventListener("change", (e) => {
      selected.clear();
      if (e.target.checked) incidents.forEach((i) => selected.add(i.incident_id));
      render();
    });
  }
  body.addEventListener("change", (e) => {
    if (!e.target.classList.contains("pick")) return;
    const id = e.target.closest("tr").dataset.id;
    if (e.target.checked) selected.add(id); else selected.delete(id);
    showSelection();
  });

  // --- keyboard ---------------------------------------------------------------------------------------------
  function move(step) {
    if (!incidents.length) return;
    const at = incidents.findIndex((i) => i.incident_id === cursor);
    const next = Math.min(incidents.length - 1, Math.max(0, at < 0 ? 0 : at + step));
    cursor = incidents[next].incident_id;
    for (const tr of body.children) tr.classList.toggle("cursor", tr.dataset.id === cursor);
    document.getElementById("inc-" + cursor).scrollIntoView({ block: "nearest" });
  }
  function toggleHelp(show) { help.hidden = !show; }
  document.getElementById("help-open").addEventListener("click", () => toggleHelp(help.hidden));
  help.addEventListener("click", (e) => { if (e.target === help) toggleHelp(false); });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const current = incidents.find((i) => i.incident_id === cursor);
    const actions = {
      j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
      Enter: () => { if (current) window.location = "/events/" + current.latest_event_id; },
      o: () => { if (current) window.location = "/events/" + current.latest_event_id; },
      x: () => { if (current && config.canAct) { if (selected.has(cursor)) selected.delete(cursor); else selected.add(cursor); render(); } },
      a: () => { if (config.canAct) acknowledge(); },
      c: () => { if (config.canAct) close(); },
      d: dispatchNearest,
      "?": () => toggleHelp(help.hidden),
      Escape: () => toggleHelp(false),
    };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  });

  form.addEventListener("change", load);
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  load();
})();
