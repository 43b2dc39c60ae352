/* Shared by every page: the API helper (with the CSRF header), the live stream, toasts and formatting. */
"use strict";
// The page's words in the reader's language and the site's time zone, written by base.html (central.web.i18n).
const I18N = JSON.parse(document.getElementById("i18n")?.textContent || "{}");

// T(msgid, {name: value}): the translated text with %(name)s filled in; each msgid is in the catalogues.
function T(msgid, values) {
  return fill((I18N.words || {})[msgid] || msgid, values);
}

function fill(text, values) {
  for (const [name, value] of Object.entries(values || {})) text = text.split(`%(${name})s`).join(String(value));
  return text;
}

// N(one, many, n, values), each form a literal: a count in the reader's plural form (1 событие, 2 события,
// 5 событий), by Intl.PluralRules' category of n; %(n)s and the other values filled in as by T.
function N(one, many, n, values) {
  const forms = (I18N.plurals || {})[one] || {};
  const category = new Intl.PluralRules(I18N.locale || "ru-RU").select(n);
  return fill(forms[category] || forms.other || (n === 1 ? one : many), { n, ...values });
}

// The header's height (its sections wrap on a narrow screen) for what sticks under it (app.css --header-h).
{
  const header = document.querySelector("header.top");
  if (header) new ResizeObserver(() => document.documentElement.style.setProperty("--header-h", `${header.offsetHeight}px`)).observe(header);
}

const Kuzet = (() => {
  const locale = I18N.locale || "ru-RU";
  const timeZone = I18N.timeZone || "Asia/Almaty";
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
    indicator.querySelector(".label").textContent = on ? T("live") : T("reconnecting…");
  }

  // What a page's stream carries only when the page asks for it: the triage board's incidents.
  const ASKED = ["incidents"];
  function connect() {
    if (source) return;
    const asked = ASKED.filter((channel) => handlers[channel]).map((channel) => "with=" + channel);
    source = new EventSource("/api/v1/stream" + (asked.length ? "?" + asked.join("&") : ""));
    source.onopen = () => { setLive(true); (handlers.open || []).forEach((fn) => fn()); };
    source.onerror = () => setLive(false);  // EventSource reconnects by itself
    // Central ends the stream of an account disabled (or a token revoked) since the page opened.
    source.addEventListener("end", () => {
      source.close();
      const indicator = document.getElementById("live");
      if (indicator) { indicator.classList.remove("on"); indicator.querySelector(".label").textContent = T("signed out"); }
      window.location = "/login";
    });
    for (const channel of ["event", "device", "unit", "dispatch", "dead_letter", "alert", "command", ...ASKED]) {
      source.addEventListener(channel, (message) => {
        const data = JSON.parse(message.data);
        (handlers[channel] || []).forEach((fn) => fn(data));
      });
    }
  }

  // Connects once the page's script has said what it listens to (a microtask later), so that the stream asks
  // for every channel the page wants.
  function on(channel, fn) { (handlers[channel] = handlers[channel] || []).push(fn); queueMicrotask(connect); }
  // Leaving the page closes its stream at once: a stream left to the browser lingers for a minute after the page
  // has gone, and a browser opens only six connections to central, so the sixth page in a row would wait.
  window.addEventListener("pagehide", () => { if (source) { source.close(); source = null; } });
  window.addEventListener("pageshow", (e) => { if (e.persisted && Object.keys(handlers).length) connect(); });  // back from the cache

  function esc(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // Times in the site's zone and the reader's language: the time of day for today, with the date otherwise.
  const dayFormat = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
  const clockFormat = new Intl.DateTimeFormat(locale, { timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  const dateFormat = new Intl.DateTimeFormat(locale, { timeZone, day: "numeric", month: "short" });
  function time(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const today = dayFormat.format(new Date()) === dayFormat.format(d);
    return today ? clockFormat.format(d) : `${dateFormat.format(d)} ${clockFormat.format(d)}`;
  }

  const relative = new Intl.RelativeTimeFormat(locale, { numeric: "always", style: "short" });
  function ago(iso) {
    if (!iso) return T("never");
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return relative.format(-Math.round(s), "second");
    if (s < 3600) return relative.format(-Math.round(s / 60), "minute");
    if (s < 86400) return relative.format(-Math.round(s / 3600), "hour");
    return relative.format(-Math.round(s / 86400), "day");
  }

  // A state or kind in words: word("status", "en_route") -> «В пути».
  function word(kind, value) { return ((I18N.labels || {})[kind] || {})[value] || value; }
  const number = (value, digits = 0) => new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);

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

  const typeName = (t) => word("type", t);
  // What the camera saw («человек», not "person"); a label central has no word for is shown as it came.
  const objectName = (label) => word("object", label || "");

  // What each device's problems were when last seen, so that only a change is called out.
  const deviceProblems = new Map();
  function noteDevices(devices) {
    for (const d of devices) if (!deviceProblems.has(d.device_id)) deviceProblems.set(d.device_id, (d.problem_words || d.problems || []).join(", "));
  }

  // Every page keeps the live indicator honest and shows routing's alerts (no patrol free, escalations).
  document.addEventListener("DOMContentLoaded", () => {
    if (!document.getElementById("live")) return;
    // A device that goes offline or reports a new problem is called out on whatever page is open.
    on("device", (d) => {
      const problems = (d.problem_words || d.problems || []).join(", ");  // in the reader's words, from the stream
      const before = deviceProblems.get(d.device_id);
      deviceProblems.set(d.device_id, problems);
      if (before !== undefined && problems && problems !== before) {
        toast(`${d.name || d.device_id}: ${problems}`, T("device needs attention"), "high", "/devices");
      }
    });
    on("dead_letter", (l) => toast(T("Message refused"), `${l.topic}: ${l.reason}`, "low", "/admin/dead-letters"));
    on("alert", (a) => {
      refreshAlertCount();
      if (a.acknowledged_at) return;  // someone dealt with it
      // Only critical alerts interrupt; the rest wait, counted in the header and folded on the alerts page.
      if (a.level !== "critical") return;
      toast(T("Routing alert"), a.text || a.message, "critical", a.event_id ? "/events/" + a.event_id : "/alerts");
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
    }, 200);
  }

  return { api, on, esc, time, ago, word, number, toast, typeName, objectName, csrf, noteDevices, refreshAlertCount, locale, timeZone };
})();
