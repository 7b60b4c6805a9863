"""Issue 14: the sink directory loaded into the mailbox at start, and
`smtpscope check` on the mailbox's MIME model (decoded subject, text and
HTML parts, attachment names, Mailpit's search syntax) from a sink
directory, a JSON transcript, or a running smtpscope's API (--url).
Messages are real MIME made by Python's email package and sent with
smtplib through smtpscope in sink mode."""
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from email.message import EmailMessage

import harness as h

URL_RX = r"HTTP API on http://127\.0\.0\.1:(\d+)"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8


def check(*args, env=None):
    penv = dict(os.environ)
    penv.pop("SMTPSCOPE_CHECK_AUTH", None)
    penv.update(env or {})
    r = subprocess.run([h.BIN, "check", *args], capture_output=True, text=True, timeout=60,
                       env=penv)
    for marker in ("Sanitizer", "runtime error"):  # a sanitizer build says so here
        if marker in r.stderr:
            raise AssertionError(f"check {args}:\n{r.stderr}")
    return r


def wire(msg):
    """The message as bytes with CRLF, once (a multipart's boundary is made
    when it is written): smtplib sends them as they are."""
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def greetings():
    """A non-ASCII subject (RFC 2047 base64, as Python writes it), a UTF-8
    body in base64, an HTML alternative in quoted-printable whose words
    are split by tags and an entity, and a PDF attachment."""
    m = EmailMessage()
    m["From"] = "Jürgen <juergen@example.test>"
    m["To"] = "bob@example.test"
    m["Subject"] = "Grüße"
    m["Message-ID"] = "<gruesse@example.test>"
    m.set_content("Der Zahlungseingang über 42 € wurde verbucht.\n", charset="utf-8",
                  cte="base64")
    m.add_alternative("<html><body><p>Bitte <b>best&auml;tigen</b> Sie den "
                      "<i>Eingang</i>.</p></body></html>\n", subtype="html", charset="utf-8",
                      cte="quoted-printable")
    m.add_attachment(PDF, maintype="application", subtype="pdf", filename="report-2024.pdf")
    return m


def notice():
    """Text only, UTF-8 in quoted-printable, no attachment."""
    m = EmailMessage()
    m["From"] = "ops@example.test"
    m["To"] = "carol@example.test"
    m["Subject"] = "Kündigung"
    m.set_content("Die Kündigungsfrist endet am Freitag.\n", charset="utf-8",
                  cte="quoted-printable")
    return m


