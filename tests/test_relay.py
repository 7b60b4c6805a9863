"""The core relay with real peers: aiosmtpd upstream; smtplib, curl, swaks clients."""
import base64
import os
import shutil
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import unittest

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))


class RelayTest(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.up = h.Upstream()

    def start(self, *args):
        self.scope = h.Scope(*args, "--helo", "scope.test", upstream=self.up)
        return self.scope

    def assert_no_secret(self, text):
        self.assertNotIn(h.PASSWORD, text)
        plain = base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode()).decode()
        self.assertNotIn(plain, text)
        self.assertNotIn(base64.b64encode(h.PASSWORD.encode()).decode(), text)
        self.assertNotIn(base64.b64encode(h.PASSWORD.encode()).decode().rstrip("="), text)

    def test_seed_script(self):
        """The founding script, unchanged but for host and port."""
        sc = self.start()
        res = subprocess.run([sys.executable, os.path.join(HERE, "seed_script.py"), "127.0.0.1",
                              str(sc.port), h.USER, h.PASSWORD],
                             capture_output=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr.decode())
        client = res.stderr.decode()
        # the client saw the upstream's own replies, relayed
        self.assertIn("reply: b'250-mx.upstream.test\\r\\n'", client)
        self.assertIn("reply: b'250-STARTTLS\\r\\n'", client)
        self.assertIn("reply: b'235 2.7.0 Authentication successful\\r\\n'", client)
        self.assertIn("reply: b'250 2.0.0 OK queued as TEST1\\r\\n'", client)

        msgs = self.up.recorder.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        mail_from, rcpts, content = msgs[0]
        self.assertEqual(mail_from, "leehark@example.test")
        self.assertEqual(rcpts, ["friend@example.test"])
        self.assertIn(b"Subject: hello , today is a special day\r\n", content)
        self.assertTrue(content.endswith(b"\r\nHi ,I am leehark\r\n"))
        self.assertEqual(self.up.recorder.auth, [("PLAIN", True)])
        # upstream saw smtpscope's EHLO twice (before and inside TLS), then the client's twice
        self.assertEqual(self.up.recorder.ehlo[:2], ["scope.test", "scope.test"])
        self.assertEqual(len(self.up.recorder.ehlo), 4)

        sc.wait_for(r"\[#1\] smtpscope: disconnect")
        lines = sc.session_lines(1)
        text = "\n".join(lines)
        # Python's ssl speaks TLS 1.3 on both legs where smtpscope's mbedTLS
        # does: ChaCha20 and X25519 first on both ends. (In TLS 1.2 the
        # upstream picks the suite in its own order.)
        params = (r"TLSv1\.3 TLS1-3-CHACHA20-POLY1305-SHA256 x25519" if h.TLS13 else
                  r"TLSv1\.2 TLS-ECDHE-ECDSA-WITH-\S+")
        order = [
            r"^smtpscope: connection from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+",
            rf"^smtpscope: connected to upstream localhost:\d+ \({h.localhost_rx()}:\d+\)",
            r"^upstream reply: b'220 mx\.upstream\.test",
            r"^upstream send: 'EHLO scope\.test\\r\\n'",
            r"^upstream reply: b'250-STARTTLS\\r\\n'",
            r"^upstream send: 'STARTTLS\\r\\n'",
            r"^upstream reply: b'220 ",
            r"^smtpscope: TLS upstream: " + params + r"; subject \"CN=localhost\", issuer "
            r"\"CN=smtpscope test ca" + h.VALID_RX + r"; verification: ok$",
            r"^upstream send: 'EHLO scope\.test\\r\\n'",
            r"^upstream reply: b'250-AUTH LOGIN PLAIN\\r\\n'",
            r"^reply: b'220 mx\.upstream\.test",
            r"^send: 'ehlo ",
            r"^reply: b'250-STARTTLS\\r\\n'",
            r"^send: 'STARTTLS\\r\\n'",
            r"^smtpscope reply: b'220 2\.0\.0 Ready to start TLS\\r\\n'",
            r"^smtpscope: TLS client: " + params.replace(r"WITH-\S+", "WITH-CHACHA20-POLY1305-SHA256")
            + r" \(smtpscope's certificate\)$",
            r"^send: 'ehlo ",
            r"^send: 'AUTH PLAIN \[redacted; user=alice@example\.test\]\\r\\n'",
            r"^reply: b'235 2\.7\.0 Authentication successful\\r\\n'",
            r"^send: 'mail (?i:FROM):<leehark@example\.test> size=\d+\\r\\n'",  # from: in 3.13
            r"^reply: b'250 OK\\r\\n'",
            r"^send: 'rcpt (?i:TO):<friend@example\.test>\\r\\n'",
            r"^send: 'data\\r\\n'",
            r"^reply: b'354 ",
            r"^send: b'Subject: hello , today is a special day\\r\\n'",
            r"^send: b'Hi ,I am leehark\\r\\n'",
            r"^send: b'\.\\r\\n'",
            r"^reply: b'250 2\.0\.0 OK queued as TEST1\\r\\n'",
            r"^smtpscope: message accepted by the upstream",
            r"^send: 'quit\\r\\n'",
            r"^reply: b'221 ",
            r"^smtpscope: disconnect: QUIT; client 127\.0\.0\.1:\d+ sent \d+ bytes",
        ]
        import re
        i = 0
        for pat in order:
            while i < len(lines) and not re.search(pat, lines[i]):
                i += 1
            self.assertLess(i, len(lines), f"{pat!r} not found in order in:\n{text}")
        # after TLS on the client leg, STARTTLS is no longer advertised
        after = text.split("TLS client:", 1)[1]
        self.assertNotIn("250-STARTTLS", after)
        # every line is timestamped
        for l in sc.text().splitlines():
            self.assertRegex(l, r"^\d\d:\d\d:\d\d\.\d{6} \[#\d+\] ")
        self.assert_no_secret(sc.text())

    def test_auth_login_redacted_and_show_secrets(self):
        for show in (False, True):
            with self.subTest(show_secrets=show):
                sc = self.start(*(["--show-secrets"] if show else []))
                c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
                c.starttls()
                c.ehlo()
                c.user, c.password = h.USER, h.PASSWORD
                code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
                self.assertEqual(code, 235)
                c.quit()
                sc.wait_for(r"disconnect: QUIT")
                text = sc.text()
                if show:
                    self.assertIn(base64.b64encode(h.PASSWORD.encode()).decode(), text)
                    self.assertIn("reply: b'334 UGFzc3dvcmQA\\r\\n'", text)
                else:
                    self.assert_no_secret(text)
                    self.assertIn("send: 'AUTH LOGIN\\r\\n'", text)
                    self.assertIn("reply: b'334 [redacted]\\r\\n'", text)
                    self.assertIn("send: '[redacted; user=alice@example.test]\\r\\n'", text)
                    self.assertIn("send: '[redacted]\\r\\n'", text)
                    self.assertNotIn("UGFzc3dvcmQA", text)  # the 334 challenge itself
                rc, err = sc.stop()
                h.assert_clean_exit(self, rc, err)
                self.scope = None
        self.assertEqual(self.up.recorder.auth, [("LOGIN", True), ("LOGIN", True)])

    def test_curl(self):
        sc = self.start()
        body = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: curl\r\n\r\nvia curl\r\n"
        res = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k", f"smtp://127.0.0.1:{sc.port}",
                              "--user", f"{h.USER}:{h.PASSWORD}", "--mail-from", "a@example.test",
                              "--mail-rcpt", "b@example.test", "--upload-file", "-"],
                             input=body, capture_output=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr.decode())
        msgs = self.up.recorder.wait_messages(1)
        self.assertEqual(msgs, [("a@example.test", ["b@example.test"], body)])
        sc.wait_for(r"disconnect:")
        self.assertIn("smtpscope reply: b'220 2.0.0 Ready to start TLS\\r\\n'", sc.text())
        self.assert_client_version(sc)
        self.assert_no_secret(sc.text())

    @unittest.skipUnless(shutil.which("swaks"), "swaks not installed")
    def test_swaks(self):
        sc = self.start()
        res = subprocess.run(["swaks", "--server", f"127.0.0.1:{sc.port}", "--tls",
                              "--auth", "LOGIN", "--auth-user", h.USER, "--auth-password",
                              h.PASSWORD, "--from", "s@example.test", "--to", "t@example.test",
                              "--header", "Subject: swaks", "--body", "via swaks"],
                             capture_output=True, timeout=60)
        out = res.stdout.decode()
        self.assertEqual(res.returncode, 0, out + res.stderr.decode())
        self.assertIn("250 2.0.0 OK queued as TEST1", out)
        msgs = self.up.recorder.wait_messages(1)
        self.assertEqual(msgs[0][:2], ("s@example.test", ["t@example.test"]))
        self.assertIn(b"Subject: swaks\r\n", msgs[0][2])
        sc.wait_for(r"disconnect:")
        self.assert_client_version(sc)
        self.assert_no_secret(sc.text())

    def assert_client_version(self, sc):
        """The client offered TLS 1.3 (curl, swaks do): it got it where
        smtpscope's mbedTLS has it."""
        want = "TLSv1.3" if h.TLS13 else "TLSv1.2"
        self.assertRegex(sc.text(), r"TLS client: " + want.replace(".", r"\.") + " ")

    def test_client_tls_off(self):
        sc = self.start("--client-tls", "off")
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.ehlo()
        self.assertFalse(c.has_extn("starttls"))
        self.assertTrue(c.has_extn("auth"))
        code, msg = c.docmd("STARTTLS")
        self.assertEqual(code, 502)
        self.assertTrue(msg.startswith(b"5.5.1"))
        # AUTH over the client's plaintext leg is still relayed over upstream TLS
        c.login(h.USER, h.PASSWORD)
        c.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nno tls\r\n")
        c.quit()
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)
        sc.wait_for("disconnect")
        lines = sc.session_lines(1)
        at = lines.index("send: 'STARTTLS\\r\\n'")
        self.assertTrue(lines[at + 1].startswith("smtpscope reply: b'502 5.5.1 "), lines[at + 1])
        # the only STARTTLS upstream is smtpscope's own, before the client was greeted
        self.assertEqual(sum(l.startswith("upstream send: 'STARTTLS") for l in lines), 1)

    def test_body_lines_limit(self):
        sc = self.start("--body-lines", "5")
        body = "".join(f"line {i}\r\n" for i in range(50)).encode()
        c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.sendmail("a@example.test", ["b@example.test"], body)
        c.quit()
        self.assertEqual(self.up.recorder.wait_messages(1)[0][2], body)
        sc.wait_for("disconnect")
        text = sc.text()
        self.assertIn("send: b'line 4\\r\\n'", text)
        self.assertNotIn("send: b'line 5\\r\\n'", text)
        self.assertIn("message: 50 lines, 440 bytes; 45 lines (400 bytes) not shown", text)
        self.assertIn("send: b'.\\r\\n'", text)

    def test_starttls_pipelining_discarded(self):
        """CVE-2011-0411: commands pipelined after STARTTLS are dropped."""
        sc = self.start()
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        self.assertTrue(h.read_reply(s).startswith(b"220 mx.upstream.test"))
        s.sendall(b"EHLO plain\r\n")
        self.assertIn(b"250-STARTTLS\r\n", h.read_reply(s))
        s.sendall(b"STARTTLS\r\nEHLO injected\r\n")
        self.assertEqual(h.read_reply(s), b"220 2.0.0 Ready to start TLS\r\n")
        t = h.client_tls(s)
        t.sendall(b"EHLO inside\r\n")
        self.assertNotIn(b"STARTTLS", h.read_reply(t))
        t.sendall(b"QUIT\r\n")
        h.read_reply(t)
        t.close()
        sc.wait_for("disconnect")
        self.assertNotIn("injected", self.up.recorder.ehlo)
        self.assertIn("inside", self.up.recorder.ehlo)
        self.assertIn("client sent 15 byte(s) after STARTTLS before the TLS handshake: discarded",
                      sc.text())

    def test_client_speaks_before_greeting_and_escapes(self):
        sc = self.start()
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=10)
        # before the greeting: held, relayed only once the upstream is ready
        s.sendall(b"EHLO early\r\nNOOP \x1b[31mred\xe2\x80\xae\x07\r\nQUIT\r\n")
        data = b""
        while b"221" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"220 mx.upstream.test"), data)
        self.assertEqual(self.up.recorder.ehlo[:3], ["scope.test", "scope.test", "early"])
        sc.wait_for("disconnect")
        text = sc.text()
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\u202e", text)
        self.assertNotIn("\x07", text)
        self.assertIn("send: 'NOOP \\x1b[31mred\\xe2\\x80\\xae\\x07\\r\\n'", text)

    def test_ipv6_listen(self):
        try:
            socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        sc = h.Scope("--listen", "[::1]:0", upstream=self.up, wait=False)
        self.scope = sc
        line = sc.wait_for(r"listening on \[::1\]:(\d+)")
        import re
        port = int(re.search(r"\[::1\]:(\d+)", line).group(1))
        c = smtplib.SMTP("::1", port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.sendmail("a@example.test", ["b@example.test"], b"Subject: v6\r\n\r\nv6\r\n")
        c.quit()
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)


