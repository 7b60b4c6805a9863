"""CI mode: the sink with real clients, `smtpscope check` both ways for each
expectation, fault injection with real clients, exit codes."""
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

MSG = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
       b"Subject: Invoice 42\r\nMessage-ID: <inv42@example.test>\r\nX-Kind: invoice\r\n\r\n"
       b"Dear Bob,\r\n.leading dot line\r\n\xc3\xa9t\xc3\xa9\r\n")


def check(*args):
    return subprocess.run([h.BIN, "check", *args], capture_output=True, text=True, timeout=60)


class SinkCase(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="smtpscope-sink-")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def sink(self, *args):
        self.scope = h.Scope("--sink", self.dir, *args, ca=False)
        return self.scope

    def index(self):
        p = os.path.join(self.dir, "index.jsonl")
        if not os.path.exists(p):
            return []
        return [json.loads(l) for l in open(p)]

    def eml(self, entry):
        return open(os.path.join(self.dir, entry["file"]), "rb").read()


class SinkTest(SinkCase):
    def test_smtplib_byte_exact_and_index(self):
        sc = self.sink()
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        c.login("anyone", "anything")
        c.sendmail("alice@example.test", ["bob@example.test", "carol@example.test"], MSG)
        c.quit()
        idx = self.index()
        self.assertEqual(len(idx), 1)
        e = idx[0]
        self.assertEqual(self.eml(e), MSG)
        self.assertEqual(e["from"], "alice@example.test")
        self.assertEqual(e["to"], ["bob@example.test", "carol@example.test"])
        self.assertEqual(e["subject"], "Invoice 42")
        self.assertEqual(e["message_id"], "<inv42@example.test>")
        self.assertEqual(e["size"], len(MSG))
        self.assertTrue(e["tls"])
        self.assertEqual(e["auth_user"], "anyone")
        self.assertEqual(e["session"], 1)
        sc.expect("sink: stored ")
        self.assertIn("reply: b'250 2.0.0 Ok: queued as 1-1\\r\\n'", sc.text())

    def test_curl_swaks_msmtp(self):
        sc = self.sink()
        body = b"Subject: from curl\r\n\r\ncurl body\r\n"
        r = subprocess.run(["curl", "-sS", f"smtp://127.0.0.1:{sc.port}", "--mail-from", "c@x.test",
                            "--mail-rcpt", "r@x.test", "--upload-file", "-"], input=body,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{sc.port}", "--tls", "--from",
                            "s@x.test", "--to", "r@x.test", "--header", "Subject: from swaks",
                            "--body", "swaks body"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)
        if shutil.which("msmtp"):
            body_m = b"Subject: from msmtp\r\n\r\nmsmtp body\r\n"
            r = subprocess.run(["msmtp", "--host=127.0.0.1", f"--port={sc.port}", "--tls=on",
                                "--tls-starttls=on", "--tls-certcheck=off", "--auth=on",
                                "--user=m", "--passwordeval=echo secret", "--from=m@x.test",
                                "--", "r@x.test"], input=body_m, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
        idx = {e["from"]: e for e in self.index()}
        self.assertEqual(self.eml(idx["c@x.test"]), body)
        self.assertIn(b"Subject: from swaks\r\n", self.eml(idx["s@x.test"]))
        self.assertFalse(idx["c@x.test"]["tls"])
        self.assertTrue(idx["s@x.test"]["tls"])
        if shutil.which("msmtp"):
            # msmtp adds the headers a message lacks (From, Date, Message-ID)
            self.assertTrue(self.eml(idx["m@x.test"]).endswith(
                b"Subject: from msmtp\r\n\r\nmsmtp body\r\n"))
            self.assertEqual(idx["m@x.test"]["auth_user"], "m")

    def test_bdat_into_the_sink(self):
        sc = self.sink()
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\n")
        self.assertIn(b"CHUNKING", h.read_reply(s))
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        part1 = b"Subject: chunks\r\n\r\n.not stuffed\r\n"
        s.sendall(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT 4 LAST\r\nend\n")
        h.read_reply(s)
        self.assertTrue(h.read_reply(s).startswith(b"250 2.0.0 Ok: queued"))
        s.close()
        self.assertEqual(self.eml(self.index()[0]), part1 + b"end\n")

    def test_bdat_zero_last_ends_the_message_in_the_sink(self):
        # RFC 3030 2: "BDAT 0 LAST" ends a message with no more octets; the
        # sink answers it at once (there is no chunk to wait for)
        sc = self.sink()
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        for _ in range(3):
            h.read_reply(s)
        s.sendall(b"BDAT 8\r\nSub: z\r\n")
        self.assertEqual(h.read_reply(s), b"250 2.0.0 8 octets received\r\n")
        s.sendall(b"BDAT 0 LAST\r\n")
        self.assertTrue(h.read_reply(s, timeout=5).startswith(b"250 2.0.0 Ok: queued"))
        s.sendall(b"QUIT\r\n")
        self.assertEqual(h.read_reply(s), b"221 2.0.0 Bye\r\n")
        s.close()
        self.assertEqual(self.eml(self.index()[0]), b"Sub: z\r\n")

    def test_sink_auth_file(self):
        auth = os.path.join(self.dir, "users")
        with open(auth, "w") as f:
            f.write("alice:right\n")
        sc = self.sink("--sink-auth", auth)
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            c.login("alice", "wrong")
        c.login("alice", "right")
        c.sendmail("alice@example.test", ["bob@example.test"], b"Subject: authed\r\n\r\nx\r\n")
        c.quit()
        # an unauthenticated session's message has no auth_user
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.sendmail("anon@example.test", ["bob@example.test"], b"Subject: anon\r\n\r\nx\r\n")
        c.quit()
        idx = self.index()
        self.assertEqual([(e["subject"], e.get("auth_user")) for e in idx],
                         [("authed", "alice"), ("anon", None)])
        self.assertNotIn("right", open(os.path.join(self.dir, "index.jsonl")).read())

    def test_startup_errors(self):
        r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--sink", "/nonexistent"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "smtpscope: --sink /nonexistent: not a writable directory\n")
        r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--fault", "mail=250 ok"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--fault: expected", r.stderr)


class CheckTest(SinkCase):
    def fill(self):
        sc = self.sink("--json", os.path.join(self.dir, "t.jsonl"))
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        c.login("u", "p")
        c.sendmail("alice@example.test", ["bob@example.test"], MSG)
        c.sendmail("alice@example.test", ["carol@example.test"],
                   b"Subject: Receipt\r\n\r\nthanks\r\n")
        c.quit()
        # a plaintext session with AUTH before TLS and a bare LF
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.login("u", "p")
        c.docmd("MAIL FROM:<mallory@example.test>")
        c.docmd("RCPT TO:<bob@example.test>")
        c.docmd("RCPT TO:bad")  # 501 from the sink
        c.docmd("DATA")
        c.send(b"Subject: odd\r\n\r\nbare\nlf\r\n.\r\n")
        c.getreply()
        c.quit()
        sc.wait_for(r"\[#2\] smtpscope: disconnect")
        return sc

    def both(self, args, ok):
        """Each expectation, against the sink and the JSON transcript."""
        for src in (["--sink", self.dir], ["--json", os.path.join(self.dir, "t.jsonl")]):
            if src[0] == "--sink" and any(a in ("--reply", "--no-reply") for a in args):
                continue
            r = check(*src, *args)
            self.assertEqual(r.returncode, 0 if ok else 1, f"{src} {args}: {r.stdout}{r.stderr}")
            if not ok:
                self.assertIn("FAILED", r.stdout)

    def test_each_expectation_both_ways(self):
        self.fill()
        cases = [
            (["--count", "3"], True), (["--count", "2"], False),
            (["--min-count", "3"], True), (["--min-count", "4"], False),
            (["--max-count", "3"], True), (["--max-count", "2"], False),
            (["--from", "alice@example.test", "--count", "2"], True),
            (["--from", "nobody@example.test"], False),
            (["--to", "carol@example.test", "--count", "1"], True),
            (["--to", "dave@example.test"], False),
            (["--subject", "^Invoice [0-9]+$", "--count", "1"], True),
            (["--subject", "^Refund"], False),
            (["--header", "X-Kind: ^invoice$", "--count", "1"], True),
            (["--header", "X-Kind: ^refund$"], False),
            (["--body-contains", "thanks", "--count", "1"], True),
            (["--body-contains", "never written"], False),
            (["--from", "alice@example.test", "--tls"], True),
            (["--tls"], False),
            (["--from", "alice@example.test", "--no-plaintext-auth"], True),
            (["--no-plaintext-auth"], False),
            (["--from", "alice@example.test", "--no-warnings"], True),
            (["--no-warnings"], False),
            (["--reply", "235"], True), (["--reply", "554"], False),
            (["--no-reply", "554"], True), (["--no-reply", "501"], False),
        ]
        for args, ok in cases:
            with self.subTest(args=args):
                self.both(args, ok)
        r = check("--sink", self.dir, "--count", "9")
        self.assertIn("--count 9: 3 message(s) matched (of 3)", r.stdout)
        r = check("--sink", self.dir, "--subject", "nothing")
        self.assertIn("no message matched the filters; seen:", r.stdout)
        self.assertIn("Subject: Invoice 42", r.stdout)

    def test_usage_errors(self):
        for args in ([], ["--json", "a", "--sink", "b"], ["--sink", self.dir, "--count", "x"],
                     ["--sink", self.dir, "--reply", "250"], ["--sink", self.dir, "--bogus"],
                     ["--sink", self.dir, "--subject", "("]):
            r = check(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)

    def test_wait(self):
        sc = self.sink()

        def later():
            time.sleep(1.0)
            c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
            c.sendmail("late@x.test", ["b@x.test"], b"Subject: late\r\n\r\nx\r\n")
            c.quit()

        t = threading.Thread(target=later)
        t.start()
        t0 = time.time()
        r = check("--sink", self.dir, "--from", "late@x.test", "--count", "1", "--wait", "20")
        t.join()
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertGreater(time.time() - t0, 0.9)
        t0 = time.time()
        r = check("--sink", self.dir, "--count", "5", "--wait", "0.5")
        self.assertEqual(r.returncode, 1)
        self.assertGreater(time.time() - t0, 0.45)


class CheckInputTest(SinkCase):
    """check reads every line it is given, and has no fixed caps."""

    def test_hostile_mechanism_keeps_the_json_valid(self):
        jpath = os.path.join(self.dir, "t.jsonl")
        sc = self.sink("--json", jpath)
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\n")
        h.read_reply(s)
        s.sendall(b'AUTH PL"AIN\x1b[2J dXNlcgB1c2VyAHNlY3JldA==\r\n')
        self.assertTrue(h.read_reply(s).startswith(b"504 "))
        s.sendall(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        for _ in range(3):
            h.read_reply(s)
        s.sendall(b"Subject: x\r\n\r\nx\r\n.\r\nQUIT\r\n")
        h.read_reply(s)
        s.close()
        sc.wait_for(r"\[#1\] smtpscope: disconnect")
        sc.expect("which is not a SASL mechanism name")
        with open(jpath, "rb") as f:
            lines = f.read().splitlines()
        for i, l in enumerate(lines):
            json.loads(l)  # every line parses
        auth = [json.loads(l) for l in lines if b'"verb":"AUTH"' in l]
        self.assertEqual(len(auth), 1)
        self.assertNotIn("mechanism", auth[0])
        self.assertNotIn("c2VjcmV0", open(jpath).read())
        # the AUTH event is there, so the plaintext AUTH is seen
        r = check("--json", jpath, "--no-plaintext-auth")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("session 1 sent AUTH before TLS", r.stdout)

    def test_unparsable_line_is_an_input_error(self):
        jpath = os.path.join(self.dir, "t.jsonl")
        good = json.dumps({"v": 1, "session": 1, "kind": "info", "leg": "client", "dir": "in",
                           "own": True, "text": "x"})
        with open(jpath, "w") as f:
            f.write(good + "\n" + '{"v":1,"session":1,"kind":"command","mechanism":"PL"AIN"}\n'
                    + good + "\n")
        r = check("--json", jpath, "--no-plaintext-auth")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("line 2 is not a JSON object", r.stderr)
        # a last line still being written (no newline yet) is not an error
        with open(jpath, "w") as f:
            f.write(good + "\n" + good[:20])
        r = check("--json", jpath, "--count", "0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the same for a sink's index
        with open(os.path.join(self.dir, "a.eml"), "wb") as f:
            f.write(b"Subject: a\r\n\r\nx\r\n")
        entry = json.dumps({"file": "a.eml", "session": 1, "from": "a@x", "to": ["b@x"]})
        with open(os.path.join(self.dir, "index.jsonl"), "w") as f:
            f.write(entry + "\nnot json\n")
        r = check("--sink", self.dir, "--count", "1")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("line 2 is not a JSON object", r.stderr)
        # an entry whose message file is gone, or is no file, is named too
        for name in ("gone.eml", "", "."):
            with open(os.path.join(self.dir, "index.jsonl"), "w") as f:
                f.write(entry + "\n" + json.dumps({"file": name, "session": 2}) + "\n")
            r = check("--sink", self.dir, "--count", "1")
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn(f"line 2 names message file '{name}'", r.stderr)

    def test_thousand_sessions_both_ways(self):
        import socket
        jpath = os.path.join(self.dir, "t.jsonl")
        sc = self.sink("--json", jpath, "--quiet", "--body-lines", "100")
        n = 1000
        long_value = "\r\n\t".join(["v" * 90] * 70) + " END"  # 6 KB unfolded

        def one(i):
            s = socket.create_connection(("127.0.0.1", sc.port), timeout=30)
            h.read_reply(s)
            s.sendall(b"EHLO c\r\n")
            h.read_reply(s)
            s.sendall(f"MAIL FROM:<s{i}@example.test>\r\nRCPT TO:<r{i}@example.test>\r\n"
                      "DATA\r\n".encode())
            for _ in range(3):
                h.read_reply(s)
            extra = f"X-Long: {long_value}\r\n" if i == n else ""
            s.sendall(f"Subject: number {i}\r\n{extra}\r\nbody {i}\r\n.\r\nQUIT\r\n".encode())
            self.assertTrue(h.read_reply(s).startswith(b"250 "))
            h.read_reply(s)
            s.close()

        errors = []

        def worker(k):
            try:
                for i in range(k + 1, n + 1, 8):
                    one(i)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(jpath) as f:
                if f.read().count('"kind":"close"') >= n:
                    break
            time.sleep(0.1)
        for src in (["--json", jpath], ["--sink", self.dir]):
            with self.subTest(src=src[0]):
                r = check(*src, "--count", str(n))
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = check(*src, "--to", f"r{n}@example.test", "--subject", f"^number {n}$",
                          "--count", "1")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = check(*src, "--header", "X-Long: END$", "--count", "1")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                r = check(*src, "--from", f"s{n}@example.test", "--tls")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertRegex(r.stdout, r"--tls: session \d+ did not use TLS")
                self.assertEqual(r.stdout.count("did not use TLS"), 1, r.stdout)

    def test_many_recipients_in_a_json_transcript(self):
        # a transcript as smtpscope writes it, of one message to 1500
        # recipients accepted upstream (no fixed cap on an envelope)
        jpath = os.path.join(self.dir, "t.jsonl")
        ev = {"v": 1, "session": 5, "leg": "client", "dir": "in", "own": False}
        out = [dict(ev, kind="command", verb="MAIL", arg="FROM:<a@example.test>")]
        for i in range(1500):
            out.append(dict(ev, kind="command", verb="RCPT", arg=f"TO:<r{i}@example.test>"))
        for i in range(1500):
            out.append(dict(ev, kind="reply", leg="upstream", code=250 if i != 3 else 550,
                            answers="RCPT", last=True, line="250 ok\r\n"))
        out.append(dict(ev, kind="command", verb="DATA", arg=None))
        out.append(dict(ev, kind="data", line="Subject: many\r\n"))
        out.append(dict(ev, kind="data", line=".\r\n"))
        out.append(dict(ev, kind="info", own=True, text="accepted", message="accepted"))
        with open(jpath, "w") as f:
            for o in out:
                f.write(json.dumps({k: v for k, v in o.items() if v is not None}) + "\n")
        self.assertEqual(check("--json", jpath, "--to", "r1499@example.test", "--count", "1")
                         .returncode, 0)
        self.assertEqual(check("--json", jpath, "--to", "r3@example.test", "--count", "0")
                         .returncode, 0)


class WordsTest(SinkCase):
    """What the transcript says adds up, in sink mode too."""

    def test_sink_speaks_as_itself(self):
        sc = self.sink()
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nx\r\n")
        c.quit()
        sc.wait_for(r"\[#1\] smtpscope: disconnect")
        text = sc.text()
        self.assertIn("smtpscope reply: b'250 2.1.0 Ok\\r\\n'", text)
        self.assertNotRegex(text, r"\] reply: ")
        self.assertIn("smtpscope: message accepted by the sink", text)
        self.assertNotIn("by the upstream", text)
        self.assertIn("no upstream (sink); 1 message(s) accepted by it", text)
        self.assertNotIn("upstream sink sent", text)

    def test_warning_counts_agree(self):
        jpath = os.path.join(self.dir, "t.jsonl")
        sc = self.sink("--json", jpath)
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=20)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        for _ in range(4):
            h.read_reply(s)
        s.sendall(b"".join(b"line %d\n" % i for i in range(204)) + b"end\r\n.\r\nQUIT\r\n")
        self.assertTrue(h.read_reply(s).startswith(b"250 "))
        s.close()
        sc.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertEqual(self.index()[0]["warnings"], 204)
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertIn(", 204 warning(s), ", scope.wait_for(r"summary: "))
        self.assertNotIn("NUL dropped", scope.text())  # there was no NUL
        r = check("--json", jpath, "--no-warnings")
        self.assertIn("session 1 had 204 warning(s)", r.stdout)

    def test_trace_names_the_sinks_states(self):
        sc = self.sink("--trace")
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        c.login("alice", "secret")
        c.sendmail("a@x.test", ["b@x.test"], b"Subject: t\r\n\r\nx\r\n")
        c.quit()
        sc.wait_for(r"\[#1\] smtpscope: disconnect")
        text = sc.text()
        for change in ("sink state COMMAND -> AUTH-PLAIN", "sink state AUTH-PLAIN -> COMMAND",
                       "sink state COMMAND -> DATA", "sink state DATA -> COMMAND"):
            self.assertIn(change, text)

    def test_quiet_says_why_a_session_failed(self):
        auth = os.path.join(self.dir, "users")
        with open(auth, "w") as f:
            f.write("alice:right\n")
        sc = self.sink("--sink-auth", auth, "--quiet")
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            c.login("alice", "wrong")
        c.close()
        line = sc.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertIn("last refusal: 535 5.7.8 Authentication credentials invalid", line)
        self.assertIn("the client closed TCP without TLS close_notify (truncation; common for "
                      "clients, above all after an error reply)", line)

    def test_plain_close_names_the_peer(self):
        sc = self.sink("--trace")
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=20)
        h.read_reply(s)
        s.close()
        line = sc.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertIn("disconnect: the client closed the connection", line)
        self.assertNotIn("connection closed by peer", sc.text())

    def test_shutdown_during_data_says_not_submitted(self):
        sc = self.sink()
        import signal
        import socket
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=20)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        for _ in range(4):
            h.read_reply(s)
        s.sendall(b"Subject: half\r\n\r\nhalf a message\r\n")
        sc.expect("send: b'half a message\\r\\n'")
        sc.proc.send_signal(signal.SIGTERM)
        sc.proc.send_signal(signal.SIGTERM)  # a second signal: no grace period
        sc.wait_for(r"error: shutdown during a message: it was NOT submitted")
        s.close()
        self.assertEqual(self.index(), [])

    def test_trace_shows_changes_only(self):
        self.scope = h.Scope("--trace", "--upstream", f"127.0.0.1:{h.free_port()}")
        import socket
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=20)
        self.assertTrue(h.read_reply(s).startswith(b"421 "))
        s.close()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        text = self.scope.text()
        self.assertIn("upstream state RESOLVING -> CONNECTING", text)
        self.assertNotRegex(text, r"state (\S+) -> \1\b")

    def test_check_missing_sink_is_a_usage_error(self):
        r = check("--sink", "/nonexistent", "--count", "0")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--sink /nonexistent: No such file or directory", r.stderr)
        r = check("--json", "/nonexistent.jsonl", "--count", "0")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)


