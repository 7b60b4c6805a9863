"""The sessions and the live events over the HTTP API (issue 14, beyond
Mailpit): /api/v1/sessions, /api/v1/session/{ID} and its transcript (the
console's lines exactly, or the --json lines), secrets redacted there and in
the events, the bounds (sessions kept, lines kept per session), and
/api/events as Server-Sent Events read with urllib: session, line, message
and delete events in order, to two subscribers alike; the subscriber bound
(503), a subscriber that reads nothing ended while the others go on, the
keep-alive comment, and the streams' clean end at SIGTERM. In sink mode,
with MIME made by Python's email package."""
import base64
import json
import queue
import re
import smtplib
import socket
import tempfile
import threading
import time
import unittest
import urllib.request
from email.message import EmailMessage

import harness as h
from test_api import URL_RX, call

SECRET_B64 = base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode()).decode()


def message(n):
    m = EmailMessage()
    m["From"] = f"Sender {n} <sender{n}@example.test>"
    m["To"] = "rcpt@example.test"
    m["Subject"] = f"Live {n}"
    m.set_content(f"body {n}\n")
    return m


class Stream:
    """A subscriber of /api/events through urllib, read line by line by a
    thread: events as (name, data parsed as JSON), comments as
    ("comment", text)."""

    def __init__(self, port):
        self.resp = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=60)
        self.events = []
        self.cond = threading.Condition()
        self.ended = False
        self.error = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        name, data = None, []
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith(":"):
                    self._add(("comment", line[1:].strip()))
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "":
                    if data:
                        self._add((name or "message", json.loads("\n".join(data))))
                    name, data = None, []
        except Exception as e:  # noqa: BLE001 - reported by the test that waits
            self.error = e
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def _add(self, ev):
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def wait(self, pred, timeout=20):
        """The index of the first event that pred accepts."""
        end = time.time() + timeout
        with self.cond:
            while True:
                for i, ev in enumerate(self.events):
                    if pred(ev):
                        return i
                left = end - time.time()
                if left <= 0 or self.ended:
                    raise AssertionError(f"no such event ({self.error!r}) in {self.events!r}")
                self.cond.wait(min(left, 0.2))

    def named(self, name):
        with self.cond:
            return [d for n, d in self.events if n == name]


def raw_sse(port, rcvbuf=None):
    """A subscriber on a plain socket: (socket, the response head)."""
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.settimeout(20)
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head.decode("latin-1")


def dechunk(data):
    """The body of a chunked response (as far as it came), and whether it
    ended."""
    out, i = [], 0
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return b"".join(out), False
        size = int(data[i:j], 16)
        if size == 0:
            return b"".join(out), True
        out.append(data[j + 2:j + 2 + size])
        i = j + 2 + size + 2


def sse_events(body):
    """(name, JSON data) of each event of a text/event-stream body."""
    out = []
    for block in body.decode("utf-8").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


class RawReader:
    """A subscriber on a plain socket that reads as fast as it can (a
    thread), until `until` comes or the stream ends."""

    def __init__(self, port, until):
        self.sock, self.head = raw_sse(port)
        self.until = until
        self.got = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                break
            if not chunk:
                break
            self.got += chunk
            if self.until in self.got[-len(chunk) - len(self.until):]:
                break

    def events(self, timeout=60):
        self.thread.join(timeout)
        self.sock.close()
        return sse_events(dechunk(bytes(self.got))[0])


