/* The alerts list: new alerts arrive live at the top; an operator acknowledges each (audited at central). */
"use strict";
(() => {
  const body = document.getElementById("alerts-body");
  const showAll = document.getElementById("alerts-table").dataset.showAll === "1";
  const canAct = document.body.dataset.canAct === "1";

  function cells(a) {
    const about = [
      a.event_id ? `<a href="/events/${encodeURIComponent(a.event_id)}">${T("event")}</a>` : "",
      a.device ? `<a href="/devices/${encodeURIComponent(a.device)}">${Kuzet.esc(a.device)}</a>` : "",
    ].join(" ");
    const ack = a.acknowledged_at
      ? `${Kuzet.esc(a.acknowledged_by)} <span class="muted mono">${Kuzet.time(a.acknowledged_at)}</span>`
      : canAct ? `<button class="small primary ack-alert" data-id="${a.id}">${T("Acknowledge")}</button>` : "—";
    return `<td><span class="level level-${Kuzet.esc(a.level)}">${Kuzet.esc(Kuzet.word("severity", a.level))}</span></td>
      <td class="mono">${Kuzet.time(a.at)}</td><td>${Kuzet.esc(a.message)}</td><td>${about}</td><td class="ack-cell">${ack}</td>`;
  }

  function show(a) {
    let tr = document.getElementById("alert-" + a.id);
    if (a.acknowledged_at && !showAll) { if (tr) tr.remove(); }
    else {
      if (!tr) { tr = document.createElement("tr"); tr.id = "alert-" + a.id; body.prepend(tr); }
      tr.className = `alert-row alert-${a.level}${a.acknowledged_at ? " done" : ""}`;
      tr.innerHTML = cells(a);
    }
    document.getElementById("alerts-empty").hidden = body.children.length > 0;
  }

  body.addEventListener("click", async (e) => {
    const button = e.target.closest("button.ack-alert");
    if (!button) return;
    button.disabled = true;
    try { show(await Kuzet.api("POST", `/api/v1/alerts/${button.dataset.id}/ack`)); Kuzet.refreshAlertCount(); }
    catch (err) { Kuzet.toast(T("Could not acknowledge"), err.message, "high"); button.disabled = false; }
  });
  Kuzet.on("alert", (a) => { if (a.id) show(a); });
})();