class FaultTest(SinkCase):
    def client(self, sc, tls=True):
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        if tls:
            c.starttls()
        return c

    # --fault eod=delay holds the upstream's verdict: what the upstream says
    # after it (a malformed line, a reply no command asked for, the reply to
    # a pipelined QUIT) waits behind it, and no upstream timeout runs while
    # smtpscope itself holds the reply (the upstream leg is not read then)
    def held_verdict(self, after_dot, scope_args, client_tail):
        fake = h.FakeUpstream(h.tls_prelude(b"250-fake\r\n250 PIPELINING\r\n") + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_until", b"\r\n.\r\n")] + after_dot + [("read_all",)])
        self.scope = h.Scope("--client-tls", "off", *scope_args, "--upstream",
                             f"localhost:{fake.port}", upstream=None)
        import socket
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=10)
        h.read_reply(s)
        for line in (b"EHLO c\r\n", b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<b@x>\r\n", b"DATA\r\n"):
            s.sendall(line)
            h.read_reply(s)
        t0 = time.monotonic()
        s.sendall(b"Subject: held\r\n\r\nx\r\n.\r\n" + client_tail)
        heard = [h.read_reply(s, timeout=10)]
        waited = time.monotonic() - t0
        while True:
            try:
                r = h.read_reply(s, timeout=10)
            except (OSError, EOFError):
                break
            if not r:
                break
            heard.append(r)
        s.close()
        rc, err = self.scope.stop()
        self.scope = None
        fake.stop()
        h.assert_clean_exit(self, rc, err)
        return heard, waited

    def test_held_verdict_then_a_malformed_line(self):
        heard, waited = self.held_verdict([("send", b"250 2.0.0 queued\r\nxyz\r\n")],
                                          ["--fault", "eod=delay=400ms"], b"")
        self.assertGreater(waited, 0.35)
        self.assertEqual(heard, [b"250 2.0.0 queued\r\n",
                                 b"421 4.4.2 upstream sent a malformed reply\r\n"])

    def test_held_verdict_then_own_reply_then_unasked_reply(self):
        # the 500 for the client's bare-CR line waits its turn behind the
        # verdict; the upstream's extra reply is a protocol error after both
        heard, _ = self.held_verdict([("send", b"250 2.0.0 queued\r\n250 2.0.0 extra\r\n")],
                                     ["--fault", "eod=delay=300ms"], b"NOOP\rX\r\n")
        self.assertEqual(heard, [
            b"250 2.0.0 queued\r\n",
            b"500 5.5.2 Syntax error: bare CR, bare LF or NUL in command line\r\n",
            b"421 4.4.2 upstream protocol error\r\n"])

    def test_held_verdict_outlasts_the_upstream_timeouts(self):
        heard, waited = self.held_verdict(
            [("send", b"250 2.0.0 queued\r\n"), ("expect", b"QUIT"), ("sleep", 0.1),
             ("send", b"221 bye\r\n")],
            ["--fault", "eod=delay=1200ms", "--timeout-command", "400ms",
             "--timeout-final", "400ms"], b"QUIT\r\n")
        self.assertGreater(waited, 1.1)
        self.assertEqual(heard, [b"250 2.0.0 queued\r\n", b"221 bye\r\n"])

    def test_stages_in_sink_mode(self):
        sc = self.sink("--fault", "mail:<blocked@*>=550 5.7.1 sender blocked",
                       "--fault", "rcpt:<*@full.test>=452 4.2.2 mailbox full",
                       "--fault", "data=451 4.3.0 try again later#2",
                       "--fault", "eod=554 5.6.0 content rejected#2")
        c = self.client(sc)
        with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
            c.sendmail("blocked@x.test", ["b@x.test"], b"Subject: 1\r\n\r\nx\r\n")
        self.assertEqual(cm.exception.smtp_code, 550)
        c.rset()
        refused = c.sendmail("a@x.test", ["b@x.test", "c@full.test"], b"Subject: 2\r\n\r\nx\r\n")
        self.assertEqual(refused, {"c@full.test": (452, b"4.2.2 mailbox full")})
        with self.assertRaises(smtplib.SMTPDataError) as cm:  # the second DATA
            c.sendmail("a@x.test", ["b@x.test"], b"Subject: 3\r\n\r\nx\r\n")
        self.assertEqual(cm.exception.smtp_code, 451)
        c.rset()
        with self.assertRaises(smtplib.SMTPDataError) as cm:  # the second end of data
            c.sendmail("a@x.test", ["b@x.test"], b"Subject: 4\r\n\r\nx\r\n")
        self.assertEqual(cm.exception.smtp_code, 554)
        c.sendmail("a@x.test", ["b@x.test"], b"Subject: 5\r\n\r\nx\r\n")
        c.quit()
        subjects = [e["subject"] for e in self.index()]
        self.assertEqual(subjects, ["2", "5"])  # 4 was refused at end of data: never stored
        text = sc.text()
        self.assertIn("smtpscope reply (injected): b'550 5.7.1 sender blocked\\r\\n'", text)
        self.assertIn("fault injected at rcpt: rcpt:<*@full.test>=452 4.2.2 mailbox full", text)
        r = check("--json", "/dev/null")
        self.assertEqual(r.returncode, 0)

    def test_connect_ehlo_auth_drop_delay_tls(self):
        cases = [
            ("connect=421 4.3.2 not now", lambda c: None, smtplib.SMTPConnectError),
            ("ehlo=554 5.7.1 go away", lambda c: c.ehlo_or_helo_if_needed(), smtplib.SMTPHeloError),
            ("auth=535 5.7.8 bad credentials", lambda c: (c.starttls(), c.login("u", "p")),
             smtplib.SMTPAuthenticationError),
            ("mail=drop", lambda c: c.sendmail("a@x", ["b@x"], b"x"),
             smtplib.SMTPServerDisconnected),
            ("starttls=tls-fail", lambda c: c.starttls(), (ssl.SSLError, OSError,
                                                           smtplib.SMTPServerDisconnected)),
        ]
        for rule, act, exc in cases:
            with self.subTest(rule=rule):
                sc = self.sink("--fault", rule)
                c = None
                with self.assertRaises(exc):
                    c = smtplib.SMTP("127.0.0.1", sc.port, timeout=10)
                    act(c)
                sc.expect("fault injected at " + rule.split("=")[0])
                if c is not None:
                    c.close()
                rc, err = sc.stop()
                h.assert_clean_exit(self, rc, err)
                self.scope = None

    def test_delay(self):
        sc = self.sink("--fault", "rcpt=delay=400ms", "--fault", "connect=delay=300ms",
                       "--fault", "eod=delay=300ms")
        t0 = time.time()
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        self.assertGreater(time.time() - t0, 0.28)
        t0 = time.time()
        c.sendmail("a@x", ["b@x"], b"Subject: slow\r\n\r\nx\r\n")
        self.assertGreater(time.time() - t0, 0.65)
        c.quit()
        self.assertEqual(len(self.index()), 1)

    def test_probability_is_reproducible(self):
        outcomes = []
        for _ in range(2):
            sc = self.sink("--fault", "rcpt=450 4.2.1 busy@50%", "--seed", "7")
            c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
            c.docmd("MAIL FROM:<a@x>")
            outcomes.append([c.docmd(f"RCPT TO:<r{i}@x>")[0] for i in range(20)])
            c.quit()
            rc, err = sc.stop()
            h.assert_clean_exit(self, rc, err)
            self.scope = None
        self.assertEqual(outcomes[0], outcomes[1])
        self.assertIn(450, outcomes[0])
        self.assertIn(250, outcomes[0])

    def test_relay_mode_rejection_never_reaches_upstream(self):
        up = h.Upstream()
        try:
            self.scope = h.Scope("--fault", "rcpt:<*@blocked.test>=550 5.1.1 no such user",
                                 "--fault", "eod=451 4.3.0 try later#1", upstream=up)
            c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
            c.starttls()
            c.login(h.USER, h.PASSWORD)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail("a@x.test", ["ok@x.test", "x@blocked.test"], b"Subject: 1\r\n\r\nx\r\n")
            self.assertEqual(cm.exception.smtp_code, 451)
            c.close()
            c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
            c.starttls()
            c.login(h.USER, h.PASSWORD)
            refused = c.sendmail("a@x.test", ["ok@x.test", "x@blocked.test"],
                                 b"Subject: 2\r\n\r\nx\r\n")
            self.assertEqual(list(refused), ["x@blocked.test"])
            c.quit()
            msgs = up.recorder.wait_messages(1)
            self.assertEqual(len(msgs), 1)  # the first never committed upstream
            self.assertEqual(msgs[0][1], ["ok@x.test"])  # the blocked RCPT was never sent
            self.assertIn(b"Subject: 2", msgs[0][2])
        finally:
            rc, err = self.scope.stop()
            self.scope = None
            up.stop()
        h.assert_clean_exit(self, rc, err)

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_swaks_exit_codes(self):
        sc = self.sink("--fault", "rcpt=550 5.1.1 unknown")
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{sc.port}", "--from", "a@x.test",
                            "--to", "b@x.test"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 24, r.stdout)  # swaks: no recipients accepted