class SinkApiCase(h.ScopeCase):
    """smtpscope in sink mode with its HTTP API, on a directory of the test's."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="smtpscope-check-")
        self.jpath = os.path.join(self.dir, "t.jsonl")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *args):
        self.scope = h.Scope("--sink", self.dir, "--http", "127.0.0.1:0", "--json", self.jpath,
                             "--body-lines", "1000", *args, ca=False)
        self.port = int(re.search(URL_RX, self.scope.wait_for(URL_RX)).group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        return self.scope

    def stop(self):
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        return scope

    def send(self, msg, tls=False, login=None, rcpts=None):
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        if tls:
            c.starttls()
        if login:
            c.login(*login)
        data = wire(msg)
        c.sendmail(msg["From"].addresses[0].addr_spec,
                   rcpts or [a.addr_spec for a in msg["To"].addresses], data)
        c.quit()
        return data

    def index_lines(self):
        with open(os.path.join(self.dir, "index.jsonl")) as f:
            return f.read().splitlines(keepends=True)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=20) as r:
            return r.status, r.read()

    def messages(self):
        st, body = self.get("/api/v1/messages?limit=0")
        self.assertEqual(st, 200)
        return json.loads(body)

    def raw(self, mid):
        st, body = self.get(f"/api/v1/message/{mid}/raw")
        self.assertEqual(st, 200)
        return body


class ReloadTest(SinkApiCase):
    """In sink mode the sink directory is the persistent store."""

    def test_restart_on_the_same_sink_lists_the_earlier_messages(self):
        self.start()
        sent = [self.send(greetings()), self.send(notice(), tls=True, login=("u1", "p1"))]
        before = self.messages()["messages"]
        self.assertEqual(len(before), 2)
        self.stop()

        sc = self.start()
        sc.expect("mailbox: 2 message(s) loaded from the sink directory")
        lst = self.messages()
        self.assertEqual(lst["total"], 2)
        after = lst["messages"]  # newest first, as before the restart
        self.assertEqual([m["Subject"] for m in after], ["Kündigung", "Grüße"])
        for m, data in zip(after, reversed(sent)):
            self.assertEqual(self.raw(m["ID"]), data)  # byte for byte
        old = {m["Subject"]: m for m in before}
        for m in after:
            smtp, was = m["SMTP"], old[m["Subject"]]["SMTP"]
            self.assertEqual(smtp["Envelope"]["From"], was["Envelope"]["From"])
            self.assertEqual(smtp["Envelope"]["To"], was["Envelope"]["To"])
            self.assertEqual(smtp["Session"], was["Session"])
            self.assertEqual(smtp["Helo"], was["Helo"])
            self.assertEqual(smtp["Verdict"]["Code"], 250)
            self.assertTrue(smtp["Verdict"]["Accepted"])
            self.assertEqual(smtp["Verdict"]["QueueID"], was["Verdict"]["QueueID"])
            self.assertEqual(m["Username"], old[m["Subject"]]["Username"])
            self.assertEqual(smtp["TLS"]["Client"] is None, was["TLS"]["Client"] is None)
            self.assertAlmostEqual(_epoch(m["Created"]), _epoch(old[m["Subject"]]["Created"]),
                                   delta=2)
        self.assertEqual(old["Kündigung"]["Username"], "u1")
        # a new message comes after them
        self.send(notice())
        self.assertEqual(self.messages()["total"], 3)
        self.assertEqual(len(self.index_lines()), 3)

    def test_keep_bounds_what_is_loaded(self):
        self.start()
        for i in range(5):
            m = notice()
            del m["Subject"]
            m["Subject"] = f"number {i}"
            self.send(m)
        self.stop()
        sc = self.start("--keep", "3")
        sc.expect("mailbox: 3 message(s) loaded from the sink directory")
        sc.expect("(2 older left out for --keep/--keep-bytes)")
        self.assertEqual([m["Subject"] for m in self.messages()["messages"]],
                         ["number 4", "number 3", "number 2"])
        self.stop()
        size = os.path.getsize(os.path.join(self.dir, sorted(
            f for f in os.listdir(self.dir) if f.endswith(".eml"))[0]))
        self.start("--keep-bytes", str(2 * size + size // 2))
        self.assertEqual([m["Subject"] for m in self.messages()["messages"]],
                         ["number 4", "number 3"])

    def test_bad_index_lines_and_missing_files_are_skipped_with_one_warning(self):
        self.start()
        self.send(greetings())
        self.send(notice())
        self.stop()
        index = os.path.join(self.dir, "index.jsonl")
        lines = self.index_lines()
        gone = json.loads(lines[1])
        os.unlink(os.path.join(self.dir, gone["file"]))
        with open(index, "w") as f:
            f.write(lines[0] + "this is not JSON\n" + lines[1]
                    + json.dumps({"session": 9, "from": "x@x"}) + "\n" + '{"file": "cut')
        sc = self.start()
        text = sc.expect("mailbox: 1 message(s) loaded from the sink directory")
        self.assertIn("index.jsonl: line 2 is not a JSON object", sc.text())
        self.assertIn(f"line 3 names message file '{gone['file']}', which cannot be read",
                      sc.text())
        self.assertIn("line 4 names message file '', which is missing", sc.text())
        self.assertIn("line 5 has no end of line", sc.text())
        for what in ("line 2 ", "line 3 ", "line 4 ", "line 5 "):
            self.assertEqual(len([l for l in sc.text().splitlines()
                                  if "warning: mailbox: " in l and what in l]), 1, what)
        self.assertTrue(text)
        lst = self.messages()
        self.assertEqual([m["Subject"] for m in lst["messages"]], ["Grüße"])
        # and it goes on: a new message is stored and kept
        self.send(notice())
        self.assertEqual(self.messages()["total"], 2)


def _epoch(created):
    """Mailpit's "Created" (RFC 3339, UTC) as seconds."""
    import datetime
    return datetime.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()


