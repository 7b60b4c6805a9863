// app - the page: which view its path names, the live events of
// /api/events (one EventSource for the page's life), the keyboard, and
// what the views share (the sessions and message summaries seen so far).
//
// Views ("/", "/messages", "/session/{ID}", "/message/{ID}") are modules
// with one function that fills <main> and returns an object the page
// calls: event(name, data) for each live event, and for the keyboard
// move(step), open(), search(), back(). Moving between views uses the
// History API; the server answers each view's path with this same page,
// so a link or a reload opens it directly.
import { api, fill, h } from "/ui/dom.js";
import { sessionsView } from "/ui/sessions.js";
import { sessionView } from "/ui/session.js";
import { messagesView } from "/ui/messages.js";
import { messageView } from "/ui/message.js";

const main = document.getElementById("main");
const live = document.getElementById("live");

const app = {
  sessions: new Map(), // ID -> the session object of /api/v1/session/{ID}
  summaries: new Map(), // message ID -> its summary, as in /api/v1/messages
  order: { sessions: [], messages: [] }, // the lists as last shown, for j/k in a view
  info: null, // /api/v1/info
  view: null,
  go(path) {
    if (path !== location.pathname + location.search) history.pushState(null, "", path);
    route();
  },
};

const routes = [
  [/^\/$/, () => sessionsView(app, main)],
  [/^\/messages$/, () => messagesView(app, main)],
  [/^\/session\/([1-9][0-9]*)$/, (m) => sessionView(app, main, Number(m[1]))],
  [/^\/message\/([A-Za-z0-9_-]+)$/, (m) => messageView(app, main, m[1])],
];

function route() {
  if (app.view && app.view.destroy) app.view.destroy();
  app.view = null;
  const path = location.pathname;
  document.getElementById("nav-sessions").classList.toggle("here", path === "/" || path.startsWith("/session/"));
  document.getElementById("nav-messages").classList.toggle("here", path.startsWith("/message"));
  for (const [rx, make] of routes) {
    const m = rx.exec(path);
    if (m) {
      app.view = make(m);
      window.scrollTo(0, 0);
      return;
    }
  }
  fill(main, h("h1", { text: "Not here" }),
    h("p", {}, "No view at this address. ", h("a", { href: "/", "data-link": true, text: "Sessions" })));
}

// Links inside the page move between views without loading it again.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  app.go(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

// ---- the keyboard ----------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  const v = app.view || {};
  if (typing) {
    if (e.key === "Escape") t.blur();
    else if (e.key === "Enter" && t instanceof HTMLInputElement && v.submit) v.submit();
    return;
  }
  if (e.key === "j" || e.key === "ArrowDown") { if (v.move) { v.move(1); e.preventDefault(); } }
  else if (e.key === "k" || e.key === "ArrowUp") { if (v.move) { v.move(-1); e.preventDefault(); } }
  else if (e.key === "Enter") { if (v.open) { v.open(); e.preventDefault(); } }
  else if (e.key === "/") { if (v.search) { v.search(); e.preventDefault(); } }
  else if (e.key === "Escape") { if (v.back) v.back(); }
});

// ---- the live events -------------------------------------------------------

// What each event changes in the shared state, before the view hears it.
const shared = {
  session(s) {
    app.sessions.set(s.ID, s);
  },
  message(m) {
    app.summaries.set(m.ID, m);
    const s = m.SMTP && app.sessions.get(m.SMTP.Session);
    if (s && !s.Messages.includes(m.ID)) s.Messages.push(m.ID);
    unread(1);
  },
  delete(d) {
    if (d.All) app.summaries.clear();
    else for (const id of d.IDs) app.summaries.delete(id);
    refreshUnread();
  },
};

let source = null;
let retry = 1000;

function connect() {
  source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    live.classList.remove("off");
    live.title = "live events: connected";
    retry = 1000;
    // what happened while no stream was open
    if (app.view && app.view.resync) app.view.resync();
  });
  for (const name of ["session", "line", "message", "delete", "dropped"]) {
    source.addEventListener(name, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      if (shared[name]) shared[name](data);
      if (name === "dropped" && app.view && app.view.resync) app.view.resync();
      if (app.view && app.view.event) app.view.event(name, data);
    });
  }
  // the server ended the stream (it stops, or this page fell behind):
  // come back later, and look again at what changed meanwhile
  source.addEventListener("end", () => reconnect());
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) reconnect();
    else { live.classList.add("off"); live.title = "live events: reconnecting"; }
  });
}

function reconnect() {
  source.close();
  live.classList.add("off");
  live.title = "live events: reconnecting";
  setTimeout(connect, retry);
  retry = Math.min(retry * 2, 30000);
}

// ---- the header --------------------------------------------------------------

let unreadCount = 0;
function unread(n) {
  unreadCount += n;
  document.getElementById("unread").textContent = unreadCount > 0 ? String(unreadCount) : "";
}
async function refreshUnread() {
  try {
    const l = await api("/api/v1/messages?limit=1");
    unreadCount = 0;
    unread(l.unread);
  } catch (e) { /* no mailbox (--keep 0) */ }
}
app.refreshUnread = refreshUnread;

async function header() {
  try {
    app.info = await api("/api/v1/info");
    const s = app.info.SMTP || {};
    const mode = s.Mode === "relay" ? `relay to ${s.Upstream}` : s.Mode;
    document.getElementById("mode").textContent = `${mode} · SMTP on ${s.Listen} · ${app.info.Version}`;
  } catch (e) { /* shown by the views */ }
  refreshUnread();
}

header();
route();
connect();
