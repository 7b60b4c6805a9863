"""Fail closed: every way the upstream TLS session can fail gives the client
421 with a reason in the transcript, and nothing of the client's upstream."""
import smtplib
import socket
import unittest

import harness as h
from aiosmtpd.controller import Controller


CA_HINT = r"; if this server uses a private or test CA, give that CA with --ca-file PATH"


class NegativeTest(h.ScopeCase):
    def greeting(self, port):
        """Connect as a client and return what it is told first."""
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        s.sendall(b"EHLO client.test\r\nMAIL FROM:<a@example.test>\r\n")
        data = b""
        s.settimeout(15)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return data

    def fail_case(self, scope_args, upstream, expect_reply, expect_reason, upstream_port=None):
        self.up = upstream
        port = upstream_port if upstream_port is not None else upstream.port
        self.scope = h.Scope(*scope_args, "--upstream", f"localhost:{port}", upstream=None)
        data = self.greeting(self.scope.port)
        self.assertEqual(data.split(b"\r\n")[0].decode(), expect_reply)
        self.assertEqual(data.count(b"\r\n"), 1, data)  # nothing else, then the close
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertRegex(self.scope.text(), expect_reason)
        return data

    def assert_nothing_relayed(self, up):
        # aiosmtpd saw only smtpscope's own EHLO: not the client's, no mail
        self.assertNotIn("client.test", up.recorder.ehlo)
        self.assertEqual(up.recorder.messages, [])

    def verify_fails(self, cert, words, hint):
        """An upstream with this certificate is refused with these words,
        in TLS 1.2 and (where smtpscope has it) in TLS 1.3 alike."""
        for tls in ("1.2", "1.3") if h.TLS13 else ("1.2",):
            with self.subTest(tls=tls):
                up = h.Upstream(cert=h.pinned(cert, tls))
                self.fail_case([], up, "421 4.7.0 upstream certificate not trusted",
                               r"smtpscope: error: upstream TLS certificate verification failed "
                               r"for localhost: " + words + r" \(TLSv" + tls.replace(".", r"\.")
                               + r".*\)" + hint)
                self.assert_nothing_relayed(up)
                rc, err = self.scope.stop()
                h.assert_clean_exit(self, rc, err)
                up.stop()
                self.scope = self.up = None

    def test_untrusted_ca(self):
        self.verify_fails("untrusted", r"The certificate is not correctly signed by the trusted CA",
                          CA_HINT)

    def test_wrong_host_name(self):
        self.verify_fails("wrongname", r"The certificate Common Name \(CN\) does not match with "
                                       r"the expected CN", r"; name the upstream as its certificate "
                                       r"does \(--upstream NAME:PORT")

    def test_expired(self):
        self.verify_fails("expired", r"The certificate validity has expired",
                          r"; the server's certificate has expired: tell its operator")

    def test_self_signed(self):
        self.verify_fails("selfsigned", r"The certificate is not correctly signed by the trusted CA",
                          CA_HINT)

    def test_address_as_upstream_warns_at_start(self):
        for addr, shown in (("127.0.0.1:2587", "127.0.0.1"), ("[::1]:2587", "::1")):
            sc = h.Scope("--upstream", addr)
            try:
                sc.expect(f"warning: --upstream {shown} is an address: the upstream's "
                          f"certificate is checked against it")
            finally:
                h.assert_clean_exit(self, *sc.stop())
        sc = h.Scope("--upstream", "127.0.0.1:2587", "--insecure")
        h.assert_clean_exit(self, *sc.stop())
        self.assertNotIn("is an address", sc.text())

    def test_no_starttls(self):
        up = h.Upstream(starttls=False, auth=False)
        self.fail_case([], up, "421 4.7.0 upstream does not offer STARTTLS",
                       r"error: upstream localhost does not offer STARTTLS: refusing to relay "
                       r"in plaintext")
        self.assert_nothing_relayed(up)

    def test_unreachable(self):
        port = h.free_port("localhost")  # nothing listens there, at any of its addresses
        self.scope = h.Scope("--upstream", f"localhost:{port}", upstream=None)
        data = self.greeting(self.scope.port)
        self.assertEqual(data, b"421 4.4.1 upstream unreachable\r\n")
        self.scope.wait_for("disconnect")
        refused = "; ".join(f"{h.addr_text(a, port)}: connection refused (ECONNREFUSED)"
                            for _, a in h.localhost_addrs())
        self.assertIn(f"error: cannot connect to upstream localhost:{port}: {refused}",
                      self.scope.text())

    def test_insecure_says_so(self):
        self.up = h.Upstream(cert="untrusted")
        self.scope = h.Scope("--insecure", upstream=self.up)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\ninsecure\r\n")
        c.quit()
        self.scope.wait_for("disconnect")
        text = self.scope.text()
        self.assertIn("certificate NOT verified (--insecure)", text.splitlines()[0])
        self.assertRegex(text, r"\[#1\] smtpscope: warning: upstream certificate NOT verified "
                               r"\(--insecure\)")
        self.assertRegex(text, r"verification: The certificate is not correctly signed")
        self.assertEqual(len(self.up.recorder.messages), 1)

    def test_starttls_refused(self):
        fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
                               ("send", b"454 4.7.0 TLS not available due to temporary reason\r\n"),
                               ("read_all",)])
        self.fail_case([], fake, "421 4.7.0 upstream refused STARTTLS",
                       r"upstream refused STARTTLS: 454 4\.7\.0 TLS not available")
        fake.done.wait(10)
        self.assertNotIn(b"client.test", bytes(fake.received[0]))
        self.assertNotIn(b"MAIL", bytes(fake.received[0]))

    def test_starttls_response_injection(self):
        fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
                               ("send", b"220 go ahead\r\n250-injected\r\n250 OK\r\n"),
                               ("read_all",)])
        self.fail_case([], fake, "421 4.7.0 upstream STARTTLS injection",
                       r"upstream sent 22 byte\(s\) after its 220 to STARTTLS, before the TLS "
                       r"handshake \(response injection\): aborting")
        fake.done.wait(10)
        self.assertNotIn(b"client.test", bytes(fake.received[0]))

    def test_handshake_failure_is_not_plaintext(self):
        """The upstream says 220 to STARTTLS, then speaks plaintext: no fallback."""
        fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
                               ("send", b"220 go ahead\r\n"), ("sleep", 0.3),
                               ("send", b"250 plaintext after all\r\n"), ("read_all",)])
        self.fail_case([], fake, "421 4.7.0 TLS handshake with upstream failed",
                       r"error: upstream TLS handshake failed: -0x[0-9a-f]{4} SSL - ")
        fake.done.wait(10)
        self.assertNotIn(b"client.test", bytes(fake.received[0]))

    def test_upstream_greeting_refusal_is_relayed(self):
        fake = h.FakeUpstream([("send", b"554 5.7.1 go away\r\n"), ("read_all",)])
        self.up = fake
        self.scope = h.Scope("--upstream", f"localhost:{fake.port}", upstream=None)
        data = self.greeting(self.scope.port)
        self.assertEqual(data, b"554 5.7.1 go away\r\n")
        self.scope.wait_for("disconnect")
        self.scope.expect("the upstream refused the session in its greeting")

    def test_implicit_tls(self):
        rec = h.Recorder()
        port = h.free_port("localhost")
        ctrl = Controller(rec, hostname="localhost", port=port, ssl_context=h.certs().context("server"),
                          server_hostname="mx.implicit.test", authenticator=rec.authenticate,
                          auth_required=True, auth_require_tls=False)
        ctrl.start()
        try:
            self.scope = h.Scope("--upstream", f"localhost:{port}", "--upstream-tls", "implicit")
            c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
            c.starttls()
            c.login(h.USER, h.PASSWORD)
            c.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nimplicit\r\n")
            c.quit()
            self.assertEqual(len(rec.wait_messages(1)), 1)
            self.scope.wait_for("disconnect")
            text = self.scope.text()
            self.assertIn("(implicit TLS, certificate verified", text)
            self.assertNotIn("upstream send: 'STARTTLS", text)
            self.assertRegex(text, r"TLS upstream: TLSv1\.[23] .*verification: ok[\s\S]*"
                                   r"upstream reply: b'220 mx\.implicit\.test")
        finally:
            ctrl.stop()

    def test_upstream_drops_during_data(self):
        fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                               ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
                               ("send", b"220 go ahead\r\n"), ("tls",), ("expect", b"EHLO"),
                               ("send", b"250 fake\r\n"), ("expect", b"ehlo"),
                               ("send", b"250 fake\r\n"), ("expect", b"mail"),
                               ("send", b"250 ok\r\n"), ("expect", b"rcpt"),
                               ("send", b"250 ok\r\n"), ("expect", b"data"),
                               ("send", b"354 go\r\n"), ("expect", b"Subject"), ("close",)])
        self.up = fake
        self.scope = h.Scope("--upstream", f"localhost:{fake.port}", upstream=None)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        with self.assertRaises((smtplib.SMTPDataError, smtplib.SMTPServerDisconnected)) as cm:
            c.sendmail("a@example.test", ["b@example.test"],
                       b"Subject: x\r\n\r\n" + b"y" * 200 + b"\r\n" * 1000)
        if isinstance(cm.exception, smtplib.SMTPDataError):
            self.assertEqual(cm.exception.smtp_code, 451)
        self.scope.wait_for("disconnect")
        self.scope.expect("smtpscope reply: b'451 4.4.2 upstream connection lost: message not accepted")
        self.assertNotIn("message accepted by the upstream", self.scope.text())