class EventsCase(h.ScopeCase):
    def start(self, *args):
        d = tempfile.mkdtemp(prefix="smtpscope-events-")
        self.scope = h.Scope("--sink", d, "--http", "127.0.0.1:0", *args, ca=False)
        line = self.scope.wait_for(URL_RX)
        self.port = int(re.search(URL_RX, line).group(1))

    def get(self, path):
        st, _, body = call(self.port, path)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def send(self, msg, login=True, starttls=False):
        """One session: (EHLO, STARTTLS), AUTH PLAIN, the message, QUIT."""
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        if starttls:
            c.starttls()
        if login:
            c.login(h.USER, h.PASSWORD)
        c.send_message(msg)
        c.quit()

    def noops(self, count, width=400, batch=100):
        """One session of many long NOOPs (many transcript lines)."""
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=30)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO noop.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        line = b"NOOP " + b"x" * width + b"\r\n"
        for done in range(0, count, batch):
            n = min(batch, count - done)
            s.sendall(line * n)
            for _ in range(n):
                self.assertTrue(f.readline().startswith(b"250"))
        s.sendall(b"QUIT\r\n")
        f.readline()
        f.close()
        s.close()

    def closed_session(self, sid, timeout=10):
        """The session once its close was heard."""
        end = time.time() + timeout
        while True:
            s = self.get(f"/api/v1/session/{sid}")
            if s["State"] == "closed" or time.time() > end:
                return s
            time.sleep(0.05)

    def console_lines(self, sid):
        """The session's lines as the console printed them."""
        self.scope.wait_for(rf"\[#{sid}\] smtpscope: disconnect: ")
        tag = f"[#{sid}] "
        return [l for l in self.scope.text().splitlines() if tag in l]


