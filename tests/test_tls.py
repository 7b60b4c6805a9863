"""TLS versions on both legs: TLS 1.3 where the peer offers it and
smtpscope's mbedTLS has it (3.6), TLS 1.2 against a 1.2-only peer, and
upstream resumption in both."""
import smtplib
import ssl
import unittest

import harness as h


class TlsVersionTest(h.ScopeCase):
    """TLS 1.3 on either leg when the peer offers it, TLS 1.2 against a
    1.2-only peer, and upstream resumption in both (the second session
    resumes the first's session: a 1.2 ticket, or a 1.3 ticket that came
    after the handshake)."""

    def relay_twice(self, upstream_tls=None, client_tls=None):
        self.up = h.Upstream(cert=h.pinned("server", upstream_tls))
        self.scope = h.Scope(upstream=self.up)
        for i in (1, 2):
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            h.pin(ctx, client_tls)
            c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=20)
            c.starttls(context=ctx)
            c.login(h.USER, h.PASSWORD)
            c.sendmail("a@example.test", ["b@example.test"], b"Subject: %d\r\n\r\nhi\r\n" % i)
            c.quit()
            self.scope.wait_for(rf"\[#{i}\] smtpscope: disconnect")
        self.assertEqual(len(self.up.recorder.wait_messages(2)), 2)
        return [self.scope.session_lines(i) for i in (1, 2)]

    def tls_line(self, lines, leg):
        found = [l for l in lines if l.startswith(f"smtpscope: TLS {leg}: ")]
        self.assertEqual(len(found), 1, lines)
        return found[0]

    @unittest.skipUnless(h.TLS13, h.NO_TLS13)
    def test_tls13_upstream_and_resumption(self):
        s1, s2 = self.relay_twice(upstream_tls="1.3")
        for lines, resumed in ((s1, False), (s2, True)):
            self.assertRegex(self.tls_line(lines, "upstream"),
                             r"^smtpscope: TLS upstream: TLSv1\.3 TLS1-3-CHACHA20-POLY1305-SHA256 "
                             r"x25519; subject \"CN=localhost\", issuer \"CN=smtpscope test ca"
                             + h.VALID_RX + r"; verification: ok"
                             + ("; session resumed$" if resumed else "$"))

    def test_tls12_only_upstream_and_resumption(self):
        s1, s2 = self.relay_twice(upstream_tls="1.2")
        for lines, resumed in ((s1, False), (s2, True)):
            # TLS 1.2's line is as it always was: version and suite (the
            # server's pick), no group
            self.assertRegex(self.tls_line(lines, "upstream"),
                             r"^smtpscope: TLS upstream: TLSv1\.2 "
                             r"TLS-ECDHE-ECDSA-WITH-[A-Z0-9-]+; subject "
                             r"\"CN=localhost\", issuer \"CN=smtpscope test ca" + h.VALID_RX
                             + r"; verification: ok"
                             + ("; session resumed$" if resumed else "$"))

    @unittest.skipUnless(h.TLS13, h.NO_TLS13)
    def test_tls13_client(self):
        s1, _ = self.relay_twice(client_tls="1.3")
        self.assertEqual(self.tls_line(s1, "client"),
                         "smtpscope: TLS client: TLSv1.3 TLS1-3-CHACHA20-POLY1305-SHA256 x25519 "
                         "(smtpscope's certificate)")

    def test_tls12_only_client(self):
        s1, _ = self.relay_twice(client_tls="1.2")
        self.assertEqual(self.tls_line(s1, "client"),
                         "smtpscope: TLS client: TLSv1.2 "
                         "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256 (smtpscope's certificate)")


if __name__ == "__main__":
    unittest.main()