class PlaintextAuthTest(h.ScopeCase):
    """Credentials on the unencrypted client leg are said and counted;
    --client-tls require answers as Gmail does."""

    def setUp(self):
        super().setUp()
        self.up = h.Upstream()

    def summary(self):
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        return scope.wait_for(r"summary: "), scope.text()

    def test_offer_warns_and_counts(self):
        self.scope = h.Scope("--explain", upstream=self.up)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.login(h.USER, h.PASSWORD)  # no starttls(): the app's bug
        c.sendmail(h.USER, ["bob@example.test"], b"Subject: x\r\n\r\nx\r\n")
        c.quit()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        line, text = self.summary()
        self.assertIn("warning: credentials cross the client leg in plaintext: the client sent "
                      "AUTH before STARTTLS", text)
        self.assertIn('"530 5.7.0 Must issue a STARTTLS command first"', text)  # --explain
        self.assertIn("1 warning(s), 0 error(s); 1 plaintext login(s) on the client leg", line)
        self.assertNotIn(h.PASSWORD, text)

    def test_tls_first_is_not_counted(self):
        self.scope = h.Scope(upstream=self.up)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.quit()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        line, text = self.summary()
        self.assertIn("0 warning(s), 0 error(s); 0 plaintext login(s)", line)

    def test_require_answers_530_like_gmail(self):
        self.scope = h.Scope("--client-tls", "require", upstream=self.up)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        code, caps = c.ehlo()
        self.assertIn(b"STARTTLS", caps)
        self.assertNotIn(b"AUTH", caps)  # as Gmail: no AUTH before TLS
        want = (530, b"5.7.0 Must issue a STARTTLS command first")
        self.assertEqual(c.docmd("AUTH", "PLAIN " + base64.b64encode(
            f"\0{h.USER}\0{h.PASSWORD}".encode()).decode()), want)
        self.assertEqual(c.docmd("MAIL", "FROM:<a@example.test>"), want)
        c.starttls()
        c.ehlo()
        self.assertTrue(c.has_extn("auth"))
        c.login(h.USER, h.PASSWORD)
        c.sendmail(h.USER, ["bob@example.test"], b"Subject: after tls\r\n\r\nx\r\n")
        c.quit()
        msgs = self.up.recorder.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        line, text = self.summary()
        self.assertIn("0 plaintext login(s)", line)
        self.assertIn("smtpscope reply: b'530 5.7.0 Must issue a STARTTLS command first", text)
        self.assertNotIn("upstream send: 'MAIL FROM:<a@example.test>", text)
        self.assertNotIn(h.PASSWORD, text)

    def test_off_counts_without_warning(self):
        self.scope = h.Scope("--client-tls", "off", upstream=self.up)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.login(h.USER, h.PASSWORD)
        c.quit()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        line, text = self.summary()
        self.assertIn("credentials cross the client leg in plaintext (--client-tls off)", text)
        self.assertIn("0 warning(s), 0 error(s); 1 plaintext login(s)", line)


