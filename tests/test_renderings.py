"""Transcripts for machines, files and Wireshark: JSON Lines against the
documented schema, per-session files, the NSS key log (decrypting a real
capture with tshark), the decrypted pcap, learner notes, colour, quiet,
shutdown summary."""
import base64
import json
import os
import pty
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "docs", "transcript.schema.json")


def send_one(port, body=b"Subject: hi\r\n\r\nhello\r\n", login=True, tls=None):
    c = smtplib.SMTP("127.0.0.1", port, timeout=20)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    h.pin(ctx, tls)
    c.starttls(context=ctx)
    if login:
        c.login(h.USER, h.PASSWORD)
    c.sendmail("alice@example.test", ["bob@example.test"], body)
    c.quit()


class Base(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="smtpscope-render-")
        self.up = h.Upstream()

    def tearDown(self):
        try:
            super().tearDown()  # an smtpscope that already ended is checked too
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


class JsonTest(Base):
    def test_schema_and_content(self):
        import jsonschema
        with open(SCHEMA) as f:
            schema = json.load(f)
        out = self.path("t.jsonl")
        self.scope = h.Scope("--json", out, upstream=self.up)
        send_one(self.scope.port)
        self.scope.wait_for("disconnect")
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        with open(out, "rb") as f:
            raw = f.read()
        events = [json.loads(l) for l in raw.decode("ascii").splitlines()]
        validator = jsonschema.Draft202012Validator(schema)
        for e in events:
            validator.validate(e)
        kinds = {e["kind"] for e in events}
        self.assertTrue({"connect", "tls", "command", "reply", "data", "info", "close"} <= kinds)
        # a command with its parsed fields, and the reply paired with it
        mail = [e for e in events if e.get("verb") == "MAIL"]
        self.assertEqual(len(mail), 1)
        # smtplib writes "FROM:" up to Python 3.12, "from:" from 3.13
        self.assertRegex(mail[0]["arg"], r"^(?i:FROM):<alice@example\.test> size=\d+$")
        self.assertEqual(mail[0]["line"].encode("latin-1"),
                         b"mail " + mail[0]["arg"].encode() + b"\r\n")
        replies = [e for e in events if e["kind"] == "reply" and e.get("answers") == "MAIL"]
        self.assertEqual([r["code"] for r in replies], [250])
        eod = [e for e in events if e["kind"] == "reply" and e.get("answers") == "end of data"]
        self.assertEqual(eod[0]["enhanced"], "2.0.0")
        self.assertTrue(any(e.get("message") == "accepted" for e in events))
        # redaction exactly as on the console
        self.assertNotIn(h.PASSWORD.encode(), raw)
        self.assertNotIn(base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode()), raw)
        auth = [e for e in events if e.get("redacted")]
        self.assertEqual(auth[0]["line"], "AUTH PLAIN [redacted; user=alice@example.test]\r\n")
        # totals on close
        close = [e for e in events if e["kind"] == "close"][0]
        self.assertEqual(close["totals"]["messages"], 1)
        self.assertGreater(close["totals"]["client_rx"], 100)
        self.assertRegex(close["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

    def test_stdout_and_bytes_roundtrip(self):
        self.scope = h.Scope("--json", "-", upstream=self.up, wait=False)
        line = self.scope.wait_for(r'"text":"smtpscope .* listening on 127\.0\.0\.1:\d+')
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        body = b"Subject: 8bit\r\n\r\n\xe9t\xe9 \x01\xff\r\n"
        send_one(port, body)
        self.scope.wait_for('"kind":"close"')
        events = [json.loads(l) for l in self.scope.text().splitlines()]
        data = [e["line"].encode("latin-1") for e in events if e["kind"] == "data"]
        self.assertIn(b"\xe9t\xe9 \x01\xff\r\n", data)

    def test_whole_lines_after_sigkill(self):
        out = self.path("k.jsonl")
        self.scope = h.Scope("--json", out, upstream=self.up)
        for _ in range(3):
            send_one(self.scope.port, b"Subject: x\r\n\r\n" + b"line\r\n" * 500)
        self.scope.proc.send_signal(signal.SIGKILL)
        self.scope.proc.wait()
        with open(out, "rb") as f:
            raw = f.read()
        self.assertTrue(raw.endswith(b"\n"))
        for l in raw.splitlines():
            json.loads(l)
        self.scope.stop()
        self.scope = None


class FilesTest(Base):
    def test_per_session_files_survive_sigkill(self):
        d = self.path("t")
        os.mkdir(d)
        self.scope = h.Scope("--transcript-dir", d, upstream=self.up)
        send_one(self.scope.port)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        # a second session, killed while it is open
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.ehlo()
        c.docmd("NOOP")
        self.scope.proc.send_signal(signal.SIGKILL)
        self.scope.proc.wait()
        c.close()
        names = sorted(os.listdir(d))
        self.assertEqual(len(names), 2, names)
        for n in names:
            self.assertRegex(n, r"^\d{8}T\d{6}\.\d{6}Z-[12]\.log$")
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode), 0o600)
        first = open(os.path.join(d, [n for n in names if n.endswith("-1.log")][0])).read()
        self.assertIn("send: 'quit\\r\\n'", first)
        self.assertIn("smtpscope: disconnect: QUIT", first)
        self.assertNotIn(h.PASSWORD, first)
        second = open(os.path.join(d, [n for n in names if n.endswith("-2.log")][0])).read()
        self.assertTrue(second.endswith("reply: b'250 OK\\r\\n'\n"), second[-200:])
        self.scope.stop()
        self.scope = None


