"""The kept messages over the HTTP API (issue 14): Mailpit's API v1 paths and
shapes, with MIME made by Python's email package and sent with smtplib, in
sink and relay modes: the list, a message decoded, headers, raw bytes,
parts, read flags, deletion, search in Mailpit's syntax, the /wait long
poll, and the HTML view's Content-Security-Policy."""
import json
import os
import re
import smtplib
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formataddr

import harness as h

URL_RX = r"HTTP API on http://127\.0\.0\.1:(\d+)"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def call(port, path, method="GET", body=None, timeout=20):
    """(status, headers, body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def rich_message(n=1):
    m = EmailMessage()
    m["From"] = formataddr(("Jürgen Müller", "juergen@example.test"))
    m["To"] = formataddr(("Bob", "bob@example.test")) + ", carol@example.test"
    m["Cc"] = formataddr(("Dan", "dan@example.test"))
    m["Subject"] = f"Grüße {n} aus Köln"
    m["Message-ID"] = f"<msg-{n}@example.test>"
    m.set_content("Hallo Bob,\nschöne Grüße.\n", charset="utf-8", cte="quoted-printable")
    m.add_alternative("<p>Hallo <b>Bob</b>, sch&ouml;ne Gr&uuml;&szlig;e.</p>", subtype="html",
                      charset="utf-8", cte="base64")
    m.add_attachment(PNG, maintype="image", subtype="png", filename="report.png")
    return m


class ApiCase(h.ScopeCase):
    def api(self, *args, upstream=None):
        if upstream is None:
            d = tempfile.mkdtemp(prefix="smtpscope-api-")
            self.scope = h.Scope("--sink", d, "--http", "127.0.0.1:0", *args, ca=False)
        else:
            self.scope = h.Scope("--http", "127.0.0.1:0", *args, upstream=upstream)
        line = self.scope.wait_for(URL_RX)
        self.port = int(re.search(URL_RX, line).group(1))
        return self.port

    def send(self, msg, starttls=False):
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        if starttls:
            c.starttls()
            c.login(h.USER, h.PASSWORD)
        # once (a multipart's boundary is made when it is written), with CRLF:
        # smtplib sends bytes as they are, and the mailbox keeps them so
        data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        rcpts = [a.split("<")[-1].strip("> ") for f in ("To", "Cc") if msg[f]
                 for a in str(msg[f]).split(",")]
        c.sendmail(msg["From"].addresses[0].addr_spec, rcpts, data)
        c.quit()
        return data

    def get(self, path):
        st, hd, body = call(self.port, path)
        self.assertEqual(st, 200, body)
        return json.loads(body)


class MessagesTest(ApiCase):
    def test_list_message_headers_raw_part(self):
        self.api()
        sent = self.send(rich_message(1))
        lst = self.get("/api/v1/messages")
        self.assertEqual((lst["total"], lst["count"], lst["unread"]), (1, 1, 1))
        s = lst["messages"][0]
        self.assertEqual(s["Subject"], "Grüße 1 aus Köln")  # RFC 2047, decoded
        self.assertEqual(s["From"], {"Name": "Jürgen Müller", "Address": "juergen@example.test"})
        self.assertEqual([a["Address"] for a in s["To"]], ["bob@example.test",
                                                           "carol@example.test"])
        self.assertEqual(s["MessageID"], "msg-1@example.test")
        self.assertEqual(s["Attachments"], 1)
        self.assertFalse(s["Read"])
        self.assertIn("Hallo Bob", s["Snippet"])
        mid = s["ID"]

        m = self.get(f"/api/v1/message/{mid}")
        self.assertEqual(m["Text"].replace("\r\n", "\n"), "Hallo Bob,\nschöne Grüße.\n")
        self.assertIn("Hallo <b>Bob</b>, sch&ouml;ne", m["HTML"])  # base64, decoded
        self.assertEqual(m["Cc"], [{"Name": "Dan", "Address": "dan@example.test"}])
        self.assertEqual(len(m["Attachments"]), 1)
        att = m["Attachments"][0]
        self.assertEqual((att["FileName"], att["ContentType"], att["Size"]),
                         ("report.png", "image/png", len(PNG)))
        self.assertEqual(m["SMTP"]["Envelope"]["From"], "juergen@example.test")
        self.assertEqual(sorted(m["SMTP"]["Envelope"]["To"]),
                         ["bob@example.test", "carol@example.test", "dan@example.test"])
        self.assertTrue(m["SMTP"]["Verdict"]["Accepted"])
        # reading it marked it read, as Mailpit does
        self.assertTrue(self.get("/api/v1/messages")["messages"][0]["Read"])
        self.assertEqual(self.get("/api/v1/message/latest")["ID"], mid)

        hdrs = self.get(f"/api/v1/message/{mid}/headers")
        self.assertIn("Subject", hdrs)
        self.assertTrue(hdrs["Subject"][0].startswith("=?utf-8?"))  # not decoded there

        st, hd, raw = call(self.port, f"/api/v1/message/{mid}/raw")
        self.assertEqual(st, 200)
        self.assertEqual(raw, sent)  # the exact bytes

        st, hd, part = call(self.port, f"/api/v1/message/{mid}/part/{att['PartID']}")
        self.assertEqual((st, part), (200, PNG))
        self.assertEqual(hd["Content-Type"], "image/png")
        self.assertEqual(hd["X-Content-Type-Options"], "nosniff")

        st, _, _ = call(self.port, "/api/v1/message/nosuchid")
        self.assertEqual(st, 404)
        st, _, _ = call(self.port, f"/api/v1/message/{mid}/part/9.9")
        self.assertEqual(st, 404)

    def test_views_and_their_policy(self):
        self.api()
        self.send(rich_message(2))
        mid = self.get("/api/v1/messages")["messages"][0]["ID"]
        st, hd, body = call(self.port, f"/view/{mid}.html")
        self.assertEqual(st, 200)
        self.assertIn("sandbox", hd["Content-Security-Policy"])
        self.assertIn("default-src 'none'", hd["Content-Security-Policy"])
        self.assertIn("<b>Bob</b>", body.decode())
        st, hd, body = call(self.port, f"/view/{mid}.txt")
        self.assertEqual(st, 200)
        self.assertIn("schöne Grüße", body.decode())
        plain = EmailMessage()
        plain["From"], plain["To"], plain["Subject"] = "a@x.test", "b@x.test", "plain"
        plain.set_content("only text\n")
        self.send(plain)
        mid = self.get("/api/v1/messages")["messages"][0]["ID"]
        self.assertEqual(call(self.port, f"/view/{mid}.html")[0], 404)

    def test_html_view_shows_the_messages_own_pictures_and_remote_ones_on_request(self):
        self.api()
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@x.test", "b@x.test", "pictures"
        m.set_content("see the logo\n")
        m.add_alternative('<p><img src="cid:logo@x.test"> and <img src="https://example.test/t.png">'
                          ' and <img src="cid:unknown@x.test"></p>', subtype="html")
        m.get_payload()[1].add_related(PNG, maintype="image", subtype="png", cid="<logo@x.test>",
                                       filename="logo.png")
        self.send(m)
        msg = self.get("/api/v1/message/latest")
        part = [p for p in msg["Inline"] + msg["Attachments"] if p["ContentID"] == "logo@x.test"]
        self.assertEqual(len(part), 1, msg)
        url = f"/api/v1/message/{msg['ID']}/part/{part[0]['PartID']}"
        st, hd, body = call(self.port, f"/view/{msg['ID']}.html")
        self.assertEqual(st, 200)
        html = body.decode()
        self.assertIn(f'<img src="{url}">', html)
        self.assertIn('src="cid:unknown@x.test"', html)  # no such part: left as it is
        csp = hd["Content-Security-Policy"]
        self.assertIn("img-src 'self' data:;", csp)
        self.assertNotIn("https:", csp)
        st, _, img = call(self.port, url)
        self.assertEqual((st, img), (200, PNG))
        st, hd, _ = call(self.port, f"/view/{msg['ID']}.html?remote=1")
        self.assertIn("img-src 'self' data: http: https:;", hd["Content-Security-Policy"])
        self.assertIn("default-src 'none'", hd["Content-Security-Policy"])

    def test_read_flags_and_delete(self):
        self.api()
        for n in range(3):
            self.send(rich_message(n))
        ids = [m["ID"] for m in self.get("/api/v1/messages")["messages"]]
        self.assertEqual(len(ids), 3)
        st, _, body = call(self.port, "/api/v1/messages", "PUT", {"IDs": ids[:2], "Read": True})
        self.assertEqual(st, 200)
        self.assertEqual(self.get("/api/v1/messages")["unread"], 1)
        st, _, _ = call(self.port, "/api/v1/messages", "PUT", {"Read": False})  # all
        self.assertEqual(self.get("/api/v1/messages")["unread"], 3)
        st, _, _ = call(self.port, "/api/v1/messages", "DELETE", {"IDs": [ids[0]]})
        self.assertEqual(st, 200)
        left = [m["ID"] for m in self.get("/api/v1/messages")["messages"]]
        self.assertEqual(left, ids[1:])
        self.assertEqual(call(self.port, "/api/v1/messages", "PUT", None)[0], 200)
        st, _, _ = call(self.port, "/api/v1/messages", "DELETE")  # no body: all
        self.assertEqual(self.get("/api/v1/messages")["total"], 0)
        st, _, _ = call(self.port, "/api/v1/messages", "DELETE", "not an object")
        self.assertEqual(st, 400)
        self.send(rich_message(9))
        for bad in ({"IDs": "abc"}, {"IDs": {}}, {"IDs": 7}):  # never read as "all"
            self.assertEqual(call(self.port, "/api/v1/messages", "DELETE", bad)[0], 400)
            self.assertEqual(call(self.port, "/api/v1/messages", "PUT",
                                  dict(bad, Read=True))[0], 400)
        self.assertEqual(self.get("/api/v1/messages")["total"], 1)
        self.assertEqual(self.get("/api/v1/messages")["unread"], 1)

    def test_info_counts_the_kept_messages(self):
        self.api("--keep", "3")
        sizes = [len(self.send(rich_message(n))) for n in range(4)]  # the first is evicted
        info = self.get("/api/v1/info")
        self.assertEqual((info["Messages"], info["Unread"]), (3, 3))
        self.assertEqual(info["DatabaseSize"], sum(sizes[1:]))
        self.assertEqual(info["RuntimeStats"]["MessagesDeleted"], 1)
        self.get("/api/v1/message/latest")  # marks it read
        ids = [m["ID"] for m in self.get("/api/v1/messages")["messages"]]
        call(self.port, "/api/v1/messages", "DELETE", {"IDs": [ids[-1]]})
        info = self.get("/api/v1/info")
        self.assertEqual((info["Messages"], info["Unread"]), (2, 1))
        self.assertEqual(info["RuntimeStats"]["MessagesDeleted"], 2)

    def test_list_paging_newest_first(self):
        self.api()
        for n in range(5):
            self.send(rich_message(n))
        page = self.get("/api/v1/messages?start=1&limit=2")
        self.assertEqual((page["total"], page["count"], page["start"]), (5, 2, 1))
        self.assertEqual([m["Subject"] for m in page["messages"]],
                         ["Grüße 3 aus Köln", "Grüße 2 aus Köln"])

    def test_mime_made_by_swaks_and_curl(self):
        """MIME from other clients than Python's: swaks's attachment and
        curl's multipart (-F), decoded by the API."""
        self.api()
        d = tempfile.mkdtemp(prefix="smtpscope-api-clients-")
        with open(f"{d}/report-7.txt", "wb") as f:
            f.write("Zeile mit Umlauten: äöü\n".encode() * 50)
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.scope.port}",
                            "--from", "app@example.test", "--to", "ops@example.test",
                            "--header", "Subject: swaks report", "--body", "see the attachment",
                            "--attach-type", "text/plain", "--attach-name", "report-7.txt",
                            "--attach", f"@{d}/report-7.txt"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = self.get("/api/v1/message/latest")
        self.assertEqual(m["Subject"], "swaks report")
        self.assertIn("see the attachment", m["Text"])
        self.assertEqual([a["FileName"] for a in m["Attachments"]], ["report-7.txt"])
        st, hd, body = call(self.port, f"/api/v1/message/{m['ID']}/part/"
                                       f"{m['Attachments'][0]['PartID']}")
        self.assertEqual(body, "Zeile mit Umlauten: äöü\n".encode() * 50)
        self.assertEqual(m["Attachments"][0]["Size"], len(body))

        with open(f"{d}/hello.txt", "w") as f:
            f.write("Hallo von curl\n")
        with open(f"{d}/head.txt", "w") as f:
            f.write("Subject: curl multipart\r\nFrom: app@example.test\r\n"
                    "To: ops@example.test\r\n")
        r = subprocess.run(["curl", "-sS", f"smtp://127.0.0.1:{self.scope.port}",
                            "--mail-from", "app@example.test", "--mail-rcpt", "ops@example.test",
                            "-H", "Subject: curl multipart", "-H", "From: app@example.test",
                            "-H", "To: ops@example.test",
                            "-F", "=Hallo von curl, im Text;type=text/plain; charset=utf-8",
                            "-F", f"file=@{d}/report-7.txt;type=text/plain"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = self.get("/api/v1/message/latest")
        self.assertEqual(m["Subject"], "curl multipart")
        self.assertIn("Hallo von curl, im Text", m["Text"])
        self.assertEqual([a["FileName"] for a in m["Attachments"]], ["report-7.txt"])
        self.assertEqual(self.get("/api/v1/search?query=has:attachment")["messages_count"], 2)
        self.assertEqual(self.get("/api/v1/search?query=has:attachment+subject:curl")
                         ["messages_count"], 1)

    def test_relay_mode_keeps_the_upstream_verdict(self):
        up = h.Upstream()
        self.addCleanup(up.stop)
        self.api(upstream=up)
        self.send(rich_message(7), starttls=True)
        m = self.get("/api/v1/message/latest")
        self.assertEqual(m["Subject"], "Grüße 7 aus Köln")
        self.assertEqual(m["SMTP"]["Verdict"]["Code"], 250)
        self.assertEqual(m["Username"], h.USER)
        self.assertIsNotNone(m["SMTP"]["TLS"]["Upstream"])
        self.assertEqual(len(up.recorder.messages), 1)


def cert_validity(path):
    """(notBefore, notAfter) of a PEM certificate as UTC ISO 8601."""
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-startdate", "-enddate"],
                         capture_output=True, text=True, check=True).stdout
    dates = dict(l.split("=", 1) for l in out.splitlines())
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ssl.cert_time_to_seconds(t)))
    return iso(dates["notBefore"]), iso(dates["notAfter"])