if __name__ == "__main__":
    unittest.main()


class RecordReplayTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="smtpscope-rec-")
        self.rec = os.path.join(self.dir, "rec.jsonl")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def seed_run(self, port, user=h.USER, password=h.PASSWORD):
        r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "seed_script.py"),
                            "127.0.0.1", str(port), user, password], capture_output=True, timeout=60)
        return r.returncode, [l for l in r.stderr.decode().splitlines() if l.startswith("reply:")]

    def test_recording_replays_the_same_replies(self):
        up = h.Upstream()
        sc = h.Scope("--record", self.rec, upstream=up)
        rc1, replies1 = self.seed_run(sc.port)
        sc.wait_for("disconnect")
        self.assertEqual(sc.stop()[0], 0)
        up.stop()  # no upstream from here on
        self.assertEqual(rc1, 0)
        raw = open(self.rec, "rb").read()
        self.assertNotIn(h.PASSWORD.encode(), raw)
        import base64
        self.assertNotIn(base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode()), raw)
        keys = [json.loads(l)["key"] for l in raw.splitlines()]
        self.assertEqual(keys, ["greeting", "EHLO", "EHLO", "AUTH", "MAIL", "RCPT", "DATA",
                                "end of data", "QUIT"])
        sc = h.Scope("--replay", self.rec, ca=False)
        rc2, replies2 = self.seed_run(sc.port, "any", "credentials")
        sc.wait_for("disconnect")
        self.assertEqual(sc.stop()[0], 0)
        self.assertEqual(rc2, 0)
        self.assertEqual(replies1, replies2)
        self.assertIn("reply: b'250 2.0.0 OK queued as TEST1\\r\\n'", replies2)

    def test_rate_limit_and_delays_replayed_and_mismatch_reported(self):
        fake = h.FakeUpstream(h.tls_prelude(b"250-fake.test\r\n250 AUTH PLAIN\r\n") + [
            ("expect", b"MAIL"), ("sleep", 0.4), ("send", b"250 2.1.0 ok\r\n"),
            ("expect", b"RCPT"), ("send", b"450 4.2.1 rate limited, slow down\r\n"),
            ("expect", b"QUIT"), ("send", b"221 2.0.0 bye\r\n"), ("read_all",)])
        sc = h.Scope("--record", self.rec, "--upstream", f"localhost:{fake.port}")

        def run(port, sender="a@x.test"):
            c = smtplib.SMTP("127.0.0.1", port, timeout=20)
            c.ehlo()
            t0 = time.time()
            code_mail = c.docmd(f"MAIL FROM:<{sender}>")
            took = time.time() - t0
            code_rcpt = c.docmd("RCPT TO:<b@x.test>")
            c.quit()
            return code_mail, code_rcpt, took

        first = run(sc.port)
        sc.wait_for("disconnect")
        sc.stop()
        fake.stop()
        self.assertEqual(first[1], (450, b"4.2.1 rate limited, slow down"))
        delays = {json.loads(l)["key"]: json.loads(l)["delay_ms"] for l in open(self.rec)}
        self.assertGreaterEqual(delays["MAIL"], 380)
        sc = h.Scope("--replay", self.rec, ca=False)
        again = run(sc.port)
        self.assertEqual(again[:2], first[:2])
        self.assertGreater(again[2], 0.35)  # the upstream's delay, replayed
        # the app now sends something else: reported, not guessed
        other = run(sc.port, sender="other@x.test")
        self.assertEqual(other[0][0], 451)
        sc.expect("replay mismatch: the recording (session 1, reply 3) expects MAIL: MAIL "
                  "FROM:<a@x.test>; got MAIL: MAIL FROM:<other@x.test>")
        self.assertEqual(sc.stop()[0], 0)

    def test_parameters_ignored_and_rset_quit_answered(self):
        up = h.Upstream()
        sc = h.Scope("--record", self.rec, upstream=up)

        def send(port, body, rcpt="b@x.test", then_rset=False):
            c = smtplib.SMTP("127.0.0.1", port, timeout=20)
            c.starttls()
            c.login(h.USER, h.PASSWORD)
            c.ehlo()
            out = [c.mail("a@x.test", ["SIZE=%d" % len(body)])]
            out.append(c.rcpt(rcpt))
            if then_rset:
                out.append(c.rset())
            else:
                out.append(c.data(body))
            out.append(c.quit())
            return out

        first = send(sc.port, b"Subject: a\r\n\r\nshort\r\n")
        sc.wait_for("disconnect")
        h.assert_clean_exit(self, *sc.stop())
        up.stop()
        sc = h.Scope("--replay", self.rec, ca=False)
        try:
            # SIZE= differs (a longer message): the same transaction
            again = send(sc.port, b"Subject: a\r\n\r\na longer message\r\n")
            self.assertEqual([r[0] for r in again], [r[0] for r in first])
            sc.expect("replay: reply 6 of recorded session 1 (MAIL)")
            # a recipient the recording does not have: 451; RSET and QUIT still work
            other = send(sc.port, b"x", rcpt="someone-else@x.test", then_rset=True)
            self.assertEqual([r[0] for r in other], [250, 451, 250, 221])
            sc.expect("replay: RSET answered by smtpscope (the recording has next: RCPT)")
        finally:
            h.assert_clean_exit(self, *sc.stop())