class CheckMimeTest(SinkApiCase):
    """Each filter on the MIME model, the same from the sink directory, the
    JSON transcript (whole messages: --body-lines 1000) and the API."""

    def fill(self):
        self.start()
        self.send(greetings())
        self.send(notice(), tls=True, login=("u1", "p1"))

    def sources(self):
        return [["--sink", self.dir], ["--json", self.jpath], ["--url", self.url]]

    def judge(self, args, ok):
        for src in self.sources():
            r = check(*src, *args)
            self.assertEqual(r.returncode, 0 if ok else 1,
                             f"{src[0]} {args}:\n{r.stdout}{r.stderr}")
            self.assertIn("OK" if ok else "FAILED", r.stdout)

    def test_subject_is_the_decoded_one(self):
        self.fill()
        for args, ok in [
            (["--subject", "Grüße", "--count", "1"], True),
            (["--subject", "^Grüße$", "--count", "1"], True),
            (["--subject", "^K.ndigung$", "--count", "1"], True),  # one character, two bytes
            (["--subject", "R3LDvMOfZQ"], False),  # the encoded word is not the subject
            (["--subject", "utf-8"], False),
            (["--subject", "grüße"], False),  # a regex is case-sensitive
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)
        r = check("--sink", self.dir, "--subject", "^nothing")
        self.assertIn("from <juergen@example.test> to <bob@example.test> Subject: Grüße",
                      r.stdout)

    def test_body_contains_the_decoded_text_and_the_html_as_text(self):
        self.fill()
        for args, ok in [
            (["--body-contains", "Zahlungseingang über 42 €", "--count", "1"], True),  # base64
            (["--body-contains", "Kündigungsfrist endet", "--count", "1"], True),  # QP
            # in the HTML only, with tags inside and an entity
            (["--body-contains", "Bitte bestätigen Sie den Eingang.", "--count", "1"], True),
            (["--body-contains", "bitte bestätigen"], False),  # case-sensitive
            (["--body-contains", "<b>best"], False),  # tags are not text
            (["--body-contains", "RGVyIFphaGx1bmdz"], False),  # nor is the base64
            (["--body-contains", "K=C3=BCndigungsfrist"], False),  # nor the QP
            (["--body-contains", "PDF-1.4"], False),  # nor an attachment
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)

    def test_attachment_is_a_glob_over_file_names(self):
        self.fill()
        for args, ok in [
            (["--attachment", "report-*.pdf", "--count", "1"], True),
            (["--attachment", "report-2024.pdf", "--to", "bob@example.test"], True),
            (["--attachment", "*.pdf", "--count", "1"], True),
            (["--attachment", "invoice-*.pdf"], False),
            (["--attachment", "REPORT-*.pdf"], False),  # case-sensitive
            (["--attachment", "report-*.pdf", "--to", "carol@example.test"], False),
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)

    def test_query_is_mailpits_search_syntax(self):
        self.fill()
        for args, ok in [
            (["--query", "subject:Grüße has:attachment", "--count", "1"], True),
            (["--query", "subject:grüße", "--count", "1"], True),  # ASCII-folded as Mailpit
            (["--query", "subject:Grüße -has:attachment", "--count", "0"], True),
            (["--query", "Kündigungsfrist", "--count", "1"], True),  # free text: the body
            (["--query", "from:ops@example.test to:carol", "--count", "1"], True),
            (["--query", "is:unread", "--count", "2"], True),
            (["--query", "subject:Grüße has:attachment", "--to", "carol@example.test"], False),
            (["--query", "larger:1m"], False),
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)

    def test_an_envelope_recipient_no_header_names_is_bcc(self):
        # as Mailpit: a blind copy shows as Bcc, in check as in the API
        self.start()
        self.send(greetings(), rcpts=["Bob@Example.test", "hidden@example.test"])
        for args, ok in [
            (["--query", "bcc:hidden@example.test", "--count", "1"], True),
            (["--query", "bcc:bob"], False),  # To names it (case aside)
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)
        s = self.messages()["messages"][0]
        self.assertEqual(s["Bcc"], [{"Name": "", "Address": "hidden@example.test"}])
        st, body = self.get(f"/api/v1/message/{s['ID']}")
        self.assertEqual((st, json.loads(body)["Bcc"]), (200, s["Bcc"]))

    def test_session_expectations_the_same_over_the_api(self):
        self.fill()
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.docmd("MAIL FROM:<lf@example.test>")
        c.docmd("RCPT TO:<bob@example.test>")
        c.docmd("DATA")
        c.send(b"Subject: odd\r\n\r\nbare\nlf\r\n.\r\n")
        c.getreply()
        c.quit()
        self.scope.wait_for(r"\[#3\] smtpscope: disconnect")
        for args, ok in [
            (["--count", "3"], True), (["--count", "2"], False),
            (["--from", "ops@example.test", "--tls", "--count", "1"], True),
            (["--tls"], False),
            (["--from", "ops@example.test", "--no-plaintext-auth"], True),
            (["--from", "ops@example.test", "--no-warnings"], True),
            (["--no-warnings"], False),
            (["--to", "carol@example.test", "--count", "1"], True),
            (["--header", "Message-ID: ^<gruesse@example", "--count", "1"], True),
        ]:
            with self.subTest(args=args):
                self.judge(args, ok)
        r = check("--url", self.url, "--no-warnings")
        self.assertIn("--no-warnings: session 3 had 1 warning(s), the first: message line 3 "
                      "holds a bare LF", r.stdout)

    def test_url_marks_nothing_read_and_waits(self):
        self.fill()
        for args in (["--subject", "Grüße"], ["--body-contains", "Bitte"], ["--count", "2"]):
            self.assertEqual(check("--url", self.url, *args).returncode, 0)
        self.assertEqual(self.messages()["unread"], 2)

        late = notice()
        del late["Subject"]
        late["Subject"] = "Spät"

        def later():
            time.sleep(1.0)
            self.send(late)

        t = threading.Thread(target=later)
        t.start()
        t0 = time.time()
        r = check("--url", self.url + "/", "--wait", "20", "--subject", "^Spät$", "--count", "1")
        t.join()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreater(time.time() - t0, 0.9)
        t0 = time.time()
        r = check("--url", self.url, "--wait", "0.6", "--subject", "^never$", "--count", "1")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertGreater(time.time() - t0, 0.55)
        self.assertIn("after waiting", r.stdout)

    def test_url_errors_exit_2_with_the_url(self):
        port = h.free_port()
        r = check("--url", f"http://127.0.0.1:{port}", "--count", "1")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"smtpscope check: --url http://127.0.0.1:{port}: cannot "
                                   f"connect to 127.0.0.1:{port}: Connection refused (is "
                                   "smtpscope running there with its HTTP API?)\n")
        r = check("--url", f"http://me:s3cret@127.0.0.1:{port}", "--count", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--url http://me:***@127.0.0.1:{port}: cannot connect", r.stderr)
        self.assertNotIn("s3cret", r.stderr)
        t0 = time.time()  # --wait waits for it to come up, then says the same
        r = check("--url", f"http://127.0.0.1:{port}", "--count", "1", "--wait", "0.5")
        self.assertEqual(r.returncode, 2)
        self.assertGreater(time.time() - t0, 0.45)
        for url, words in [("https://127.0.0.1:8025", "https is not supported"),
                           ("ftp://127.0.0.1", "expected http://HOST:PORT"),
                           ("http://127.0.0.1:99999", "the port must be a number"),
                           ("http://127.0.0.1:8025/?x=1", "may not have a query")]:
            r = check("--url", url, "--count", "1")
            self.assertEqual(r.returncode, 2, url)
            self.assertIn(words, r.stderr)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        r = check("--url", "http://127.0.0.1:8025", "--reply", "250")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--reply and --no-reply need --json (the API keeps messages", r.stderr)
        r = check("--url", "http://127.0.0.1:8025", "--sink", self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("exactly one of --json FILE, --sink DIR or --url URL", r.stderr)
        # an HTTP server that is not smtpscope's API
        self.start()
        r = check("--url", self.url + "/nothing-here", "--count", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("GET /api/v1/messages?limit=0 answered 404", r.stderr)

    def test_url_credentials(self):
        users = os.path.join(self.dir, "users")
        pw = subprocess.run(["openssl", "passwd", "-6", "pa:ss@word"], capture_output=True,
                            text=True, check=True).stdout.strip()
        with open(users, "w") as f:
            f.write(f"ann:{pw}\n")
        self.start("--http-auth", users)
        self.send(greetings())
        r = check("--url", self.url, "--count", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("the API wants credentials (401)", r.stderr)
        r = check("--url", f"http://ann:wrong@127.0.0.1:{self.port}", "--count", "1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("(401, and refused the ones given)", r.stderr)
        r = check("--url", f"http://ann:pa%3Ass%40word@127.0.0.1:{self.port}",
                  "--subject", "Grüße", "--count", "1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = check("--url", self.url, "--attachment", "report-*.pdf", "--count", "1",
                  env={"SMTPSCOPE_CHECK_AUTH": "ann:pa:ss@word"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_json_says_when_the_transcript_shows_part_of_a_message(self):
        self.start("--body-lines", "3")
        self.send(greetings())
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        r = check("--json", self.jpath, "--attachment", "report-*.pdf")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("note: 1 message(s) are only partly in the transcript", r.stdout)
        # the same message whole, from the sink: found
        self.assertEqual(check("--sink", self.dir, "--attachment", "report-*.pdf").returncode, 0)
        # the headers were shown: the subject is still judged
        self.assertEqual(check("--json", self.jpath, "--subject", "^Grüße$").returncode, 0)