class TlsValidityTest(ApiCase):
    def test_the_upstream_certificates_validity(self):
        """Each leg's TLS object has the peer certificate's validity: the
        session's, and the message's SMTP facts."""
        up = h.Upstream()
        self.addCleanup(up.stop)
        self.api(upstream=up)
        self.send(rich_message(8), starttls=True)
        want = cert_validity(h.certs().pair("server")[0])
        m = self.get("/api/v1/message/latest")
        s = self.get(f"/api/v1/session/{m['SMTP']['Session']}")
        for tls in (s["TLS"]["Upstream"], m["SMTP"]["TLS"]["Upstream"]):
            self.assertEqual((tls["NotBefore"], tls["NotAfter"]), want)
            self.assertEqual(tls["PeerIssuer"], "CN=smtpscope test ca")
        # the client leg's peer showed no certificate
        self.assertIsNone(s["TLS"]["Client"]["NotBefore"])
        self.assertIsNone(s["TLS"]["Client"]["NotAfter"])


def keylog_lines(data):
    """{client random: set of lines} of NSS key-log text."""
    out = {}
    for l in data.splitlines():
        if l.strip() and not l.startswith("#"):
            out.setdefault(l.split()[1].lower(), set()).add(l)
    return out


class SessionDownloadsTest(ApiCase):
    """A session's pcap and key-log lines, with --pcap and --keylog."""

    def two_sessions(self, *args, keylogs=None):
        """Two relayed sessions inside TLS on both legs, each with its own
        MAIL FROM; their session IDs. keylogs: a client key log per session
        (Python's own, of the client leg)."""
        self.up = h.Upstream()
        self.api(*args, upstream=self.up)
        for n, sender in enumerate(("first@example.test", "second@example.test")):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if keylogs:
                ctx.keylog_filename = keylogs[n]
            c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
            c.starttls(context=ctx)
            c.login(h.USER, h.PASSWORD)
            c.sendmail(sender, ["bob@example.test"],
                       f"Subject: pcap {n}\r\n\r\nbody of message {n}\r\n".encode())
            c.quit()
        for sid in (1, 2):
            self.scope.wait_for(rf"\[#{sid}\] smtpscope: disconnect")
        sessions = self.get("/api/v1/sessions?limit=0")["sessions"]
        self.assertEqual(sorted(s["ID"] for s in sessions), [1, 2])
        return 1, 2

    def test_pcap_of_one_session(self):
        d = tempfile.mkdtemp(prefix="smtpscope-pcap-")
        a, b = self.two_sessions("--pcap", os.path.join(d, "all.pcap"))
        self.assertEqual(self.get(f"/api/v1/session/{a}")["Downloads"],
                         {"Pcap": True, "KeyLog": False})
        st, hd, body = call(self.port, f"/api/v1/session/{a}/pcap")
        self.assertEqual(st, 200, body)
        self.assertEqual(hd["Content-Type"], "application/vnd.tcpdump.pcap")
        self.assertEqual(hd["Content-Disposition"],
                         f'attachment; filename="smtpscope-session-{a}.pcap"')
        # a classic little-endian pcap of Ethernet frames
        magic, major, minor, _, _, snap, link = struct.unpack("<IHHiIII", body[:24])
        self.assertEqual((magic, major, minor, link), (0xa1b2c3d4, 2, 4, 1))
        frames = []
        o = 24
        while o < len(body):
            _, _, incl, orig = struct.unpack("<IIII", body[o:o + 16])
            self.assertEqual(incl, orig)
            frames.append(body[o + 16:o + 16 + incl])
            o += 16 + incl
        self.assertEqual(o, len(body))
        self.assertGreater(len(frames), 20)
        # this session's plaintext (both legs: its MAIL FROM twice, its
        # content), never the other's
        self.assertEqual(len(re.findall(rb"(?i)mail from:<first@example\.test>", body)), 2)
        self.assertIn(b"body of message 0", body)
        self.assertNotIn(b"second@example.test", body)
        self.assertNotIn(b"body of message 1", body)
        st, _, other = call(self.port, f"/api/v1/session/{b}/pcap")
        self.assertEqual(st, 200)
        self.assertIn(b"second@example.test", other)
        self.assertNotIn(b"first@example.test", other)
        # the session's own transcript shows no content of the pcap's
        text = call(self.port, f"/api/v1/session/{a}/transcript?format=json")[2].decode()
        self.assertNotIn('"kind":"raw"', text)
        self.assertEqual(call(self.port, "/api/v1/session/99/pcap")[0], 404)
        self.assertEqual(call(self.port, f"/api/v1/session/{a}/keylog")[0], 404)

    def test_keylog_of_one_session(self):
        d = tempfile.mkdtemp(prefix="smtpscope-keylog-")
        path = os.path.join(d, "all.keylog")
        mine = [os.path.join(d, f"client{n}.keylog") for n in (1, 2)]
        a, b = self.two_sessions("--keylog", path, keylogs=mine)
        self.assertEqual(self.get(f"/api/v1/session/{a}")["Downloads"],
                         {"Pcap": False, "KeyLog": True})
        got = {}
        for sid in (a, b):
            st, hd, body = call(self.port, f"/api/v1/session/{sid}/keylog")
            self.assertEqual(st, 200, body)
            self.assertEqual(hd["Content-Type"], "text/plain; charset=utf-8")
            self.assertEqual(hd["Content-Disposition"],
                             f'attachment; filename="smtpscope-session-{sid}.keylog"')
            self.assertEqual(hd["Cache-Control"], "no-store")
            got[sid] = keylog_lines(body.decode())
        with open(path) as f:
            everything = keylog_lines(f.read())
        for n, sid in enumerate((a, b)):
            # two TLS sessions each: the client leg's and the upstream leg's
            self.assertEqual(len(got[sid]), 2, got[sid])
            # exactly the --keylog file's lines of those client randoms
            for cr, lines in got[sid].items():
                self.assertEqual(lines, everything[cr])
            # the client leg's is the one this client made
            with open(mine[n]) as f:
                client = set(keylog_lines(f.read()))
            self.assertEqual(len(client), 1)
            self.assertTrue(client <= set(got[sid]))
            self.assertFalse(client & set(got[b if sid == a else a]))
        # and together they are the whole file
        self.assertEqual(set(got[a]) | set(got[b]), set(everything))
        self.assertEqual(call(self.port, f"/api/v1/session/{a}/pcap")[0], 404)

    def test_without_pcap_and_keylog_they_are_not_there(self):
        a, _ = self.two_sessions()
        self.assertEqual(self.get(f"/api/v1/session/{a}")["Downloads"],
                         {"Pcap": False, "KeyLog": False})
        for what, option in (("pcap", "--pcap"), ("keylog", "--keylog")):
            st, hd, body = call(self.port, f"/api/v1/session/{a}/{what}")
            self.assertEqual(st, 404, body)
            self.assertIn(option, json.loads(body)["Error"])