class OrderingTest(SinkCase):
    """smtpscope's own replies take their turn among the upstream's."""

    def test_injected_reply_in_a_pipelined_group(self):
        import socket
        sc = self.sink("--fault", "rcpt:bad@*=550 5.1.1 no such user")
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\n")
        h.read_reply(s)
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<good@x>\r\nRCPT TO:<bad@x>\r\n"
                  b"RCPT TO:<good2@x>\r\nDATA\r\n")
        codes = [h.read_reply(s)[:3] for _ in range(5)]
        self.assertEqual(codes, [b"250", b"250", b"550", b"250", b"354"])
        s.sendall(b"Subject: t\r\n\r\nx\r\n.\r\nQUIT\r\n")
        self.assertTrue(h.read_reply(s).startswith(b"250"))
        s.close()
        self.assertEqual(self.index()[0]["to"], ["good@x", "good2@x"])

    def test_starttls_after_pipelined_rset(self):
        import socket
        sc = self.sink()
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\n")
        h.read_reply(s)
        s.sendall(b"RSET\r\nSTARTTLS\r\n")
        self.assertEqual(h.read_reply(s), b"250 2.0.0 Ok\r\n")
        self.assertEqual(h.read_reply(s), b"220 2.0.0 Ready to start TLS\r\n")
        t = h.client_tls(s)
        t.sendall(b"NOOP\r\n")
        self.assertEqual(h.read_reply(t), b"250 2.0.0 Ok\r\n")
        t.close()

    def test_big_envelope_index_stays_valid(self):
        sc = self.sink()
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        rcpts = [("r%03d" % i) + "x" * 480 + "@example.test" for i in range(40)]
        subject = "S" * 990
        c.sendmail("a@x", rcpts, f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        c.quit()
        e = self.index()[0]
        self.assertEqual(e["to"], rcpts)
        self.assertEqual(e["subject"], subject)

    def test_data_after_bdat_refused(self):
        import socket
        sc = self.sink()
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        h.read_reply(s)
        s.sendall(b"EHLO c\r\n")
        h.read_reply(s)
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 3\r\nabc")
        for _ in range(3):
            self.assertTrue(h.read_reply(s).startswith(b"250"))
        s.sendall(b"DATA\r\n")
        self.assertTrue(h.read_reply(s).startswith(b"503 5.5.1 DATA after BDAT"))
        s.close()

    def test_eod_delay_and_command_delay_together(self):
        sc = self.sink("--fault", "eod=delay=400ms", "--fault", "mail=delay=200ms")
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.ehlo()
        for i in range(2):
            t0 = time.monotonic()
            c.mail("a@x")
            t_mail = time.monotonic() - t0
            c.rcpt("b@x")
            t1 = time.monotonic()
            code, _ = c.data(f"Subject: {i}\r\n\r\nx\r\n".encode())
            t_eod = time.monotonic() - t1
            self.assertEqual(code, 250)
            # each delay is there, and neither is spent twice
            self.assertGreaterEqual(t_mail, 0.19, f"MAIL answered after {t_mail:.3f} s")
            self.assertGreaterEqual(t_eod, 0.39, f"end of data answered after {t_eod:.3f} s")
            self.assertLess(t_mail + t_eod, 2.0)
        c.quit()
        self.assertEqual([e["subject"] for e in self.index()], ["0", "1"])
