// sessions - the view at "/": every session kept, newest first, live.
// A session appears when its client connects (a "session" event) and its
// row follows it: counts and TLS after its lines, its state when it ends.
import { api, debounce, fill, fmtDate, h, lock } from "/ui/dom.js";

// sessionState - open, relayed, refused, failed, or closed (ended with no
// message and no error), from the session object's State and Counts. A
// session with a message accepted is "relayed", whatever else happened.
export function sessionState(s) {
  if (s.State === "open") return "open";
  const c = s.Counts || {};
  if (c.Accepted > 0) return "relayed";
  if (c.Refused > 0) return "refused";
  if (c.Errors > 0) return "failed";
  return "closed";
}

export function stateBadge(s) {
  const st = sessionState(s);
  return h("span", { class: ["badge", "st-" + st], text: st });
}

export function tlsLock(leg, t) {
  return t
    ? lock(true, `${leg}: ${t.Version || "TLS"} ${t.Cipher || ""}`.trim())
    : lock(false, `${leg}: no TLS`);
}

const STATES = ["open", "relayed", "refused", "failed", "closed"];

export function sessionsView(app, main) {
  const filter = { state: "", text: "" };
  let selected = null; // the ID of the selected row
  let shown = []; // the IDs in the table's order
  let frame = 0;

  const stateSel = h("select", { id: "state-filter", "aria-label": "state" },
    h("option", { value: "", text: "all states" }),
    STATES.map((s) => h("option", { value: s, text: s })));
  const text = h("input", {
    type: "search", id: "session-filter", placeholder: "filter: #id, client, reason, TLS…",
    "aria-label": "filter sessions", autocomplete: "off",
  });
  const tbody = h("tbody", { id: "sessions" });
  const note = h("p", { class: "muted", id: "sessions-note" });
  stateSel.addEventListener("change", () => { filter.state = stateSel.value; draw(); });
  text.addEventListener("input", debounce(() => { filter.text = text.value.trim().toLowerCase(); draw(); }, 100));

  fill(main,
    h("div", { class: "toolbar" }, h("h1", { text: "Sessions" }), stateSel, text),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {},
        ["ID", "Client", "Started", "State", "Msgs", "TLS", "Warn", "Err", "How it ended"]
          .map((t) => h("th", { text: t })))),
      tbody),
    note);

  function matches(s) {
    if (filter.state && sessionState(s) !== filter.state) return false;
    if (!filter.text) return true;
    const t = filter.text.replace(/^#/, "");
    const hay = [String(s.ID), s.Client, s.Reason, s.State,
      s.TLS && s.TLS.Client && s.TLS.Client.Text, s.TLS && s.TLS.Upstream && s.TLS.Upstream.Text]
      .filter(Boolean).join(" ").toLowerCase();
    return hay.includes(t);
  }

  function row(s) {
    const c = s.Counts || {};
    const tls = s.TLS || {};
    const tr = h("tr", { class: ["row", s.ID === selected && "selected"], "data-id": s.ID },
      h("td", {}, h("a", { href: `/session/${s.ID}`, "data-link": true, text: `#${s.ID}` })),
      h("td", { class: "mono", text: s.Client || "" }),
      h("td", { text: fmtDate(s.Started) }),
      h("td", {}, stateBadge(s)),
      h("td", { class: "num", text: String((s.Messages || []).length) }),
      h("td", { class: "locks" }, tlsLock("client leg", tls.Client), tlsLock("upstream leg", tls.Upstream)),
      h("td", { class: ["num", c.Warnings > 0 && "warn"], text: String(c.Warnings || 0) }),
      h("td", { class: ["num", c.Errors > 0 && "err"], text: String(c.Errors || 0) }),
      h("td", { class: "reason", text: s.Reason || "" }));
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      app.go(`/session/${s.ID}`);
    });
    return tr;
  }

  function draw() {
    frame = 0;
    const all = [...app.sessions.values()].sort((a, b) => b.ID - a.ID);
    const list = all.filter(matches);
    shown = list.map((s) => s.ID);
    app.order.sessions = shown;
    if (selected !== null && !shown.includes(selected)) selected = null;
    fill(tbody, list.map(row));
    fill(note, all.length === 0
      ? "No session yet: point a client at smtpscope's SMTP port and it appears here as it connects."
      : list.length < all.length ? `${all.length - list.length} of ${all.length} sessions hidden by the filter.` : "");
  }
  const later = () => { if (!frame) frame = requestAnimationFrame(draw); };

  // a session's counts and TLS change with its lines: asked again, at most
  // every 300 ms per session
  const pending = new Set();
  const refetch = debounce(async () => {
    const ids = [...pending];
    pending.clear();
    for (const id of ids) {
      try { app.sessions.set(id, await api(`/api/v1/session/${id}`)); } catch (e) { /* let go */ }
    }
    later();
  }, 300);

  async function load() {
    try {
      const l = await api("/api/v1/sessions?limit=1000");
      app.sessions.clear();
      for (const s of l.sessions) app.sessions.set(s.ID, s);
      draw();
    } catch (e) {
      fill(note, e.status === 404
        ? "smtpscope keeps no sessions (--keep 0): nothing to show."
        : `Could not read the sessions: ${e.message}`);
    }
  }
  load();

  function select(id) {
    selected = id;
    for (const tr of tbody.children) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
    const tr = tbody.querySelector(`tr[data-id="${id}"]`);
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  return {
    event(name, d) {
      if (name === "session") later();
      else if (name === "line" && ["tls", "warning", "error", "close"].includes(d.Kind)) {
        pending.add(d.Session);
        refetch();
      } else if (name === "message" || name === "delete") later();
    },
    resync: load,
    move(step) {
      if (shown.length === 0) return;
      const i = shown.indexOf(selected);
      select(shown[Math.max(0, Math.min(shown.length - 1, i < 0 ? 0 : i + step))]);
    },
    open() { if (selected !== null) app.go(`/session/${selected}`); },
    search() { text.focus(); text.select(); },
  };
}