class WrongTlsModeTest(h.ScopeCase):
    """The wrong --upstream-tls for a port is recognised and said in words."""

    def test_starttls_mode_against_an_implicit_tls_port(self):
        # the server does TLS at once: it waits for a ClientHello, and says nothing
        self.fake = h.FakeUpstream([("tls",), ("read_all",)])
        self.scope = h.Scope("--upstream", f"localhost:{self.fake.port}",
                             "--timeout-greeting", "2s")
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
        self.scope.wait_for(r"no greeting from upstream (127\.0\.0\.1|\[::1\]):\d+ after 1000 ms: a port "
                            r"that expects implicit TLS \(such as 465\) waits for the client to "
                            r"start TLS; if this is one, use --upstream-tls implicit")
        self.assertEqual(h.read_reply(s, 10), b"421 4.4.2 upstream timed out\r\n")
        s.close()

    def test_implicit_mode_against_a_starttls_port(self):
        self.fake = h.FakeUpstream([("send", b"220 fake ESMTP\r\n"), ("read_all",)])
        self.scope = h.Scope("--upstream", f"localhost:{self.fake.port}",
                             "--upstream-tls", "implicit")
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
        self.assertEqual(h.read_reply(s, 10),
                         b"421 4.7.0 TLS handshake with upstream failed\r\n")
        s.close()
        self.scope.wait_for(r"error: upstream (127\.0\.0\.1|\[::1\]):\d+ sent a plaintext SMTP greeting "
                            r"\(b'220 fake ESMTP\\r\\n'\.\.\.\) where a TLS handshake was "
                            r"expected: it is a STARTTLS port; use --upstream-tls starttls")
        self.assertNotIn("-0x", self.scope.text())

    def test_start_up_warnings_for_well_known_ports(self):
        for args, want in ((["--upstream", "127.0.0.1:465", "--upstream-tls", "starttls"],
                            "upstream port 465 usually expects implicit TLS"),
                           (["--upstream", "127.0.0.1:587", "--upstream-tls", "implicit"],
                            "upstream port 587 usually speaks STARTTLS"),
                           (["--upstream", "127.0.0.1:25", "--upstream-tls", "implicit"],
                            "upstream port 25 usually speaks STARTTLS")):
            sc = h.Scope(*args)
            try:
                sc.expect(want)
            finally:
                rc, err = sc.stop()
                h.assert_clean_exit(self, rc, err)
        sc = h.Scope("--upstream", "127.0.0.1:465")
        rc, err = sc.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertNotIn("usually", sc.text())