class SessionsTest(EventsCase):
    def test_list_one_and_transcript(self):
        self.start()
        self.send(message(1), starttls=True)
        lst = self.get("/api/v1/sessions")
        self.assertEqual((lst["total"], lst["count"], lst["start"]), (1, 1, 0))
        sid = lst["sessions"][0]["ID"]
        s = self.closed_session(sid)
        mid = self.get("/api/v1/messages")["messages"][0]["ID"]
        self.assertRegex(s["Client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual((s["State"], s["Reason"]), ("closed", "QUIT"))
        self.assertEqual(s["Messages"], [mid])
        self.assertRegex(s["Started"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
        self.assertRegex(s["Ended"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
        self.assertTrue(s["TLS"]["Client"]["Version"].startswith("TLSv1."))
        self.assertIsNone(s["TLS"]["Upstream"])  # the sink has no upstream
        c = s["Counts"]
        # EHLO STARTTLS EHLO AUTH MAIL RCPT DATA QUIT
        self.assertEqual((c["Commands"], c["Accepted"], c["Refused"]), (8, 1, 0))
        self.assertEqual(c["Replies"], 10)  # the greeting, one per command, DATA's 354
        self.assertEqual(c["LinesNotKept"], 0)
        self.assertGreater(c["Bytes"]["ClientIn"], 100)
        self.assertEqual(self.get(f"/api/v1/session/{sid}"), s)

        # the console's lines, exactly
        st, hd, body = call(self.port, f"/api/v1/session/{sid}/transcript")
        self.assertEqual(st, 200)
        self.assertEqual(hd["Content-Type"], "text/plain; charset=utf-8")
        text = body.decode()
        self.assertEqual(text.splitlines(), self.console_lines(sid))
        self.assertEqual(c["Lines"], len(text.splitlines()))
        self.assertIn("send: 'AUTH PLAIN [redacted; user=alice@example.test]\\r\\n'", text)
        self.assertNotIn(SECRET_B64, text)
        self.assertNotIn(h.PASSWORD, text)

        # and --json's lines
        st, hd, body = call(self.port, f"/api/v1/session/{sid}/transcript?format=json")
        self.assertEqual(st, 200)
        self.assertEqual(hd["Content-Type"], "application/x-ndjson")
        lines = [json.loads(l) for l in body.decode().splitlines()]
        kinds = [l["kind"] for l in lines]
        self.assertEqual(kinds[0], "connect")
        self.assertEqual(kinds[-1], "close")
        self.assertLessEqual({"connect", "tls", "command", "reply", "data", "info", "close"},
                             set(kinds))
        self.assertTrue(all(l["session"] == sid and l["v"] == 1 for l in lines))
        auth = [l for l in lines if l.get("verb") == "AUTH"]
        self.assertEqual(len(auth), 1)
        self.assertTrue(auth[0]["redacted"])
        self.assertNotIn(SECRET_B64, body.decode())
        self.assertNotIn(h.PASSWORD, body.decode())
        self.assertEqual(call(self.port, f"/api/v1/session/{sid}/transcript?format=xml")[0], 400)

    def test_unknown_session_is_404(self):
        self.start()
        self.send(message(1), login=False)
        for path in ("/api/v1/session/999", "/api/v1/session/999/transcript",
                     "/api/v1/session/0", "/api/v1/session/abc", "/api/v1/session/-1",
                     "/api/v1/session/99999999999999999999999"):
            st, hd, body = call(self.port, path)
            self.assertEqual(st, 404, path)
            self.assertIn("Error", json.loads(body))

    def test_list_paging_newest_first(self):
        self.start()
        for n in range(3):
            self.send(message(n), login=False)
        ids = [s["ID"] for s in self.get("/api/v1/sessions")["sessions"]]
        self.assertEqual(len(ids), 3)
        self.assertEqual(ids, sorted(ids, reverse=True))
        page = self.get("/api/v1/sessions?start=1&limit=1")
        self.assertEqual((page["total"], page["count"], page["start"]), (3, 1, 1))
        self.assertEqual([s["ID"] for s in page["sessions"]], ids[1:2])

    def test_keep_bounds_the_sessions(self):
        self.start("--keep", "2")
        for n in range(3):
            self.send(message(n), login=False)
        self.closed_session(3)
        lst = self.get("/api/v1/sessions")
        self.assertEqual(lst["total"], 2)
        self.assertEqual([s["ID"] for s in lst["sessions"]], [3, 2])
        self.assertEqual(call(self.port, "/api/v1/session/1")[0], 404)

    def test_show_secrets_shows_them_in_the_transcript_too(self):
        self.start("--show-secrets")
        self.send(message(1))
        sid = self.get("/api/v1/sessions")["sessions"][0]["ID"]
        self.closed_session(sid)
        body = call(self.port, f"/api/v1/session/{sid}/transcript")[2].decode()
        self.assertIn(SECRET_B64, body)
        self.assertEqual(body.splitlines(), self.console_lines(sid))

    def test_a_long_session_is_cut_and_says_so(self):
        self.start()
        self.noops(800)  # about 330 kB of console lines, past the 256 KiB kept
        sid = self.get("/api/v1/sessions")["sessions"][0]["ID"]
        s = self.closed_session(sid)
        self.assertGreater(s["Counts"]["LinesNotKept"], 0)
        body = call(self.port, f"/api/v1/session/{sid}/transcript")[2].decode()
        lines = body.splitlines()
        console = self.console_lines(sid)
        self.assertEqual(s["Counts"]["Lines"], len(console))
        marker = [i for i, l in enumerate(lines) if "line(s) of this session not kept here" in l]
        self.assertEqual(len(marker), 1)
        i = marker[0]
        self.assertIn(f"[#{sid}] smtpscope: {s['Counts']['LinesNotKept']} line(s)", lines[i])
        self.assertEqual(lines[:i], console[:i])  # the head as it was
        self.assertEqual(lines[i + 1:], console[-1:])  # and the close line
        self.assertIn("disconnect: QUIT", lines[-1])
        self.assertLessEqual(len("".join(l + "\n" for l in lines[:i])), 256 * 1024)
        self.assertEqual(len(lines[:i]) + s["Counts"]["LinesNotKept"] + 1, len(console))
        js = call(self.port, f"/api/v1/session/{sid}/transcript?format=json")[2].decode()
        jl = [json.loads(l) for l in js.splitlines()]
        self.assertEqual(jl[-1]["kind"], "close")
        self.assertTrue(any("not kept here" in l.get("text", "") for l in jl))


class EventsTest(EventsCase):
    def test_events_in_order_to_two_subscribers(self):
        self.start()
        a, b = Stream(self.port), Stream(self.port)
        for st in (a, b):
            st.wait(lambda ev: ev[0] == "comment")  # the stream is open
        self.assertEqual(a.resp.headers["Content-Type"], "text/event-stream")
        self.assertEqual(a.resp.headers["Cache-Control"], "no-cache")
        self.send(message(1))
        mid = self.get("/api/v1/messages")["messages"][0]["ID"]
        # the client has its 221; the session closes just after, on its own
        # time: deleted only once both streams heard it closed
        for st in (a, b):
            st.wait(lambda ev: ev[0] == "session" and ev[1].get("State") == "closed")
        st, _, _ = call(self.port, "/api/v1/messages", "DELETE", {"IDs": [mid]})
        self.assertEqual(st, 200)

        def is_delete(ev):
            return ev[0] == "delete"
        for st in (a, b):
            st.wait(is_delete)
        evs = [ev for ev in a.events if ev[0] != "comment"]
        self.assertEqual(evs, [ev for ev in b.events if ev[0] != "comment"][:len(evs)])
        names = [n for n, _ in evs]
        first_line = names.index("line")
        opened, closed = [i for i, n in enumerate(names) if n == "session"]
        msg, dele = names.index("message"), names.index("delete")
        self.assertTrue(opened < first_line < msg < closed < dele, names)
        self.assertEqual(names[closed - 1], "line")  # the close line, then the session

        sid = evs[opened][1]["ID"]
        self.assertEqual(evs[opened][1]["State"], "open")
        self.assertEqual(evs[closed][1]["State"], "closed")
        self.assertEqual(evs[closed][1]["Reason"], "QUIT")
        self.assertEqual(evs[closed][1]["Messages"], [mid])
        m = evs[msg][1]
        self.assertEqual((m["ID"], m["Subject"]), (mid, "Live 1"))
        self.assertEqual(m["From"], {"Name": "Sender 1", "Address": "sender1@example.test"})
        self.assertEqual(m["SMTP"]["Session"], sid)
        self.assertEqual(evs[dele][1], {"All": False, "IDs": [mid]})

        # the lines are the console's, and name their session, time and kind
        lines = [d for n, d in evs if n == "line"]
        self.assertEqual([l["Line"] for l in lines], self.console_lines(sid))
        self.assertTrue(all(l["Session"] == sid for l in lines))
        self.assertRegex(lines[0]["Time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$")
        for l in lines:  # the line's own time, to the millisecond, no trailing zeros
            self.assertRegex(l["Time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?Z$")
            sec, ms = l["Line"][6:8], l["Line"][9:12]
            want = ":" + sec + ("." + ms.rstrip("0") if ms != "000" else "") + "Z"
            self.assertTrue(l["Time"].endswith(want), (l["Time"], l["Line"][:15]))
        self.assertEqual(lines[0]["Kind"], "connect")
        self.assertEqual(lines[-1]["Kind"], "close")
        auth = [l["Line"] for l in lines if "send: 'AUTH" in l["Line"]]
        self.assertEqual(len(auth), 1)
        self.assertIn("[redacted; user=alice@example.test]", auth[0])
        alltext = json.dumps(evs)
        self.assertNotIn(SECRET_B64, alltext)
        self.assertNotIn(h.PASSWORD, alltext)

        call(self.port, "/api/v1/messages", "DELETE")  # all of them
        a.wait(lambda ev: ev == ("delete", {"All": True, "IDs": []}))

    def test_line_events_carry_any_line_exactly(self):
        """A line's event is written without a JSON library: quotes,
        backslashes, control characters, UTF-8 and bytes that are not
        UTF-8 in a command all come out as the console's line (repr()
        escapes), in valid JSON with one data line per event."""
        self.start()
        st = Stream(self.port)
        st.wait(lambda ev: ev[0] == "comment")
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=30)
        f = s.makefile("rb")
        f.readline()
        for cmd in (b'EHLO "quoted"\\back.test', b"NOOP tab\there \x01\x1f\x7f",
                    "NOOP Grüße ✓".encode(), b"NOOP \xff\xfe not utf-8", b"QUIT"):
            s.sendall(cmd + b"\r\n")
            while f.readline()[3:4] == b"-":
                pass
        f.close()
        s.close()
        st.wait(lambda ev: ev[0] == "session" and ev[1].get("State") == "closed")
        sid = [d for n, d in st.events if n == "session"][0]["ID"]
        lines = [d["Line"] for n, d in st.events if n == "line" and d["Session"] == sid]
        self.assertEqual(lines, self.console_lines(sid))
        self.assertTrue(any('"quoted"' in l for l in lines), lines)
        self.assertTrue(any("\\\\back.test" in l for l in lines), lines)
        self.assertTrue(any("Gr\\xc3\\xbc" in l for l in lines), lines)  # as repr() shows it

    def test_line_events_of_content_are_the_console_lines(self):
        """Events are copied as they are and rendered on the HTTP loop (a
        line's event over 16 KiB would be rendered on the relay's thread):
        a message's content, a 44 KB line of it too, comes out as the
        console's lines."""
        self.start()
        st = Stream(self.port)
        st.wait(lambda ev: ev[0] == "comment")
        self.send(message(6))
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.login(h.USER, h.PASSWORD)
        long_line = "".join(f"word{i} " for i in range(5000))  # 44 KB, one line
        c.sendmail("big@example.test", ["rcpt@example.test"],
                   f"Subject: one long line\r\n\r\n{long_line}\r\n".encode())
        c.quit()

        def both_closed(ev):
            return len([1 for n, d in st.events if n == "session" and d["State"] == "closed"]) == 2
        st.wait(both_closed)
        sids = [d["ID"] for n, d in st.events if n == "session" and d["State"] == "open"]
        self.assertEqual(len(sids), 2)
        for sid in sids:
            lines = [d["Line"] for n, d in st.events if n == "line" and d["Session"] == sid]
            self.assertEqual(lines, self.console_lines(sid))
        content = [d["Line"] for n, d in st.events if n == "line" and d["Session"] == sids[1] and
                   "word0 word1" in d["Line"]]
        self.assertEqual(len(content), 1)
        self.assertGreater(len(content[0]), 1000)  # the long line's first piece

    def test_subscribers_are_bounded(self):
        self.start()
        socks = []
        try:
            for _ in range(64):
                s, head = raw_sse(self.port)
                socks.append(s)
                self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
            s, head = raw_sse(self.port)
            socks.append(s)
            self.assertTrue(head.startswith("HTTP/1.1 503 "), head)
            socks.pop().close()
            socks.pop(0).close()  # one leaves: there is room again
            deadline = time.time() + 10
            while True:
                s, head = raw_sse(self.port)
                socks.append(s)
                if head.startswith("HTTP/1.1 200 ") or time.time() > deadline:
                    break
                socks.pop().close()
                time.sleep(0.1)
            self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
        finally:
            for s in socks:
                s.close()

    def test_a_subscriber_that_reads_nothing_is_ended(self):
        self.start()
        good = RawReader(self.port, b'"State":"closed"')  # reads all, at once
        slow, head = raw_sse(self.port, rcvbuf=4096)
        self.assertTrue(head.startswith("HTTP/1.1 200 "), head)
        # some 10 MB of events: more than the kernel's buffers (4 MB for a
        # socket that sends, by default) and EV_BEHIND_MAX
        self.noops(5000, width=1800)
        sid = self.get("/api/v1/sessions")["sessions"][0]["ID"]
        evs = good.events()
        names = [n for n, _ in evs]
        self.assertEqual(names[-1], "session")
        self.assertEqual(names.count("line"), self.closed_session(sid)["Counts"]["Lines"])
        self.assertNotIn("dropped", names)
        self.assertNotIn("end", names)
        # the slow one: what was queued, then its end, then the end of the body
        got = bytearray()
        slow.settimeout(20)
        while not got.endswith(b"\r\n0\r\n\r\n"):
            chunk = slow.recv(65536)
            if not chunk:
                break
            got += chunk
        slow.close()
        self.assertTrue(got.endswith(b"\r\n0\r\n\r\n"), got[-200:])
        self.assertIn(b"event: end\n", got)
        self.assertIn(b"fell too far behind", got)
        self.assertLess(len(got), 8 * 1024 * 1024)  # not the whole 10 MB
        self.assertNotIn(b"disconnect: QUIT", got)  # ended before the session was

    def test_keepalive_and_the_end_at_sigterm(self):
        self.start()
        st = Stream(self.port)
        st.wait(lambda ev: ev == ("comment", "ping"), timeout=25)  # every 15 s
        self.scope.proc.send_signal(15)
        st.wait(lambda ev: ev[0] == "end")
        st.thread.join(10)
        self.assertTrue(st.ended)
        self.assertIsNone(st.error)  # the chunked body ended whole
        self.assertEqual(st.named("end"), [{"Reason": "smtpscope is stopping"}])
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.scope = None


if __name__ == "__main__":
    unittest.main()