class ClientCaTest(h.ScopeCase):
    """The local CA: made on first use, kept, printed by 'smtpscope ca', and
    trusted by clients that verify; a client that does not trust it is named."""

    def setUp(self):
        super().setUp()
        self.up = h.Upstream()
        self.xdg = tempfile.mkdtemp(prefix="smtpscope-xdg-")
        self.addCleanup(shutil.rmtree, self.xdg, True)
        self.env = {"XDG_DATA_HOME": self.xdg}

    def ca_cmd(self):
        return subprocess.run([h.BIN, "ca"], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, **self.env))

    def test_ca_command_and_files(self):
        r = self.ca_cmd()
        self.assertEqual(r.returncode, 0, r.stderr)
        path = os.path.join(self.xdg, "smtpscope", "ca.pem")
        self.assertIn(f"smtpscope's local CA (made now): {path}", r.stdout)
        self.assertIn("-----BEGIN CERTIFICATE-----", r.stdout)
        for how in (f'cafile="{path}"', f"tls_trust_file {path}", f"--cacert {path}",
                    f"NODE_EXTRA_CA_CERTS={path}", "keytool -importcert", "update-ca-certificates"):
            self.assertIn(how, r.stdout)
        d = os.path.join(self.xdg, "smtpscope")
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, "ca.key")).st_mode), 0o600)
        pem = open(path).read()
        again = self.ca_cmd()
        self.assertNotIn("made now", again.stdout)
        self.assertEqual(open(path).read(), pem)  # kept, not made again
        text = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"],
                              capture_output=True, text=True).stdout
        self.assertIn("CA:TRUE", text)
        self.assertIn("Certificate Sign", text)

    def test_verifying_clients_trust_it(self):
        self.ca_cmd()
        ca = os.path.join(self.xdg, "smtpscope", "ca.pem")
        self.scope = h.Scope(upstream=self.up, env=self.env)
        self.scope.expect(f"the local CA {ca} issues the client leg's certificates")
        # Python, verifying, by address and by name (SNI)
        for host in ("127.0.0.1", "localhost"):
            c = smtplib.SMTP(host, self.scope.port, timeout=20)
            c.starttls(context=ssl.create_default_context(cafile=ca))
            c.login(h.USER, h.PASSWORD)
            c.sendmail(h.USER, ["bob@example.test"], f"Subject: {host}\r\n\r\nx\r\n".encode())
            c.quit()
        # curl and swaks, verifying
        r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", ca, "--url",
                            f"smtp://localhost:{self.scope.port}", "--user",
                            f"{h.USER}:{h.PASSWORD}", "--mail-from", h.USER, "--mail-rcpt",
                            "bob@example.test", "--upload-file", "-"],
                           input=b"Subject: curl\r\n\r\nx\r\n", capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["swaks", "--server", f"localhost:{self.scope.port}", "--tls",
                            "--tls-verify", "--tls-ca-path", ca, "--auth", "PLAIN",
                            "--auth-user", h.USER, "--auth-password", h.PASSWORD,
                            "--from", h.USER, "--to", "bob@example.test"],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout[-600:])
        r = subprocess.run(["msmtp", f"--host=localhost", f"--port={self.scope.port}",
                            "--tls=on", "--tls-starttls=on", f"--tls-trust-file={ca}", "--auth=on",
                            f"--user={h.USER}", f"--passwordeval=echo '{h.PASSWORD}'",
                            f"--from={h.USER}", "bob@example.test"],
                           input=b"Subject: msmtp\r\n\r\nx\r\n", capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.up.recorder.wait_messages(5)), 5)
        self.assertNotIn("TLS failure", self.scope.text())

    def test_a_client_that_does_not_trust_it_is_told(self):
        self.scope = h.Scope(upstream=self.up, env=self.env)
        c = smtplib.SMTP("localhost", self.scope.port, timeout=20)
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.starttls(context=ssl.create_default_context())  # the system store only
        c.close()
        line = self.scope.wait_for(r"\[#1\] smtpscope: error: the client (aborted|ended) the "
                                   r"TLS handshake")
        self.assertIn("does not trust smtpscope's certificate; trust smtpscope's local CA in "
                      "the client ('smtpscope ca' prints it and how), or run with "
                      "--client-tls off", line)
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertIn(" 1 TLS failure(s)", scope.wait_for(r"summary: "))


if __name__ == "__main__":
    unittest.main()
