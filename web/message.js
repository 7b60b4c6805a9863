// message - the view at "/message/{ID}": one message decoded (subject,
// From/To/Cc, the envelope beside the headers when they differ), the
// upstream's verdict, tabs for its HTML, text, headers and source, and its
// attachments. The HTML is shown only in a frame of /view/{ID}.html, which
// the server sends with a sandbox CSP (no script, nothing remote), and the
// frame is sandboxed here too (no allow-scripts, no allow-same-origin):
// a mail's script never runs and nothing remote loads unless the user asks
// ("Load remote content": the frame again with ?remote=1).
import { api, fill, fmtDate, fmtSize, h } from "/ui/dom.js";
import { addrText, verdictBadge } from "/ui/messages.js";
import { tlsLock } from "/ui/sessions.js";

function addrs(list) {
  return (list || []).map(addrText).join(", ");
}

// envelopeDiffers - do MAIL FROM and RCPT TO say other than From, To and Cc?
// Bcc is left out: the API lists there every accepted recipient no header
// names (as Mailpit does), and such a blind copy is what the envelope shows.
function envelopeDiffers(m) {
  const env = m.SMTP && m.SMTP.Envelope;
  if (!env) return false;
  const low = (s) => (s || "").toLowerCase();
  if (low(env.From) !== low(m.From && m.From.Address)) return true;
  const hdr = new Set([...(m.To || []), ...(m.Cc || [])].map((a) => low(a.Address)));
  const rcpt = new Set((env.To || []).map(low));
  if (hdr.size !== rcpt.size) return true;
  for (const a of rcpt) if (!hdr.has(a)) return true;
  return false;
}

function verdict(m) {
  const v = m.SMTP && m.SMTP.Verdict;
  if (!v) return h("p", { class: "muted", text: "No verdict is known." });
  // the reply as the upstream (or the sink) gave it
  const words = v.Code ? `${v.Code} ${v.Enhanced ? v.Enhanced + " " : ""}${v.Text || ""}` : "";
  return h("div", { class: ["verdict", v.Accepted ? "ok" : "bad"], id: "verdict" },
    h("span", { class: "muted", text: v.Accepted ? "The upstream's verdict: " : "Not accepted: " }),
    verdictBadge(m), " ", h("span", { class: "mono", text: words }),
    v.QueueID ? h("span", {}, " · queue id ", h("code", { text: v.QueueID })) : null,
    v.Reason ? h("div", { class: "muted", text: v.Reason }) : null);
}

