// dom - the page's small helpers: building elements, calling the API,
// formatting times, and smtplib's repr of a transcript line.
//
// Everything a peer sent reaches the page as text nodes (textContent),
// never as HTML: a mail's HTML is shown only inside the sandboxed frame.

// h - an element: h("a", {href: "/x", class: "y", on: {click: fn}}, child...).
// Children are nodes, strings (text) or arrays of them; null is skipped.
export function h(tag, attrs, ...children) {
  const el = tag === "svg" || tag === "path" || tag === "rect"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "text") {
      el.textContent = v;
    } else if (k === "class") {
      el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear - empty el and fill it with children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// api - GET (or another method) on the API; the parsed JSON, or the text
// when json is false. Throws an Error with the server's words otherwise.
export async function api(path, { method = "GET", body, json = true } = {}) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  const text = await r.text();
  if (!r.ok) {
    let why = text;
    try { why = JSON.parse(text).Error || text; } catch (e) { /* text as it is */ }
    const err = new Error(`${r.status}: ${why.trim()}`);
    err.status = r.status;
    throw err;
  }
  return json ? JSON.parse(text) : text;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// fmtDate - an RFC 3339 time as local "2026-12-01 21:28:39".
export function fmtDate(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtClock - a transcript time as the console prints it: local
// "21:28:39.405932" (the microseconds from the string: Date has none).
export function fmtClock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso || "";
  const m = /\.(\d+)Z$/.exec(iso);
  const frac = m ? m[1].padEnd(6, "0").slice(0, 6) : pad(d.getMilliseconds(), 3) + "000";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${frac}`;
}

export function fmtSize(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// repr - a transcript line as smtplib (and smtpscope's console) prints it:
// Python's repr of a str ('...') or of bytes (b'...'). The JSON transcript
// gives one character per byte (docs/transcript-json.md), so each
// character is a byte here. The same rules as log/repr.c.
export function repr(line, bytes) {
  const hasSingle = line.includes("'"), hasDouble = line.includes('"');
  const q = hasSingle && !hasDouble ? '"' : "'";
  let out = bytes ? "b" + q : q;
  for (const ch of line) {
    const c = ch.charCodeAt(0);
    if (ch === "\\" || ch === q) out += "\\" + ch;
    else if (ch === "\r") out += "\\r";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c >= 0x7f) out += "\\x" + (c & 0xff).toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + q;
}

// lock - a small padlock drawn in SVG (no font or picture needed); open
// when the leg had no TLS.
export function lock(closed, title) {
  const body = h("rect", { x: 3, y: 7, width: 10, height: 8, rx: 1.5 });
  const shackle = h("path", {
    d: closed ? "M5 7V5a3 3 0 0 1 6 0v2" : "M5 7V5a3 3 0 0 1 6 0",
    fill: "none", "stroke-width": 1.6,
  });
  const svg = h("svg", { viewBox: "0 0 16 16", width: 14, height: 14, class: "lockicon" }, body, shackle);
  return h("span", { class: ["lock", closed ? "on" : "off"], title }, svg);
}

// debounce - fn at most once per ms, with the latest arguments.
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
