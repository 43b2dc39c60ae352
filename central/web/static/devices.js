/* The device table, redrawn from /api/v1/devices whenever a device reports, and every 30 s for staleness. */
"use strict";
(() => {
  const body = document.getElementById("devices-body");
  const alerts = document.getElementById("alerts");
  const canManage = document.body.dataset.canManageDevices === "1";
  const num = (v, digits, unit) => (v == null ? "—" : `${Kuzet.number(Number(v), digits)}${unit}`);
  // A device's problems in the reader's words (the API's English where a row has none); offline and revoked
  // are its state's pill already.
  const problemWords = (d) => d.problem_words || d.problems;
  const SHOWN_AS_STATE = new Set(["device_offline", "device_revoked_state"]);

  function row(d) {
    const s = d.status || {};
    const state = d.revoked_at ? "revoked" : d.online ? "online" : "offline";
    const fps = s.fps_processed != null ? `${num(s.fps_processed, 1, "")} / ${num(s.fps_in, 1, "")}` : "—";
    const model = s.model ? `${Kuzet.esc(s.model.name)} <span class="muted mono">${Kuzet.esc(s.model.sha256.slice(0, 8))}</span>` : "—";
    return `<tr id="dev-${Kuzet.esc(d.device_id)}">
      <td><a href="/devices/${encodeURIComponent(d.device_id)}"><b>${Kuzet.esc(d.name || d.device_id)}</b></a><br><span class="muted mono">${Kuzet.esc(d.device_id)}</span></td>
      <td>${Kuzet.esc(d.kind ? Kuzet.word("kind", d.kind) : "")}</td>
      <td><span class="pill ${state}">${Kuzet.esc(Kuzet.word("device", state))}</span>${problemWords(d).filter((p, i) => !SHOWN_AS_STATE.has(d.problem_keys[i].key)).map((p) => `<div class="problem">⚠ ${Kuzet.esc(p)}</div>`).join("")}</td>
      <td title="${Kuzet.esc(d.last_seen || "")}">${Kuzet.ago(d.last_seen)}</td>
      <td>${fps}</td><td>${num(s.detector_ms, 1, " " + T("ms"))}</td><td>${s.outbox_depth ?? "—"}</td>
      <td>${num(s.disk_free_mb != null ? s.disk_free_mb / 1024 : null, 1, " " + T("GB"))}</td><td>${num(s.cpu_temp_c, 0, " °C")}</td>
      <td>${s.battery_pct != null ? num(s.battery_pct, 0, "%") : "—"}</td>
      <td>${model}</td><td class="mono">${Kuzet.esc(s.software_version || d.software_version || "—")}</td>
      ${canManage ? `<td>${d.revoked_at ? "" : `<button class="small danger revoke" data-id="${Kuzet.esc(d.device_id)}">${T("Revoke")}</button>`}</td>` : ""}</tr>`;
  }

  async function load() {
    const { devices } = await Kuzet.api("GET", "/api/v1/devices");
    Kuzet.noteDevices(devices);
    body.innerHTML = devices.map(row).join("");
    document.getElementById("devices-empty").hidden = devices.length > 0;
    const troubled = devices.filter((d) => d.problems.length && !d.revoked_at);
    alerts.hidden = troubled.length === 0;
    alerts.querySelector("ul").innerHTML = troubled.map((d) => `<li><b>${Kuzet.esc(d.name || d.device_id)}</b>: ${problemWords(d).map(Kuzet.esc).join(", ")}</li>`).join("");
    document.getElementById("n-online").textContent = devices.filter((d) => d.online).length;
    document.getElementById("n-total").textContent = devices.filter((d) => !d.revoked_at).length;
    body.dataset.loaded = "1";
  }

  body.addEventListener("click", async (e) => {
    const button = e.target.closest("button.revoke");
    if (!button) return;
    const reason = prompt(T("Revoke %(device)s? It will be shown as revoked and refused. Why?", { device: button.dataset.id }));
    if (!reason) return;
    try { await Kuzet.api("POST", `/api/v1/devices/${encodeURIComponent(button.dataset.id)}/revoke`, { reason }); load(); }
    catch (err) { Kuzet.toast(T("Cannot revoke"), err.message, "high"); }
  });

  let pending = null;
  Kuzet.on("device", () => { clearTimeout(pending); pending = setTimeout(load, 500); });
  setInterval(load, 30000);
  load();
})();