class ApiThreadTest(ApiCase):
    """The API runs on a thread of its own: a request that takes long (the
    first look at a message of 3,000 parts parses it, with each part's
    checksums) does not hold up a session, which gets its replies while
    the request is still being answered."""

    def test_a_slow_request_does_not_hold_a_session_up(self):
        self.api()
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@example.test", "b@example.test", "many parts"
        m.set_content("hello")
        for i in range(3000):
            m.add_attachment(os.urandom(2048), maintype="application", subtype="octet-stream",
                             filename=f"part{i}.bin")
        self.send(m)
        mid = self.get("/api/v1/messages")["messages"][0]["ID"]
        probe = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=60)
        probe.ehlo("probe.example.test")
        answered = {}

        def slow():
            st, _, body = call(self.port, f"/api/v1/message/{mid}", timeout=120)
            answered["at"] = time.monotonic()
            answered["parts"] = len(json.loads(body)["Attachments"]) if st == 200 else st

        t = threading.Thread(target=slow)
        started = time.monotonic()
        t.start()
        time.sleep(0.02)  # the request is in: the parse under way
        waits = []
        for _ in range(10):
            t0 = time.monotonic()
            self.assertEqual(probe.noop()[0], 250)
            waits.append(time.monotonic() - t0)
        probed = time.monotonic()
        t.join(120)
        probe.quit()
        self.assertEqual(answered.get("parts"), 3000)
        took = answered["at"] - started
        # the session's replies came while the request was still being answered
        self.assertLess(probed, answered["at"], (waits, took))
        self.assertLess(max(waits), took / 2, (waits, took))