export function messageView(app, main, id) {
  let gone = false;
  fill(main, h("p", { class: "crumbs" }, h("a", { href: "/messages", "data-link": true, text: "Messages" }), " › …"));

  async function load() {
    let m;
    try {
      m = await api(`/api/v1/message/${encodeURIComponent(id)}`); // marks it read, as Mailpit does
    } catch (e) {
      if (!gone) {
        fill(main, h("p", { class: "crumbs" }, h("a", { href: "/messages", "data-link": true, text: "Messages" })),
          h("p", { class: "err", text: e.status === 404 ? "This message is not kept (deleted, or --keep let it go)." : e.message }));
      }
      return;
    }
    if (gone) return;
    app.refreshUnread();
    draw(m);
  }

  function draw(m) {
    const smtp = m.SMTP || {};
    const env = smtp.Envelope || {};
    const differs = envelopeDiffers(m);
    const kv = (k, v, attrs = {}) => v ? h("tr", {}, h("th", { text: k }), h("td", { ...attrs, text: v })) : null;
    const headers = h("table", { class: "kv", id: "message-headers" },
      kv("From", addrText(m.From), { id: "hdr-from" }), kv("To", addrs(m.To), { id: "hdr-to" }),
      kv("Cc", addrs(m.Cc), { id: "hdr-cc" }), kv("Bcc", addrs(m.Bcc)), kv("Reply-To", addrs(m.ReplyTo)),
      kv("Date", fmtDate(m.Date)), kv("Message-ID", m.MessageID), kv("Size", fmtSize(m.Size)));
    const envelope = h("table", { class: "kv", id: "envelope" },
      kv("MAIL FROM", `<${env.From || ""}>`),
      h("tr", {}, h("th", { text: "RCPT TO" }), h("td", {},
        (env.Recipients || []).map((r) => h("div", {}, `<${r.Address}> `,
          h("span", { class: r.Accepted ? "ok" : r.Accepted === false ? "err" : "muted",
            text: r.Code ? `${r.Code} ${r.Reply || ""}` : "no reply" }),
          r.Relayed ? null : h("span", { class: "mark own", text: "smtpscope's own" }))))),
      kv("HELO", smtp.Helo), kv("Login", m.Username), kv("Transfer", smtp.Transfer));

    // the tabs
    const tabs = h("div", { class: "tabs", role: "tablist" });
    const panel = h("div", { class: "panel", id: "panel" });
    const tabList = [];
    if (m.HTML) tabList.push(["html", "HTML", htmlPanel]);
    tabList.push(["text", "Text", () => h("pre", { class: "body", id: "text-body", text: m.Text || "(no text part)" })]);
    tabList.push(["headers", "Headers", headersPanel]);
    tabList.push(["source", "Source", sourcePanel]);
    function show(key) {
      for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.tab === key));
      const [, , make] = tabList.find((t) => t[0] === key);
      fill(panel, make());
    }
    for (const [key, label] of tabList) {
      const b = h("button", { type: "button", role: "tab", "data-tab": key, id: `tab-${key}`, text: label });
      b.addEventListener("click", () => show(key));
      tabs.append(b);
    }

    function htmlPanel() {
      const frame = h("iframe", {
        id: "html-frame", sandbox: true, referrerpolicy: "no-referrer", title: "the message's HTML (sandboxed)",
        src: `/view/${encodeURIComponent(m.ID)}.html`,
      });
      const remote = h("button", { type: "button", id: "load-remote", text: "Load remote content" });
      remote.addEventListener("click", () => {
        const on = !frame.src.includes("remote=1");
        frame.src = `/view/${encodeURIComponent(m.ID)}.html${on ? "?remote=1" : ""}`;
        remote.textContent = on ? "Block remote content" : "Load remote content";
      });
      return [h("div", { class: "toolbar small" },
        h("span", { class: "muted", text: "Shown sandboxed: its scripts never run; pictures from elsewhere load only if you ask. " }),
        remote), frame];
    }
    function headersPanel() {
      const t = h("table", { class: "kv headers" }, h("tr", {}, h("td", { class: "muted", text: "…" })));
      api(`/api/v1/message/${encodeURIComponent(m.ID)}/headers`).then((hd) => {
        fill(t, Object.keys(hd).flatMap((k) => hd[k].map((v) => h("tr", {}, h("th", { text: k }), h("td", { class: "mono", text: v })))));
      }, (e) => fill(t, h("tr", {}, h("td", { class: "err", text: e.message }))));
      return t;
    }
    function sourcePanel() {
      const pre = h("pre", { class: "body", id: "source", text: "…" });
      api(`/api/v1/message/${encodeURIComponent(m.ID)}/raw`, { json: false }).then((t) => { pre.textContent = t; },
        (e) => { pre.textContent = e.message; });
      return [h("p", {}, h("a", { href: `/api/v1/message/${encodeURIComponent(m.ID)}/raw`, download: `${m.ID}.eml`, text: "Download .eml" })), pre];
    }

    const files = [...(m.Attachments || []), ...(m.Inline || [])];
    const del = h("button", { type: "button", id: "delete", text: "Delete" });
    del.addEventListener("click", async () => {
      try { await api("/api/v1/messages", { method: "DELETE", body: { IDs: [m.ID] }, json: false }); } catch (e) { /* gone already */ }
      app.go("/messages");
    });

    fill(main,
      h("p", { class: "crumbs" }, h("a", { href: "/messages", "data-link": true, text: "Messages" }), " › ", m.Subject || "(no subject)"),
      h("div", { class: "toolbar" }, h("h1", { id: "subject", text: m.Subject || "(no subject)" }), del),
      verdict(m),
      h("div", { class: differs ? "cols" : "" },
        h("div", {}, h("h3", { text: "Headers" }), headers),
        differs ? h("div", {}, h("h3", {}, "Envelope ", h("span", { class: "mark warnmark", text: "differs from the headers" })), envelope) : null),
      differs ? null : h("details", { class: "envelope-same" }, h("summary", { text: "Envelope (the same addresses as the headers)" }), envelope),
      h("p", { class: "facts" },
        smtp.Session ? h("a", { href: `/session/${smtp.Session}`, "data-link": true, text: `Session #${smtp.Session}` }) : null,
        smtp.Client ? ` · from ${smtp.Client}` : "",
        " · TLS ", tlsLock("client leg", smtp.TLS && smtp.TLS.Client), tlsLock("upstream leg", smtp.TLS && smtp.TLS.Upstream)),
      (smtp.Warnings || []).length ? h("ul", { class: "warnings" }, smtp.Warnings.map((w) => h("li", { class: "warn", text: w }))) : null,
      files.length ? h("div", { class: "files", id: "attachments" }, h("h3", { text: "Attachments" }),
        h("ul", {}, files.map((f) => h("li", {},
          h("a", { href: `/api/v1/message/${encodeURIComponent(m.ID)}/part/${encodeURIComponent(f.PartID)}`, download: f.FileName || f.PartID, text: f.FileName || `part ${f.PartID}` }),
          h("span", { class: "muted", text: ` ${f.ContentType || ""}, ${fmtSize(f.Size)}` }))))) : null,
      tabs, panel);
    show(tabList[0][0]);
  }

  load();
  return {
    event(name, d) {
      if (name === "delete" && (d.All || d.IDs.includes(id))) {
        const p = main.querySelector(".crumbs");
        if (p) p.append(h("span", { class: "err", text: " (deleted)" }));
      }
    },
    move(step) {
      const list = app.order.messages;
      const i = list.indexOf(id);
      if (i >= 0 && list[i + step] !== undefined) app.go(`/message/${list[i + step]}`);
    },
    back() { app.go("/messages"); },
    destroy() { gone = true; },
  };
}
