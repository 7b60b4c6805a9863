// session - the view at "/session/{ID}": one session as a conversation in
// three lanes (the client, smtpscope, the upstream), built from its JSON
// transcript (/api/v1/session/{ID}/transcript?format=json: each event's
// leg, direction and "own" say who spoke; docs/transcript-json.md), with
// the learner notes beside the lines they explain, both legs' TLS, the
// capabilities the upstream offered beside those the client was shown,
// and the downloads. Its lines stream in: each "line" event of this
// session has the transcript read again (at most every 150 ms).
import { api, debounce, fill, fmtClock, fmtDate, fmtSize, h, repr } from "/ui/dom.js";
import { stateBadge, tlsLock } from "/ui/sessions.js";

// who - the lane of an event and the console's word for it (as
// log/render_console.c labels its lines).
function who(ev) {
  switch (ev.kind) {
  case "command":
  case "data":
    return ev.leg === "upstream"
      ? { lane: "scope", label: "upstream send", arrow: "→" }
      : { lane: "client", label: "send", arrow: "→" };
  case "reply":
    if (ev.leg === "upstream" && ev.own) return { lane: "upstream", label: "upstream reply", arrow: "←" };
    if (ev.leg === "client" && ev.own) {
      return { lane: "scope", label: ev.injected ? "smtpscope reply (injected)" : "smtpscope reply", arrow: "←", own: true };
    }
    return { lane: "upstream", label: "reply", arrow: "←" };
  case "warning":
    return { lane: "scope", label: "smtpscope: warning", note: true };
  case "error":
    return { lane: "scope", label: "smtpscope: error", note: true };
  default:
    return { lane: "scope", label: "smtpscope", note: true };
  }
}

// shownText - the line as the console shows it after "[#N] ".
export function shownText(ev) {
  const w = who(ev);
  if (ev.line !== undefined) return `${w.label}: ${repr(ev.line, ev.kind !== "command")}`;
  return `${w.label}: ${ev.text || ""}`;
}

// ehloGroups - the EHLO replies of the transcript, each a list of lines
// (without code and CRLF), split by the kind of reply pred selects.
function ehloGroups(events, pred) {
  const groups = [];
  let cur = null;
  for (const ev of events) {
    if (ev.kind !== "reply" || ev.answers !== "EHLO" || !pred(ev) || ev.code !== 250) continue;
    if (!cur) cur = [];
    cur.push(ev.line.slice(4).replace(/\r?\n$/, "").replace(/\r$/, ""));
    if (ev.last) { groups.push(cur); cur = null; }
  }
  return groups;
}

function capabilities(events) {
  // the upstream's answers to smtpscope's own EHLO (the last: inside TLS)
  const offered = ehloGroups(events, (e) => e.leg === "upstream" && e.own).pop();
  // what the client's EHLO got: relayed (rewritten) or smtpscope's own
  const shown = ehloGroups(events, (e) => !(e.leg === "upstream" && e.own)).pop();
  const key = (l) => l.split(/[ =]/)[0].toUpperCase();
  const list = (lines, other, sign, title) => h("ul", { class: "caps" },
    (lines || []).slice(1).map((l) => {
      const same = other && other.slice(1).some((o) => o.toUpperCase() === l.toUpperCase());
      const kw = other && other.slice(1).some((o) => key(o) === key(l));
      const mark = !other ? "" : same ? "" : kw ? "changed" : sign;
      return h("li", { class: mark && "cap-" + (mark === "changed" ? "changed" : "diff"), title: mark && title(mark) },
        mark && mark !== "changed" ? h("span", { class: "sign", text: sign }) : null, l);
    }));
  const hidden = (m) => m === "changed" ? "smtpscope changed it for the client" : "not shown to the client";
  const added = (m) => m === "changed" ? "smtpscope changed it" : "added by smtpscope";
  return h("div", { class: "caps-grid", id: "capabilities" },
    h("div", {}, h("h3", { text: "Upstream offered" }),
      offered ? list(offered, shown, "−", hidden) : h("p", { class: "muted", text: "no upstream EHLO (sink, replay, or not yet)" })),
    h("div", {}, h("h3", { text: "The client was shown" }),
      shown ? list(shown, offered, "+", added) : h("p", { class: "muted", text: "the client sent no EHLO" })));
}

