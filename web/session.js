// session - the view at "/session/{ID}": one session as a conversation in
// three lanes (the client, smtpscope, the upstream), built from its JSON
// transcript (/api/v1/session/{ID}/transcript?format=json: each event's
// leg, direction and "own" say who spoke; docs/transcript-json.md), with
// the learner notes beside the lines they explain, both legs' TLS, the
// capabilities the upstream offered beside those the client was shown,
// and the downloads (its pcap and key log too when --pcap and --keylog are
// on: the session object's Downloads says). Its lines stream in: each
// "line" event of this session has the transcript read again (at most
// every 150 ms).
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

// ehloGroups - the answers to EHLO that pred selects, each {lines (without
// code and CRLF), tls (was that leg encrypted then?)}.
function ehloGroups(events, pred, leg) {
  const groups = [];
  let cur = null;
  let tls = false;
  for (const ev of events) {
    if (ev.kind === "tls" && (ev.text || "").startsWith(`TLS ${leg}:`)) tls = true;
    if (ev.kind !== "reply" || ev.answers !== "EHLO" || !pred(ev) || ev.code !== 250) continue;
    if (!cur) cur = { lines: [], tls };
    cur.lines.push(ev.line.slice(4).replace(/\r?\n$/, "").replace(/\r$/, ""));
    if (ev.last) { groups.push(cur); cur = null; }
  }
  return groups;
}

// capabilities - what the upstream offered smtpscope (each EHLO it
// answered) beside what the client was shown (each EHLO of the client):
// a keyword the other side has not is marked, + where smtpscope added it
// for the client, − where it kept it from the client. The client's
// answers are compared with the upstream's last (inside TLS when there
// was TLS): the one smtpscope relays.
function capabilities(events) {
  const up = ehloGroups(events, (e) => e.leg === "upstream" && e.own, "upstream");
  const client = ehloGroups(events, (e) => !(e.leg === "upstream" && e.own), "client");
  const ref = up.length ? up[up.length - 1].lines.slice(1) : null;
  const shownAll = client.flatMap((g) => g.lines.slice(1));
  const key = (l) => l.split(/[ =]/)[0].toUpperCase();
  const same = (a, b) => a.toUpperCase() === b.toUpperCase();
  const item = (l, other, sign, title) => {
    if (!other) return h("li", {}, l);
    if (other.some((o) => same(o, l))) return h("li", {}, l);
    const changed = other.some((o) => key(o) === key(l));
    return h("li", { class: changed ? "cap-changed" : "cap-diff", title: changed ? "changed by smtpscope" : title },
      h("span", { class: "sign", text: changed ? "~" : sign }), l);
  };
  const group = (g, other, sign, title) => h("div", { class: "ehlo" },
    h("div", { class: "muted small", text: `${g.lines[0]}: ${g.tls ? "inside TLS" : "before TLS"}` }),
    h("ul", { class: "caps" }, g.lines.slice(1).map((l) => item(l, other, sign, title))));
  return h("div", { class: "caps-grid", id: "capabilities" },
    h("div", { id: "caps-upstream" }, h("h3", { text: "The upstream offered" }),
      up.length ? up.map((g, i) => group(g, i === up.length - 1 ? shownAll : null, "−", "not shown to the client"))
        : h("p", { class: "muted", text: "no upstream EHLO (sink or replay mode, or not yet)" })),
    h("div", { id: "caps-client" }, h("h3", { text: "The client was shown" }),
      client.length ? client.map((g) => group(g, ref, "+", "added by smtpscope"))
        : h("p", { class: "muted", text: "the client sent no EHLO" })));
}