class SearchTest(ApiCase):
    def test_search_syntax(self):
        self.api()
        for n in range(3):
            self.send(rich_message(n))
        other = EmailMessage()
        other["From"], other["To"], other["Subject"] = "zed@other.test", "b@x.test", "Invoice"
        other.set_content("no attachment here\n")
        self.send(other)

        def subjects(q):
            r = self.get("/api/v1/search?query=" + urllib.request.quote(q))
            self.assertEqual(r["messages_count"], len(r["messages"]))
            return sorted(m["Subject"] for m in r["messages"])

        self.assertEqual(subjects('subject:"Grüße 1"'), ["Grüße 1 aus Köln"])
        self.assertEqual(subjects("from:zed@other.test"), ["Invoice"])
        self.assertEqual(subjects("-from:zed@other.test has:attachment").__len__(), 3)
        self.assertEqual(subjects("!has:attachment"), ["Invoice"])
        self.assertEqual(subjects("message-id:msg-2@example.test"), ["Grüße 2 aus Köln"])
        self.assertEqual(subjects("report.png to:carol"), ["Grüße 0 aus Köln",
                                                           "Grüße 1 aus Köln",
                                                           "Grüße 2 aus Köln"])
        self.assertEqual(subjects('"schöne grüße" subject:köln').__len__(), 3)  # decoded body
        self.assertEqual(subjects("larger:1k smaller:100k").__len__(), 3)
        self.assertEqual(subjects("is:unread").__len__(), 4)
        self.assertEqual(subjects("nothing-matches-this"), [])
        st, _, _ = call(self.port, "/api/v1/search?query=" + urllib.request.quote("subject:1"),
                        "DELETE")
        self.assertEqual(st, 200)
        self.assertEqual(self.get("/api/v1/messages")["total"], 3)

    def test_wait_answers_when_enough_match(self):
        self.api()
        got = {}

        def waiter():
            t0 = time.monotonic()
            got["r"] = call(self.port, "/api/v1/wait?count=2&timeout=20&query=" +
                            urllib.request.quote("subject:Grüße"), timeout=30)
            got["t"] = time.monotonic() - t0

        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.5)
        self.send(rich_message(1))
        time.sleep(0.3)
        self.assertTrue(th.is_alive())  # one is not enough
        self.send(rich_message(2))
        th.join(20)
        st, _, body = got["r"]
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["messages_count"], 2)
        self.assertLess(got["t"], 10)

    def test_wait_times_out_with_408_and_answers_at_once_when_already_there(self):
        self.api()
        t0 = time.monotonic()
        st, _, body = call(self.port, "/api/v1/wait?timeout=1&query=subject:nope")
        self.assertEqual(st, 408)
        self.assertGreater(time.monotonic() - t0, 0.9)
        self.assertEqual(json.loads(body)["messages_count"], 0)
        self.send(rich_message(3))
        t0 = time.monotonic()
        st, _, body = call(self.port, "/api/v1/wait?query=subject:3")
        self.assertEqual(st, 200)
        self.assertLess(time.monotonic() - t0, 2)

    def test_a_waiting_client_that_leaves_is_forgotten(self):
        self.api()
        import socket
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /api/v1/wait?timeout=30 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.3)
        s.close()
        time.sleep(0.3)
        self.send(rich_message(4))  # wakes the waits: the gone one must not be answered
        self.assertEqual(self.get("/api/v1/messages")["total"], 1)