function tlsCard(leg, t) {
  const row = (k, v) => h("tr", {}, h("th", { text: k }), h("td", { text: v === null || v === undefined ? "—" : String(v) }));
  if (!t) return h("div", { class: "card tls" }, h("h3", {}, tlsLock(leg, null), ` ${leg}`), h("p", { class: "muted", text: "no TLS on this leg" }));
  return h("div", { class: "card tls" },
    h("h3", {}, tlsLock(leg, t), ` ${leg}`),
    h("table", { class: "kv" },
      row("Version", t.Version), row("Suite", t.Cipher), row("Group", t.Group),
      row("Certificate subject", t.PeerSubject), row("Issuer", t.PeerIssuer),
      t.NotBefore !== undefined ? row("Valid", `${fmtDate(t.NotBefore)} – ${fmtDate(t.NotAfter)}`) : null,
      row("Verification", t.Verification), row("Resumed", t.Resumed ? "yes" : "no")),
    h("p", { class: "muted mono small", text: t.Text }));
}

// lanes - the transcript as rows; learner notes go beside the line before
// them, a message's content lines fold into one row.
function lanes(events) {
  const rows = [];
  let last = null;
  let data = null;
  for (const ev of events) {
    if (ev.explain) {
      if (last) last.notes.append(h("div", { class: "note", text: ev.text }));
      continue;
    }
    if (ev.kind === "data" && ev.leg === "client") {
      if (!data) {
        data = { pre: h("pre", { class: "content" }), n: 0, summary: h("summary") };
        const r = row(ev, h("details", {}, data.summary, data.pre));
        r.el.classList.add("kind-content");
        rows.push(r.el);
        last = r;
      }
      data.n++;
      data.pre.append(repr(ev.line, true) + "\n");
      data.summary.textContent = `send: message content, ${data.n} line${data.n === 1 ? "" : "s"}`;
      continue;
    }
    data = null;
    const r = row(ev);
    rows.push(r.el);
    last = r;
  }
  return rows;
}

function row(ev, body) {
  const w = who(ev);
  const notes = h("div", { class: "notes" });
  if (ev.note) notes.append(h("div", { class: "note", text: ev.note }));
  const marks = [
    w.own ? h("span", { class: "mark own", text: "smtpscope's own", title: "smtpscope answered this itself" }) : null,
    ev.injected ? h("span", { class: "mark injected", text: "injected", title: "a --fault rule injected this reply" }) : null,
    ev.redacted ? h("span", { class: "mark redacted", text: "redacted", title: "AUTH material masked (--show-secrets shows it)" }) : null,
    ev.message ? h("span", { class: ["mark", "msg-" + ev.message], text: `message ${ev.message}` }) : null,
  ];
  const bubble = h("div", { class: ["bubble", "lane-" + w.lane, w.note && "note-" + ev.kind] },
    body || h("code", { class: "line", text: shownText(ev) }), marks);
  const el = h("div", { class: ["ev", "kind-" + ev.kind, "at-" + w.lane, ev.own && "own"] },
    h("time", { class: "t", datetime: ev.time, text: fmtClock(ev.time) }),
    h("div", { class: "arrow", text: w.arrow || "" }),
    bubble, notes);
  return { el, notes };
}

