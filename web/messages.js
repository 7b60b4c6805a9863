// messages - the view at "/messages": the kept messages, newest first, a
// search box in the API's query syntax (Mailpit's: from:, to:, subject:,
// is:unread, has:attachment, "quoted words", -exclusions ...), and
// deletion. New messages come in live; a search is run again when one
// arrives.
import { api, debounce, fill, fmtDate, fmtSize, h } from "/ui/dom.js";

const PAGE = 100;

export function verdictBadge(m) {
  const v = m.SMTP && m.SMTP.Verdict;
  if (!v) return h("span", { class: "badge", text: "?" });
  if (v.Accepted) return h("span", { class: "badge st-relayed", title: v.Text || "", text: `${v.Code} accepted` });
  return h("span", { class: "badge st-refused", title: v.Reason || v.Text || "", text: v.Code ? `${v.Code} refused` : "no verdict" });
}

export function addrText(a) {
  if (!a) return "";
  return a.Name ? `${a.Name} <${a.Address}>` : a.Address;
}

export function messagesView(app, main) {
  let query = "";
  let list = []; // summaries shown, newest first
  let total = 0;
  let selected = null;

  const box = h("input", {
    type: "search", id: "message-search", placeholder: "search: from:alice subject:\"invoice\" has:attachment is:unread…",
    "aria-label": "search messages", autocomplete: "off",
  });
  const tbody = h("tbody", { id: "messages" });
  const note = h("p", { class: "muted", id: "messages-note" });
  const more = h("button", { type: "button", id: "more", hidden: true, text: "More" });
  const delShown = h("button", { type: "button", id: "delete-shown", text: "Delete all shown" });
  box.addEventListener("input", debounce(() => { query = box.value.trim(); load(); }, 250));
  more.addEventListener("click", () => load(list.length));
  delShown.addEventListener("click", async () => {
    const what = query ? `every message matching “${query}”` : "every message";
    if (!confirm(`Delete ${what}?`)) return;
    try {
      if (query) await api(`/api/v1/search?query=${encodeURIComponent(query)}`, { method: "DELETE", json: false });
      else await api("/api/v1/messages", { method: "DELETE", json: false });
    } catch (e) { fill(note, e.message); }
    load();
  });

  fill(main,
    h("div", { class: "toolbar" }, h("h1", { text: "Messages" }), box, delShown),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["", "From", "Subject", "To", "Received", "Size", "Verdict", "Session", ""]
        .map((t) => h("th", { text: t })))),
      tbody),
    note, more);

  function row(m) {
    const to = (m.To || []).map(addrText).join(", ");
    const del = h("button", { type: "button", class: "del", title: "delete this message", "aria-label": "delete", text: "✕" });
    del.addEventListener("click", async (e) => {
      e.stopPropagation();
      try { await api("/api/v1/messages", { method: "DELETE", body: { IDs: [m.ID] }, json: false }); } catch (err) { fill(note, err.message); }
      // the "delete" event takes the row away
    });
    const tr = h("tr", { class: ["row", !m.Read && "unread", m.ID === selected && "selected"], "data-id": m.ID },
      h("td", { class: "dot", title: m.Read ? "read" : "unread", text: m.Read ? "" : "●" }),
      h("td", { text: addrText(m.From) }),
      h("td", {}, h("a", { href: `/message/${m.ID}`, "data-link": true, text: m.Subject || "(no subject)" }),
        m.Attachments > 0 ? h("span", { class: "att", title: "attachments", text: `${m.Attachments} att.` }) : null,
        h("div", { class: "snippet muted", text: m.Snippet || "" })),
      h("td", { text: to }),
      h("td", { text: fmtDate(m.Created) }),
      h("td", { class: "num", text: fmtSize(m.Size) }),
      h("td", {}, verdictBadge(m)),
      h("td", {}, m.SMTP && m.SMTP.Session ? h("a", { href: `/session/${m.SMTP.Session}`, "data-link": true, text: `#${m.SMTP.Session}` }) : "—"),
      h("td", {}, del));
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a, button")) return;
      app.go(`/message/${m.ID}`);
    });
    return tr;
  }

  function draw() {
    if (selected !== null && !list.some((m) => m.ID === selected)) selected = null;
    app.order.messages = list.map((m) => m.ID);
    fill(tbody, list.map(row));
    more.hidden = list.length >= total;
    fill(note, total === 0 ? (query ? "No message matches." : "No message yet.") : `${list.length} of ${total}`);
  }

  let seq = 0;
  async function load(start = 0) {
    const mine = ++seq;
    try {
      const url = query
        ? `/api/v1/search?query=${encodeURIComponent(query)}&start=${start}&limit=${PAGE}`
        : `/api/v1/messages?start=${start}&limit=${PAGE}`;
      const r = await api(url);
      if (mine !== seq) return; // a newer search answered first
      for (const m of r.messages) app.summaries.set(m.ID, m);
      list = start === 0 ? r.messages : list.concat(r.messages);
      total = query ? r.messages_count : r.total;
      draw();
    } catch (e) {
      if (mine === seq) fill(note, e.status === 404 ? "smtpscope keeps no messages (--keep 0)." : e.message);
    }
  }
  load();

  function select(id) {
    selected = id;
    for (const tr of tbody.children) tr.classList.toggle("selected", tr.dataset.id === id);
    const tr = [...tbody.children].find((t) => t.dataset.id === id);
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  return {
    event(name, d) {
      if (name === "message") {
        if (query) { load(); return; }
        list.unshift(d);
        total++;
        draw();
      } else if (name === "delete") {
        if (d.All) { list = []; total = 0; } else {
          const n = list.length;
          list = list.filter((m) => !d.IDs.includes(m.ID));
          total -= n - list.length;
        }
        draw();
      }
    },
    resync: () => load(),
    move(step) {
      if (list.length === 0) return;
      const i = list.findIndex((m) => m.ID === selected);
      select(list[Math.max(0, Math.min(list.length - 1, i < 0 ? 0 : i + step))].ID);
    },
    open() { if (selected !== null) app.go(`/message/${selected}`); },
    search() { box.focus(); box.select(); },
    submit() { query = box.value.trim(); load(); },
  };
}