class MailpitClientTest(ApiCase):
    """A client written for Mailpit, used unchanged: the npm package
    mailpit-api 2.1.0 (tests/vendor/mailpit-api, run by Debian's Node.js)
    lists, reads, searches, waits for, marks and deletes what smtpscope
    kept."""

    def test_third_party_mailpit_client(self):
        import base64
        import shutil
        node = shutil.which("node") or shutil.which("nodejs")
        self.assertIsNotNone(node, "Node.js is missing: bash .ci/deps test installs nodejs")
        self.api()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mailpit_client.cjs")
        client = subprocess.Popen([node, script, f"http://127.0.0.1:{self.port}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)  # it is waiting for two messages (waitForMessages) before they come
        self.send(rich_message(1))
        sent = self.send(rich_message(2))
        try:
            out, err = client.communicate(timeout=60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        self.assertEqual(client.returncode, 0, err)
        r = json.loads(out)
        errors = {k: v["ERROR"] for k, v in r.items() if isinstance(v, dict) and "ERROR" in v}
        self.assertEqual(list(errors), ["missing"], errors)
        self.assertIn("404", errors["missing"])  # a message it does not have
        self.assertIn("Version", r["info"])
        self.assertEqual(r["waited"]["messages_count"], 2)
        self.assertEqual(r["list"]["total"], 2)
        s = r["summary"]
        self.assertEqual(s["Subject"], "Grüße 2 aus Köln")  # newest first
        self.assertEqual(s["From"], {"Name": "Jürgen Müller", "Address": "juergen@example.test"})
        self.assertEqual(s["MessageID"], "msg-2@example.test")
        self.assertIn("schöne Grüße", s["Text"])
        self.assertIn("<b>Bob</b>", s["HTML"])
        self.assertEqual([(a["FileName"], a["ContentType"], a["Size"]) for a in s["Attachments"]],
                         [("report.png", "image/png", len(PNG))])
        self.assertEqual(r["latest"]["ID"], s["ID"])
        self.assertTrue(any("=?utf-8?" in v for v in r["headers"]["Subject"]), r["headers"])
        self.assertEqual(r["source"], sent.decode())
        self.assertEqual(r["attachment"]["type"], "image/png")
        self.assertEqual(base64.b64decode(r["attachment"]["base64"]), PNG)
        self.assertEqual(r["search"]["messages_count"], 2)
        self.assertIn("<b>Bob</b>", r["html"])
        self.assertIn("schöne Grüße", r["text"])
        self.assertEqual(r["unread"].strip(), "ok")
        self.assertEqual(r["list_unread"]["unread"], 2)  # read by its summary, marked unread again
        self.assertEqual(r["wait_one"]["Subject"], "Grüße 2 aus Köln")
        self.assertEqual(r["delete_search"].strip(), "ok")
        self.assertEqual([m["Subject"] for m in r["after_search_delete"]["messages"]],
                         ["Grüße 1 aus Köln"])
        self.assertEqual(r["delete_all"].strip(), "ok")
        self.assertEqual(r["after_delete"]["total"], 0)


if __name__ == "__main__":
    unittest.main()