KEYLOG12 = r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$"
KEYLOG13 = (r"^(CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|"
            r"CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0) [0-9a-f]{64} [0-9a-f]{64}([0-9a-f]{32})?$")


@unittest.skipUnless(shutil.which("tshark"), "tshark not installed")
class WiresharkTest(Base):
    def capture_both_legs(self, tls, keylog, cap):
        """Relay one message with both legs pinned to TLS version tls, while
        tshark captures both legs on loopback, as a user would."""
        self.up.stop()
        self.up = h.Upstream(cert=h.pinned("server", tls))
        self.scope = h.Scope("--keylog", keylog, upstream=self.up)
        ports = (self.scope.port, self.up.port)
        dump = subprocess.Popen(["tshark", "-i", "lo", "-f",
                                 f"tcp port {ports[0]} or tcp port {ports[1]}", "-w", cap, "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            end = time.time() + 20
            while not os.path.exists(cap) and time.time() < end:
                time.sleep(0.1)
            time.sleep(1.0)
            send_one(self.scope.port, tls=tls)
            self.scope.wait_for("disconnect")
            time.sleep(1.0)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(20)
        for leg in ("upstream", "client"):
            self.assertRegex(self.scope.text(), rf"TLS {leg}: TLSv{re.escape(tls)} ")
        rc, err = self.scope.stop()
        self.assertEqual(rc, 0, err)
        self.scope = None
        return ports

    def check_decrypts(self, tls, label_rx, lines_per_session):
        keylog = self.path(f"keys{tls}.log")
        cap = self.path(f"both{tls}.pcapng")
        ports = self.capture_both_legs(tls, keylog, cap)
        self.assertEqual(stat.S_IMODE(os.stat(keylog).st_mode), 0o600)
        lines = open(keylog).read().splitlines()
        # the upstream leg and the client leg
        self.assertEqual(len(lines), 2 * lines_per_session, lines)
        for l in lines:
            self.assertRegex(l, label_rx)
        # a test port is not SMTP's: tell tshark, as "Decode As" does
        decode = ["-d", f"tcp.port=={ports[0]},smtp", "-d", f"tcp.port=={ports[1]},smtp"]
        r = subprocess.run(["tshark", "-r", cap, *decode, "-o", f"tls.keylog_file:{keylog}",
                            "-Y", "smtp", "-T", "fields", "-e", "tcp.dstport",
                            "-e", "smtp.req.command", "-e", "smtp.req.parameter"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # MAIL FROM is sent after STARTTLS on both legs: decrypted on each
        for port in ports:
            self.assertRegex(r.stdout, rf"(?im)^{port}\tMAIL\tFROM:<alice@example\.test>")
        # without the key log the same capture shows no MAIL FROM
        r = subprocess.run(["tshark", "-r", cap, *decode, "-Y", "smtp", "-T", "fields", "-e",
                            "smtp.req.command"], capture_output=True, text=True, timeout=60)
        self.assertNotRegex(r.stdout, r"(?i)mail")

    def test_keylog_decrypts_a_real_capture(self):
        self.check_decrypts("1.2", KEYLOG12, 1)

    @unittest.skipUnless(h.TLS13, h.NO_TLS13)
    def test_keylog_decrypts_a_real_tls13_capture(self):
        self.check_decrypts("1.3", KEYLOG13, 4)

    def test_keylog_never_through_a_symlink(self):
        target = self.path("target")
        link = self.path("link")
        os.symlink(target, link)
        r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--keylog", link], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("it is a symbolic link", r.stderr)
        self.assertFalse(os.path.exists(target))

    def test_sslkeylogfile_environment(self):
        keylog = self.path("env.log")
        self.scope = h.Scope(upstream=self.up, env={"SSLKEYLOGFILE": keylog})
        send_one(self.scope.port)
        self.scope.wait_for("disconnect")
        first = open(keylog).read().splitlines()[0]
        self.assertRegex(first, KEYLOG13 if h.TLS13 else KEYLOG12)

    def test_pcap_shows_the_decrypted_conversation(self):
        cap = self.path("plain.pcap")
        self.scope = h.Scope("--pcap", cap, upstream=self.up)
        send_one(self.scope.port)
        self.scope.wait_for("disconnect")
        # both legs in the newest TLS smtpscope has: 1.3 with mbedTLS 3.6
        version = "TLSv1.3" if h.TLS13 else "TLSv1.2"
        for leg in ("upstream", "client"):
            self.assertIn(f"TLS {leg}: {version} ", self.scope.text())
        port = self.scope.port
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.scope = None
        decode = ["-d", f"tcp.port=={port},smtp", "-d", f"tcp.port=={self.up.port},smtp"]
        r = subprocess.run(["tshark", "-r", cap, *decode, "-Y", "smtp", "-T", "fields", "-e",
                            "tcp.stream",
                            "-e", "smtp.req.command", "-e", "smtp.response.code"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split("\t") for l in r.stdout.splitlines()]
        client = [(c or code) for s, c, code in rows if s == "0" and (c or code)]
        upstream = [(c or code) for s, c, code in rows if s == "1" and (c or code)]
        # the client's leg, in order, across its STARTTLS
        self.assertEqual([x.upper() for x in client[:3]], ["220", "EHLO", "250"])
        seq = [x.upper() for x in client]
        for a, b in [("EHLO", "AUTH"), ("AUTH", "MAIL"), ("MAIL", "RCPT"), ("RCPT", "DATA"),
                     ("DATA", "QUIT")]:
            self.assertLess(seq.index(a), seq.index(b), seq)
        self.assertEqual(seq.count("EHLO"), 2)  # before and after STARTTLS
        # the upstream leg: smtpscope's EHLO twice, then the relayed commands
        useq = [x.upper() for x in upstream]
        self.assertEqual(useq[:3], ["220", "EHLO", "250"])
        self.assertIn("MAIL", useq)
        self.assertLess(useq.index("MAIL"), useq.index("DATA"))
        # the message content is there, in plain text
        r = subprocess.run(["tshark", "-r", cap, "-q", "-z", "follow,tcp,ascii,1"],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("hello", r.stdout)
        self.assertIn("MAIL FROM:<alice@example.test>".lower(), r.stdout.lower())


class ConsoleTest(Base):
    def test_explain_notes(self):
        fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250-SIZE 100\r\n250 STARTTLS\r\n"),
                               ("expect", b"STARTTLS"), ("send", b"220 go ahead\r\n"), ("tls",),
                               ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250-SIZE 100\r\n250 AUTH LOGIN PLAIN\r\n"),
                               ("expect", b"EHLO"), ("send", b"250-fake\r\n250 AUTH LOGIN\r\n"),
                               ("expect", b"AUTH LOGIN"), ("send", b"334 VXNlcm5hbWU6\r\n"),
                               ("expect", b""), ("send", b"535 5.7.8 Authentication failed\r\n"),
                               ("read_all",)])
        try:
            self.scope = h.Scope("--explain", "--upstream", f"localhost:{fake.port}")
            s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
            h.read_reply(s)
            s.sendall(b"EHLO c\r\n")
            h.read_reply(s)
            s.sendall(b"AUTH LOGIN\r\n")
            self.assertEqual(h.read_reply(s), b"334 VXNlcm5hbWU6\r\n")
            s.sendall(base64.b64encode(b"alice") + b"\r\n")
            self.assertTrue(h.read_reply(s).startswith(b"535"))
            s.close()
            self.scope.expect("  # 220 = service ready")
            self.scope.expect("capabilities inside TLS compared with before: +AUTH LOGIN PLAIN, "
                              "-STARTTLS")
            self.scope.expect("the upstream leg is encrypted from here on")
            self.scope.expect("reply: b'334 [redacted]\\r\\n'")
            self.scope.expect("  # 334 prompt, base64 for \"Username:\"")
            self.scope.expect("  # 535 = authentication credentials invalid; 5.7.8 = permanent "
                              "failure: authentication credentials invalid")
        finally:
            fake.stop()

    def test_quiet(self):
        self.scope = h.Scope("--quiet", upstream=self.up)
        send_one(self.scope.port)
        self.scope.wait_for("disconnect")
        lines = self.scope.session_lines(1)
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("smtpscope: disconnect: QUIT"))

    def run_on_tty(self, *args, env=None):
        """smtpscope on a pseudo-terminal: (output, port-file) after one session."""
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.update(env or {})
            os.execv(h.BIN, [h.BIN, "--listen", "127.0.0.1:0", "--ca-file", h.certs().ca,
                             "--upstream", f"localhost:{self.up.port}", *args])
        out = b""
        port = None
        end = time.time() + 20
        try:
            while time.time() < end:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:
                        break
                if port is None:
                    m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", out)
                    if m:
                        port = int(m.group(1))
                        send_one(port)
                if b"disconnect" in out:
                    break
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            os.close(fd)
        return out

    def test_colour_on_a_terminal_and_no_color(self):
        out = self.run_on_tty()
        self.assertIn(b"\033[36msend:\033[0m", out)
        self.assertIn(b"\033[32mreply:\033[0m", out)
        self.assertIn(b"  # ", out)  # learner notes are on by default on a terminal
        out = self.run_on_tty(env={"NO_COLOR": "1"})
        self.assertNotIn(b"\033[", out)
        out = self.run_on_tty("--color", "never", "--no-explain")
        self.assertNotIn(b"\033[", out)
        self.assertNotIn(b"  # ", out)

    def test_golden_explained_coloured_transcript(self):
        """--color always --explain against a scripted upstream, compared with a
        golden file (times and ports normalised)."""
        fake = h.FakeUpstream(h.tls_prelude(b"250-fake\r\n250 8BITMIME\r\n") + [
            ("expect", b"MAIL"), ("send", b"250 2.1.0 Sender ok\r\n"),
            ("expect", b"RCPT"), ("send", b"550 5.1.1 No such user\r\n"),
            ("expect", b"QUIT"), ("send", b"221 2.0.0 Bye\r\n"), ("read_all",)])
        try:
            self.scope = h.Scope("--color", "always", "--explain", "--helo", "golden.test",
                                 "--upstream", f"localhost:{fake.port}")
            s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
            h.read_reply(s)
            for cmd in (b"EHLO c\r\n", b"MAIL FROM:<a@x>\r\n", b"RCPT TO:<nobody@x>\r\n",
                        b"QUIT\r\n"):
                s.sendall(cmd)
                h.read_reply(s)
            s.close()
            self.scope.wait_for("disconnect")
        finally:
            fake.stop()
        got = []
        for l in self.scope.session_lines(1):
            # the upstream is at whichever address of localhost answered first
            l = re.sub(rf"(upstream localhost:\d+ \(|upstream ){h.localhost_rx()}:\d+",
                       r"\1LOCALHOST:PORT", l)
            l = re.sub(r"(127\.0\.0\.1|localhost):\d+", r"\1:PORT", l)
            l = re.sub(r"TLSv1\.[23] \S+(?: x25519| secp\d+r1)?;?", "TLSVERSION SUITE", l)
            l = re.sub(h.VALID_RX, '", valid FROM to TO', l)
            l = re.sub(r"\d+\.\d{3} s", "N s", l)
            l = re.sub(r"(sent|received) \d+", r"\1 N", l)
            got.append(l)
        golden = os.path.join(HERE, "golden", "explain_color.txt")
        if os.environ.get("SMTPSCOPE_REGOLD"):
            with open(golden, "w") as f:
                f.write("\n".join(got) + "\n")
        with open(golden) as f:
            self.assertEqual("\n".join(got) + "\n", f.read())


class SlowConsoleTest(Base):
    def test_a_console_nobody_reads_does_not_stop_the_relay(self):
        # stdout is a pipe the test does not read: it fills after 64 KiB.
        # The console has a writer thread of its own, so the sessions go on
        # (the lines wait in memory); none is lost when the pipe is read.
        port = h.free_port()
        proc = subprocess.Popen([h.BIN, "--listen", f"127.0.0.1:{port}", "--upstream",
                                 f"localhost:{self.up.port}", "--ca-file", h.certs().ca,
                                 "--body-lines", "1000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            end = time.time() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.time(), end, "smtpscope did not listen")
                    time.sleep(0.05)
            body = b"Subject: x\r\n\r\n" + b"".join(
                b"line %04d of a message whose transcript nobody reads yet\r\n" % i
                for i in range(400))
            n = 12  # about 30 KB of transcript each: 5 times what the pipe holds
            for _ in range(n):
                send_one(port, body)
            self.assertEqual(len(self.up.recorder.wait_messages(n)), n)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        self.assertGreater(len(out), 5 * 65536)
        self.assertEqual(out.count(b"smtpscope: message accepted by the upstream"), n)
        self.assertEqual(out.count(b"line 0399 of a message"), n)
        self.assertIn(b"summary: %d session(s); %d message(s) relayed" % (n + 1, n), out)


class ShutdownTest(Base):
    def test_grace_then_summary(self):
        self.scope = h.Scope("--grace", "5s", upstream=self.up)
        send_one(self.scope.port)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        sc = self.scope
        sc.proc.send_signal(signal.SIGTERM)
        sc.expect("SIGTERM: shutting down; 1 open session(s) may finish for 5000 ms")
        # the open session may still finish its message
        c.sendmail("alice@example.test", ["bob@example.test"], b"Subject: late\r\n\r\nlate\r\n")
        c.quit()
        rc, err = sc.stop()
        self.scope = None
        h.assert_clean_exit(self, rc, err)
        self.assertEqual(len(self.up.recorder.wait_messages(2)), 2)
        self.assertRegex(sc.text(), r"summary: 2 session\(s\); 2 message\(s\) relayed")
        self.assertNotIn("421 4.3.2", sc.text())  # nobody was cut off

    def test_summary_counts(self):
        self.scope = h.Scope(upstream=self.up)
        send_one(self.scope.port)
        send_one(self.scope.port)
        self.scope.wait_for(r"\[#2\] smtpscope: disconnect")
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertRegex(self.scope.text(), r"\[#0\] smtpscope: summary: 2 session\(s\); 2 "
                                            r"message\(s\) relayed, 0 refused; client bytes in "
                                            r"\d+, out \d+; upstream bytes in \d+, out \d+; 0 TLS "
                                            r"failure\(s\), 0 warning\(s\), 0 error\(s\)")
        self.scope = None


if __name__ == "__main__":
    unittest.main()