export function sessionView(app, main, id) {
  const head = h("div", { class: "session-head" });
  const tls = h("div", { class: "cards", id: "tls" });
  const caps = h("div");
  const msgs = h("div", { id: "session-messages" });
  const lanesEl = h("div", { class: "lanes", id: "lanes" });
  const notesBox = h("input", { type: "checkbox", id: "show-notes", checked: true });
  notesBox.addEventListener("change", () => lanesEl.classList.toggle("no-notes", !notesBox.checked));
  const base = `/api/v1/session/${id}/transcript`;

  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "/", "data-link": true, text: "Sessions" }), ` › #${id}`),
    head,
    h("h2", { text: "TLS" }), tls,
    h("h2", { text: "Capabilities" }), caps,
    msgs,
    h("div", { class: "toolbar" }, h("h2", { text: "Transcript" }),
      h("label", {}, notesBox, " learner notes"),
      h("span", { class: "downloads" }, "Download: ",
        h("a", { href: base, download: `smtpscope-session-${id}.txt`, id: "dl-text", text: "text" }), " · ",
        h("a", { href: `${base}?format=json`, download: `smtpscope-session-${id}.jsonl`, id: "dl-jsonl", text: "JSON Lines" }))),
    h("div", { class: "lane-heads" }, h("span"), h("span"), h("span", { text: "client" }),
      h("span", { text: "smtpscope" }), h("span", { text: "upstream" }), h("span", { text: "notes" })),
    lanesEl);

  function drawHead(s) {
    const c = s.Counts || {};
    const b = c.Bytes;
    fill(head,
      h("h1", {}, `Session #${s.ID} `, stateBadge(s)),
      h("table", { class: "kv" },
        h("tr", {}, h("th", { text: "Client" }), h("td", { class: "mono", text: s.Client || "" })),
        h("tr", {}, h("th", { text: "Started" }), h("td", { text: fmtDate(s.Started) })),
        h("tr", {}, h("th", { text: "Ended" }), h("td", { text: s.Ended ? fmtDate(s.Ended) : "still open" })),
        s.Reason ? h("tr", {}, h("th", { text: "How it ended" }), h("td", { text: s.Reason })) : null,
        h("tr", {}, h("th", { text: "Counts" }), h("td", {
          text: `${c.Commands} commands, ${c.Replies} replies, ${c.Accepted} accepted, ${c.Refused} refused, ` +
            `${c.Warnings} warnings, ${c.Errors} errors`,
        })),
        b ? h("tr", {}, h("th", { text: "Bytes" }), h("td", {
          text: `client sent ${fmtSize(b.ClientIn)}, got ${fmtSize(b.ClientOut)}; upstream sent ${fmtSize(b.UpstreamIn)}, got ${fmtSize(b.UpstreamOut)}`,
        })) : null,
        c.LinesNotKept ? h("tr", {}, h("th", { text: "Not kept" }), h("td", { class: "warn", text: `${c.LinesNotKept} lines past the session's bound` })) : null));
    fill(tls, tlsCard("client leg", s.TLS && s.TLS.Client), tlsCard("upstream leg", s.TLS && s.TLS.Upstream));
    const ids = s.Messages || [];
    fill(msgs, ids.length === 0 ? null : [
      h("h2", { text: "Messages" }),
      h("ul", {}, ids.map((mid) => {
        const m = app.summaries.get(mid);
        return h("li", {}, h("a", { href: `/message/${mid}`, "data-link": true, text: m ? (m.Subject || "(no subject)") : mid }));
      }))]);
  }

  let busy = false, again = false, gone = false;
  async function load() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const [s, text] = await Promise.all([api(`/api/v1/session/${id}`), api(`${base}?format=json`, { json: false })]);
      if (gone) return;
      app.sessions.set(s.ID, s);
      const events = text.split("\n").filter((l) => l).map((l) => JSON.parse(l));
      drawHead(s);
      fill(caps, capabilities(events));
      const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      fill(lanesEl, lanes(events));
      if (atEnd && s.State === "open") window.scrollTo(0, document.body.scrollHeight);
    } catch (e) {
      if (!gone) {
        fill(head, h("h1", { text: `Session #${id}` }),
          h("p", { class: "err", text: e.status === 404 ? "This session is not kept (it never was, or --keep let it go)." : e.message }));
      }
    } finally {
      busy = false;
      if (again && !gone) { again = false; load(); }
    }
  }
  const soon = debounce(load, 150);
  load();

  return {
    event(name, d) {
      if ((name === "line" && d.Session === id) || (name === "session" && d.ID === id) ||
          (name === "message" && d.SMTP && d.SMTP.Session === id)) soon();
    },
    resync: load,
    move(step) {
      const list = app.order.sessions;
      const i = list.indexOf(id);
      if (i >= 0 && list[i + step] !== undefined) app.go(`/session/${list[i + step]}`);
    },
    back() { app.go("/"); },
    destroy() { gone = true; },
  };
}
