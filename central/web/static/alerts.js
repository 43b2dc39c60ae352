/* The alerts list: folded by condition on central (one row, a count, one button for all of them), redrawn from
   the page itself when an alert arrives; an operator acknowledges a row's alerts (each audited at central). */
"use strict";
(() => {
  let pending = null;
  async function redraw() {
    const response = await fetch(location.pathname + location.search, { credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ["alerts-body", "alerts-empty"]) {
      const fresh = page.getElementById(id);
      if (fresh) document.getElementById(id).replaceWith(fresh);
    }
  }
  function redrawSoon() { clearTimeout(pending); pending = setTimeout(redraw, 200); }

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button.ack-alert");
    if (!button) return;
    button.disabled = true;
    try {
      for (const id of button.dataset.ids.split(",")) await Kuzet.api("POST", `/api/v1/alerts/${id}/ack`);
      Kuzet.refreshAlertCount();
    } catch (err) { Kuzet.toast(T("Could not acknowledge"), err.message, "high"); }
    redraw();
  });
  Kuzet.on("alert", redrawSoon);
})();