class AddressOrderTest(h.ScopeCase):
    """localhost as a standard Debian /etc/hosts has it, ::1 before
    127.0.0.1, for smtpscope alone (its own mount namespace); the upstream
    listens on 127.0.0.1 only. smtpscope is refused at [::1] and goes on: a
    note, not a warning, when 127.0.0.1 answers; an error naming both when
    nothing does."""
    HOSTS = "::1 localhost\n127.0.0.1 localhost\n"

    def setUp(self):
        super().setUp()
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError as e:
            self.skipTest(f"no IPv6 loopback here: {e}")
        self.wrap = h.hosts_wrap(self.HOSTS)
        self.port = h.free_port(("::1", "127.0.0.1"))

    def stop(self):
        rc, err = self.scope.stop()
        h.assert_clean_exit(self, rc, err)
        text, self.scope = self.scope.text(), None
        return text

    def test_a_later_address_answers(self):
        p = self.port
        self.up = h.Upstream(host="127.0.0.1", port=p)
        self.scope = h.Scope("--upstream", f"localhost:{p}", wrap=self.wrap)
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nvia v4\r\n")
        c.quit()
        self.assertEqual(len(self.up.recorder.wait_messages(1)), 1)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        text = self.stop()
        self.assertIn(f"[#1] smtpscope: connect to [::1]:{p}: connection refused (ECONNREFUSED); "
                      f"trying 127.0.0.1:{p}\n", text + "\n")
        self.assertIn(f"[#1] smtpscope: connected to upstream localhost:{p} (127.0.0.1:{p})", text)
        self.assertNotIn("smtpscope: warning", text)
        self.assertRegex(text, r"summary: 1 session\(s\); 1 message\(s\) relayed, .* "
                               r"0 warning\(s\), 0 error\(s\)")

    def test_no_address_answers(self):
        p = self.port  # nothing listens there
        self.scope = h.Scope("--upstream", f"localhost:{p}", wrap=self.wrap)
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
        s.settimeout(15)
        self.assertEqual(s.recv(100), b"421 4.4.1 upstream unreachable\r\n")
        s.close()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        text = self.stop()
        self.assertIn(f"[#1] smtpscope: connect to [::1]:{p}: connection refused (ECONNREFUSED); "
                      f"trying 127.0.0.1:{p}\n", text + "\n")
        self.assertIn(f"[#1] smtpscope: error: cannot connect to upstream localhost:{p}: "
                      f"[::1]:{p}: connection refused (ECONNREFUSED); "
                      f"127.0.0.1:{p}: connection refused (ECONNREFUSED)", text)
        self.assertNotIn("smtpscope: warning", text)
        self.assertRegex(text, r"0 warning\(s\), \d+ error\(s\)")


if __name__ == "__main__":
    unittest.main()
