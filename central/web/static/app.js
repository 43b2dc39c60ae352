/* Shared by every page: the API helper (with the CSRF header), the live stream, toasts and formatting. */
"use strict";
const Kuzet = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const handlers = {};
  let source = null;

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { "X-CSRFToken": csrf, "Accept": "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (response.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function setLive(on) {
    const indicator = document.getElementById("live");
    if (!indicator) return;
    indicator.classList.toggle("on", on);
    indicator.querySelector(".label").textContent = on ? "live" : "reconnecting…";
  }

  function connect() {
    if (source) return;
    source = new EventSource("/api/v1/stream");
    source.onopen = () => { setLive(true); (handlers.open || []).forEach((fn) => fn()); };
    source.onerror = () => setLive(false);  // EventSource reconnects by itself
    // Central ends the stream of an account disabled (or a token revoked) since the page opened.
    source.addEventListener("end", () => {
      source.close();
      const indicator = document.getElementById("live");
      if (indicator) { indicator.classList.remove("on"); indicator.querySelector(".label").textContent = "signed out"; }
      window.location = "/login";
    });
    for (const channel of ["event", "device", "unit", "dispatch", "dead_letter", "alert", "command"]) {
      source.addEventListener(channel, (message) => {
        const data = JSON.parse(message.data);
        (handlers[channel] || []).forEach((fn) => fn(data));
      });
    }
  }

  function on(channel, fn) { (handlers[channel] = handlers[channel] || []).push(fn); connect(); }

  function esc(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function time(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const today = new Date().toISOString().slice(0, 10) === iso.slice(0, 10);
    const hms = iso.slice(11, 19);
    return today ? hms : `${d.getUTCDate()} ${d.toLocaleString("en", { month: "short", timeZone: "UTC" })} ${hms}`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function toast(title, subtitle, severity, href) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = "toast" + (severity ? " sev-border-" + severity : "");
    el.innerHTML = `<div class="t">${esc(title)}</div><div class="s">${esc(subtitle)}</div>`;
    if (href) el.onclick = () => { window.location = href; };
    box.prepend(el);
    while (box.children.length > 4) box.lastChild.remove();
    setTimeout(() => { el.style.opacity = "0"; setTimeout(() => el.remove(), 500); }, 8000);
  }

  const typeNames = {
    zone_enter: "Zone entry", zone_exit: "Zone exit", loitering: "Loitering", line_crossing: "Line crossing",
    crowd: "Crowd", no_stopping: "No stopping", object_left: "Object left", running: "Running", chase: "Chase", person_down: "Person down", repeated_stops: "Repeated stops", panic: "PANIC", manual: "Manual",
  };
  const typeName = (t) => typeNames[t] || t;

  // What each device's problems were when last seen, so that only a change is called out.
  const deviceProblems = new Map();
  function noteDevices(devices) {
    for (const d of devices) if (!deviceProblems.has(d.device_id)) deviceProblems.set(d.device_id, (d.problems || []).join(", "));
  }

  // Every page keeps the live indicator honest and shows routing's alerts (no patrol free, escalations).
  document.addEventListener("DOMContentLoaded", () => {
    if (!document.getElementById("live")) return;
    // A device that goes offline or reports a new problem is called out on whatever page is open.
    on("device", (d) => {
      const problems = (d.problems || []).join(", ");
      const before = deviceProblems.get(d.device_id);
      deviceProblems.set(d.device_id, problems);
      if (before !== undefined && problems && problems !== before) {
        toast(`${d.name || d.device_id}: ${problems}`, "device needs attention", "high", "/devices");
      }
    });
    on("dead_letter", (l) => toast("Message refused", `${l.topic}: ${l.reason}`, "low", "/admin/dead-letters"));
    on("alert", (a) => {
      refreshAlertCount();
      if (a.acknowledged_at) return;  // someone dealt with it
      toast(a.level === "info" ? "Routing" : "Routing alert", a.message, a.level === "info" ? null : "high", a.event_id ? "/events/" + a.event_id : "/alerts");
    });
  });

  // The header's count of alerts nobody has acknowledged, kept current from the live stream.
  let alertCountPending = null;
  function refreshAlertCount() {
    const counter = document.getElementById("alert-count");
    if (!counter) return;
    clearTimeout(alertCountPending);
    alertCountPending = setTimeout(async () => {
      const { open } = await api("GET", "/api/v1/alerts?limit=1");
      counter.querySelector(".n").textContent = open;
      counter.classList.toggle("has", open > 0);
      counter.lastChild.textContent = open === 1 ? " alert" : " alerts";
    }, 200);
  }

  return { api, on, esc, time, ago, toast, typeName, csrf, noteDevices, refreshAlertCount };
})();
