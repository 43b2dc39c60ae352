/* One device: its commands with their results (live), the live view, and the evidence chain check. */
"use strict";
(() => {
  const deviceId = document.getElementById("device").dataset.deviceId;
  const base = `/api/v1/devices/${encodeURIComponent(deviceId)}`;

  // --- commands ------------------------------------------------------------------------------------------
  const commandsBody = document.getElementById("commands-body");
  const commands = new Map();

  function result(c) {
    if (c.state === "sent") return `<span class="muted">${T("waiting for the device…")}</span>`;
    if (c.state === "unsent") return `<span class="problem">${T("central could not send it")}</span>`;
    const data = c.result_data && Object.keys(c.result_data).length ? ` <span class="muted mono">${Kuzet.esc(JSON.stringify(c.result_data))}</span>` : "";
    // The device's own text is English; an interruption (it stopped before answering) is said in the reader's words.
    const said = c.result_data && c.result_data.interrupted
      ? T("interrupted: the device stopped before it finished; not carried out again. Send it anew if it is still needed.")
      : c.result_message || "";
    return `<span class="pill ${c.state === "ok" ? "online" : "offline"}">${c.state === "ok" ? T("done") : T("failed")}</span> ${Kuzet.esc(said)}${data}`;
  }

  function showCommand(c) {
    commands.set(c.command_id, c);
    let tr = document.getElementById("cmd-" + c.command_id);
    if (!tr) {
      tr = document.createElement("tr");
      tr.id = "cmd-" + c.command_id;
      commandsBody.prepend(tr);
    }
    tr.dataset.state = c.state;
    const args = c.args && Object.keys(c.args).length ? ` <span class="muted mono">${Kuzet.esc(JSON.stringify(c.args))}</span>` : "";
    tr.innerHTML = `<td class="mono">${Kuzet.time(c.created_at)}</td><td><b>${Kuzet.esc(c.name)}</b>${args}</td>
      <td>${Kuzet.esc(c.created_by || "")}</td><td class="result">${result(c)}</td>`;
    document.getElementById("commands-empty").hidden = true;
  }

  const initial = JSON.parse(document.getElementById("commands-data").textContent);
  initial.slice().reverse().forEach(showCommand);
  document.getElementById("commands-empty").hidden = initial.length > 0;

  async function send(name, args) {
    const row = await Kuzet.api("POST", `${base}/commands`, { name, args });
    showCommand(row);
    return row;
  }

  const form = document.getElementById("command-form");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let args;
      try { args = JSON.parse(document.getElementById("command-args").value || "{}"); }
      catch (err) { Kuzet.toast(T("Arguments are not JSON"), err.message, "high"); return; }
      try { await send(document.getElementById("command-name").value, args); }
      catch (err) { Kuzet.toast(T("Command refused"), err.message, "high"); }
    });
  }

  // --- live view -------------------------------------------------------------------------------------------
  const frame = document.getElementById("live-frame");
  const startButton = document.getElementById("live-start");
  const stopButton = document.getElementById("live-stop");
  const info = document.getElementById("live-info");
  let viewer = null, frames = 0, quietTimer = null, startCommand = null;

  function idle(text) {
    if (viewer) { viewer.close(); viewer = null; }
    clearTimeout(quietTimer);
    startButton.disabled = false;
    stopButton.disabled = true;
    info.textContent = text;
    frame.dataset.streaming = "0";
  }

  function watch(seconds) {
    const until = Date.now() + seconds * 1000;
    // The device stops by itself after the time asked for: no frame for 5 s after that means it has. A gap before
    // then is a weak link (a badge on a cellular network): the view says so and keeps waiting.
    function quiet() {
      if (Date.now() >= until) { idle(T("stream ended · frames: %(n)s", { n: frames })); return; }
      info.textContent = T("no frame for a few seconds: waiting for the device…");
      frame.dataset.streaming = "0";
      quietTimer = setTimeout(quiet, 5000);
    }
    viewer = new EventSource(`${base}/live`);
    viewer.addEventListener("live", (message) => {
      const f = JSON.parse(message.data);
      frame.src = "data:image/jpeg;base64," + f.data;
      frame.hidden = false;
      document.getElementById("live-idle").hidden = true;
      frames += 1;
      frame.dataset.frames = frames;
      frame.dataset.streaming = "1";
      info.textContent = `● ${T("live")} · ${T("frame %(seq)s", { seq: f.seq })} · ${f.width}×${f.height} · ${Kuzet.time(f.ts)}`;
      clearTimeout(quietTimer);
      quietTimer = setTimeout(quiet, 5000);
    });
    viewer.addEventListener("end", () => idle(T("your session ended")));
    quietTimer = setTimeout(() => idle(T("no frames arrived: is the device online?")), (seconds + 10) * 1000);
  }

  if (startButton) {
    startButton.addEventListener("click", async () => {
      const fps = parseFloat(document.getElementById("live-fps").value) || 2;
      const seconds = parseInt(document.getElementById("live-duration").value, 10) || 60;
      startButton.disabled = true;
      frames = 0;
      watch(seconds);  // listening before the device starts, so the first frame is not missed
      try {
        startCommand = await send("live_start", { fps, duration_s: seconds });
        stopButton.disabled = false;
        info.textContent = T("starting…");
      } catch (err) {
        idle("");
        Kuzet.toast(T("Cannot start the live view"), err.message, "high");
      }
    });
    stopButton.addEventListener("click", async () => {
      stopButton.disabled = true;
      try { await send("live_stop", {}); } catch (err) { Kuzet.toast(T("Cannot stop the live view"), err.message, "high"); }
      idle(T("stopped · frames: %(n)s", { n: frames }));
    });
    // Leaving the page stops the device's stream rather than letting it run to its end for nobody.
    window.addEventListener("pagehide", () => {
      if (!viewer) return;
      fetch(`${base}/commands`, {
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": Kuzet.csrf },
        body: JSON.stringify({ name: "live_stop", args: {} }),
      });
    });
  }

  Kuzet.on("command", (c) => {
    if (c.device !== deviceId) return;
    showCommand(c);
    if (startCommand && c.command_id === startCommand.command_id && c.state === "failed") {
      idle(T("the device refused: %(why)s", { why: c.result_message || "" }));
    }
  });

  // --- evidence chain ----------------------------------------------------------------------------------
  const evidenceStatus = document.getElementById("evidence-status");
  async function verify() {
    evidenceStatus.textContent = T("Checking the chain…");
    evidenceStatus.className = "evidence-status muted";
    try {
      const report = await Kuzet.api("GET", `${base}/evidence`);
      evidenceStatus.textContent = report.summary;
      evidenceStatus.className = `evidence-status chain-${report.status}`;
      evidenceStatus.dataset.status = report.status;
      document.getElementById("evidence-problems").innerHTML = report.problems.slice(0, 20).map((p) =>
        `<li><span class="level level-${p.kind === "missing" ? "warning" : "critical"}">${Kuzet.esc(p.kind)}</span> ${T("segment %(n)s", { n: p.index })}: ${Kuzet.esc(p.said || p.what)}</li>`).join("");
    } catch (err) {
      evidenceStatus.textContent = T("Cannot check: %(why)s", { why: err.message });
    }
  }
  if (evidenceStatus) {
    document.getElementById("evidence-verify").addEventListener("click", verify);
    verify();
  }
})();