function tlsCard(leg, t) {
  const row = (k, v) => h("tr", {}, h("th", { text: k }), h("td", { text: v === null || v === undefined ? "—" : String(v) }));
  if (!t) return h("div", { class: "card tls" }, h("h3", {}, tlsLock(leg, null), ` ${leg}`), h("p", { class: "muted", text: "no TLS on this leg" }));
  return h("div", { class: "card tls", title: t.Text || "" },
    h("h3", {}, tlsLock(leg, t), ` ${leg}`),
    h("table", { class: "kv" },
      row("Version", t.Version), row("Suite", t.Cipher), row("Group", t.Group),
      row("Certificate subject", t.PeerSubject), row("Issuer", t.PeerIssuer),
      t.NotBefore || t.NotAfter ? row("Valid", `${fmtDate(t.NotBefore)} – ${fmtDate(t.NotAfter)}`) : null,
      row("Verification", t.Verification), row("Resumed", t.Resumed ? "yes" : "no")));
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
  const head = h("div", { class: "card session-head" });
  const tls = h("div", { class: "tls-cards", id: "tls" });
  const caps = h("div");
  const lanesEl = h("div", { class: "lanes", id: "lanes" });
  const notesBox = h("input", { type: "checkbox", id: "show-notes", checked: true });
  notesBox.addEventListener("change", () => lanesEl.classList.toggle("no-notes", !notesBox.checked));
  const base = `/api/v1/session/${id}/transcript`;
  const outputs = h("span", { id: "dl-outputs" }); // the pcap and key log, when they are on

  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "/", "data-link": true, text: "Sessions" }), ` › #${id}`),
    h("div", { class: "cards top-cards" }, head, tls),
    h("div", { class: "toolbar" }, h("h2", { text: "Transcript" }),
      h("label", {}, notesBox, " learner notes"),
      h("span", { class: "downloads" }, "Download: ",
        h("a", { href: base, download: `smtpscope-session-${id}.txt`, id: "dl-text", text: "text" }), " · ",
        h("a", { href: `${base}?format=json`, download: `smtpscope-session-${id}.jsonl`, id: "dl-jsonl", text: "JSON Lines" }),
        outputs)),
    h("div", { class: "lane-heads" }, h("span"), h("span"), h("span", { text: "client" }),
      h("span", { text: "smtpscope" }), h("span", { text: "upstream" }), h("span", { text: "notes" })),
    lanesEl,
    h("h2", { text: "Capabilities" }), caps);

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
          text: `${c.Commands} commands, ${c.Replies} replies; messages: ${c.Accepted} accepted, ${c.Refused} refused; ` +
            `${c.Warnings} warnings, ${c.Errors} errors`,
        })),
        b ? h("tr", {}, h("th", { text: "Bytes" }), h("td", {
          text: `client ${fmtSize(b.ClientIn)} in, ${fmtSize(b.ClientOut)} out; upstream ${fmtSize(b.UpstreamIn)} in, ${fmtSize(b.UpstreamOut)} out`,
        })) : null,
        c.LinesNotKept ? h("tr", {}, h("th", { text: "Not kept" }), h("td", { class: "warn", text: `${c.LinesNotKept} lines past the session's bound` })) : null,
        (s.Messages || []).length ? h("tr", {}, h("th", { text: "Messages" }), h("td", { id: "session-messages" },
          s.Messages.map((mid, i) => {
            const m = app.summaries.get(mid);
            return [i ? ", " : "", h("a", { href: `/message/${mid}`, "data-link": true, text: m ? (m.Subject || "(no subject)") : mid })];
          }))) : null));
    fill(tls, tlsCard("client leg", s.TLS && s.TLS.Client), tlsCard("upstream leg", s.TLS && s.TLS.Upstream));
    const d = s.Downloads || {};
    fill(outputs,
      d.Pcap ? [" · ", h("a", { href: `/api/v1/session/${id}/pcap`, download: `smtpscope-session-${id}.pcap`, id: "dl-pcap", text: "pcap" })] : null,
      d.KeyLog ? [" · ", h("a", {
        href: `/api/v1/session/${id}/keylog`, download: `smtpscope-session-${id}.keylog`, id: "dl-keylog", text: "key log",
        title: "the TLS secrets of this session's connections (NSS key log, for Wireshark with the pcap of --pcap)",
      })] : null);
  }

  let busy = false, again = false, gone = false;
  let lastText = null, lastHead = null;
  async function load() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const [s, text] = await Promise.all([api(`/api/v1/session/${id}`), api(`${base}?format=json`, { json: false })]);
      if (gone) return;
      app.sessions.set(s.ID, s);
      const head = JSON.stringify(s);
      if (text === lastText && head === lastHead) return; // nothing new: the page stays as it is
      lastText = text;
      lastHead = head;
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
