"""Protocol fidelity and hardening: pipelining, framing, limits, BDAT,
misbehaving peers, timeouts. The upstream sees exactly the transactions the
transcript shows, and the client hears success only when the upstream gave it."""
import os
import smtplib
import socket
import time
import unittest

import harness as h

CAPS = b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
CAPS_CHUNKING = b"250-fake\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 BINARYMIME\r\n"


def client(port):
    """A raw client that has read the greeting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    greeting = h.read_reply(s)
    assert greeting.startswith(b"220 "), greeting
    return s


def talk(s, data):
    s.sendall(data)
    return h.read_reply(s)


def read_until_closed(s, timeout=15):
    s.settimeout(timeout)
    data = h._leftover.pop(s, b"")
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, socket.timeout):
        pass
    return data


class FakeCase(h.ScopeCase):
    """smtpscope in front of a scripted fake upstream."""

    def start(self, script, *args):
        self.fake = h.FakeUpstream(script)
        self.scope = h.Scope(*args, "--upstream", f"localhost:{self.fake.port}")
        return self.scope


class PipeliningTest(FakeCase):
    def test_group_relayed_without_round_trips(self):
        # the fake answers nothing until it has read the whole group: if
        # smtpscope waited for a reply between commands, this would hang
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL FROM:<a@x>"), ("expect", b"RCPT TO:<b@x>"),
            ("expect", b"RCPT TO:<c@x>"), ("expect", b"DATA"),
            ("send", b"250 2.1.0 mail ok\r\n250 2.1.5 b ok\r\n550 5.1.1 c unknown\r\n"
                     b"354 go\r\n"),
            ("read_until", b"\r\n.\r\n"), ("send", b"250 2.0.0 queued\r\n"),
            ("expect", b"QUIT"), ("send", b"221 bye\r\n"), ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n")
        got = b""
        while got.count(b"\r\n") < 4:
            got += s.recv(65536)
        self.assertEqual(got, b"250 2.1.0 mail ok\r\n250 2.1.5 b ok\r\n550 5.1.1 c unknown\r\n"
                              b"354 go\r\n")
        self.assertEqual(talk(s, b"hello\r\n.\r\n"), b"250 2.0.0 queued\r\n")
        self.assertEqual(talk(s, b"QUIT\r\n"), b"221 bye\r\n")
        s.close()
        self.scope.wait_for("disconnect")
        lines = self.scope.session_lines(1)
        # each reply right after... in order, paired with its command
        sends = [l for l in lines if l.startswith(("send: ", "reply: "))]
        i = sends.index("send: 'RCPT TO:<c@x>\\r\\n'")
        self.assertEqual(sends[i + 1:i + 6], [
            "send: 'DATA\\r\\n'", "reply: b'250 2.1.0 mail ok\\r\\n'",
            "reply: b'250 2.1.5 b ok\\r\\n'", "reply: b'550 5.1.1 c unknown\\r\\n'",
            "reply: b'354 go\\r\\n'"])

    def test_sync_point_holds_what_follows(self):
        """Nothing after EHLO is forwarded before EHLO's reply."""
        self.start([("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
                    ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
                    ("send", b"220 go ahead\r\n"), ("tls",), ("expect", b"EHLO"),
                    ("send", b"250 fake\r\n"),
                    ("expect", b"EHLO c"), ("expect_nothing", 0.5), ("send", CAPS),
                    ("expect", b"MAIL FROM:<a@x>"), ("send", b"250 ok\r\n"), ("read_all",)])
        s = client(self.scope.port)
        s.sendall(b"EHLO c\r\nMAIL FROM:<a@x>\r\n")
        self.assertIn(b"250-PIPELINING", h.read_reply(s))
        self.assertEqual(h.read_reply(s), b"250 ok\r\n")
        s.close()
        self.fake.done.wait(10)
        self.assertEqual(self.fake.errors, [])

    def test_data_before_354_is_a_sync_error(self):
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"), ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nSubject: early\r\n\r\n.\r\n"
                  b"MAIL FROM:<evil@x>\r\n")
        data = read_until_closed(s)
        self.assertEqual(data, b"250 ok\r\n250 ok\r\n554 5.5.0 SMTP synchronization error: "
                               b"data sent before 354\r\n")
        up = self.fake.data()
        self.assertNotIn(b"early", up)
        self.assertNotIn(b"evil", up)
        self.scope.expect("upstream reply: b'354 go\\r\\n'")


class PipelinedFloodOverTlsTest(FakeCase):
    def test_replies_are_not_overwritten_by_held_client_bytes(self):
        # The client (over TLS) pipelines 6000 RCPTs: 256 wait for replies,
        # the rest are held, past 64 KB, so its leg pauses with TLS records
        # still undecrypted. The upstream answers each 256 in one TLS record.
        # While smtpscope parses that record, the first reply frees room and
        # resumes the client leg, whose TLS delivers at once: that plaintext
        # must not land on the upstream's replies still being parsed.
        n, batch = 6000, 256
        rcpts = [f"RCPT TO:<recipient-{i:05d}@example.test>\r\n".encode() for i in range(n)]
        script = h.tls_prelude(CAPS) + [("expect", b"EHLO"), ("send", CAPS), ("expect", b"MAIL"),
                                        ("send", b"250 2.1.0 ok\r\n")]
        for k in range(0, n, batch):
            last = min(k + batch, n)
            script += [("read_until", rcpts[last - 1]),
                       ("send", b"".join(b"250 2.1.5 ok %d\r\n" % i for i in range(k, last)))]
        script += [("expect", b"QUIT"), ("send", b"221 bye\r\n"), ("read_all",)]
        self.start(script)
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        self.assertTrue(talk(s, b"STARTTLS\r\n").startswith(b"220"))
        t = h.client_tls(s)
        talk(t, b"EHLO c\r\n")
        self.assertTrue(talk(t, b"MAIL FROM:<a@x>\r\n").startswith(b"250"))
        self.assertGreater(len(b"".join(rcpts)), 64 * 1024)
        t.sendall(b"".join(rcpts))
        got = b""
        t.settimeout(30)
        while got.count(b"\r\n") < n:
            chunk = t.recv(65536)
            if not chunk:
                break
            got += chunk
        self.assertEqual(got, b"".join(b"250 2.1.5 ok %d\r\n" % i for i in range(n)))
        self.assertTrue(talk(t, b"QUIT\r\n").startswith(b"221"))
        self.assertNotIn("malformed reply", self.scope.text())


class FramingTest(FakeCase):
    def run_data(self, body, *args, final=b"250 2.0.0 queued\r\n"):
        """Send body (raw bytes, ending the DATA) and return (reply, upstream bytes)."""
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_until", b"\r\n.\r\n"), ("send", final), ("read_all",)], *args)
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        self.assertEqual(talk(s, b"DATA\r\n"), b"354 go\r\n")
        for piece in body:
            s.sendall(piece)
            time.sleep(0.05)
        reply = h.read_reply(s, timeout=15)
        s.close()
        up = self.fake.data()
        return reply, up[up.index(b"DATA\r\n") + 6:]

    def test_valid_message_is_byte_exact(self):
        body = b"Subject: x\r\n\r\n..leading dot\r\n.x\r\n\xff\xfe 8-bit\r\n\r\n.\r\n"
        reply, up = self.run_data([body])
        self.assertEqual(reply, b"250 2.0.0 queued\r\n")
        self.assertEqual(up, body)

    def test_bare_lf_smuggling_normalized(self):
        # "\n.\n" and "\n.\r\n" are end of data for lenient MTAs: smtpscope
        # must hand the upstream a message whose only end is its own
        body = (b"Subject: x\r\n\r\nline1\n.\nMAIL FROM:<evil@x>\nRCPT TO:<victim@x>\n"
                b"DATA\n.\r\ndone\r\n", b"a\r.\rb\x00\r\n.\r\n")
        reply, up = self.run_data(body)
        self.assertEqual(reply, b"250 2.0.0 queued\r\n")
        self.assertEqual(up, b"Subject: x\r\n\r\nline1\r\n..\r\nMAIL FROM:<evil@x>\r\n"
                             b"RCPT TO:<victim@x>\r\nDATA\r\n..\r\ndone\r\na\r\n..\r\nb\r\n.\r\n")
        # the output holds no bare CR or LF, and one end of data: the last
        self.assertNotRegex(up, rb"\r(?!\n)|(?<!\r)\n")
        self.assertEqual(up.count(b"\r\n.\r\n"), 1)
        self.assertTrue(up.endswith(b"\r\n.\r\n"))
        text = self.scope.text()
        self.assertIn("warning: message line 3 holds a bare LF: re-framed with CRLF "
                      "(--bare-lf normalize)", text)

    def test_bare_lf_reject(self):
        body = (b"Subject: x\r\n\r\nline1\n.\nMAIL FROM:<evil@x>\r\n.\r\n",)
        self.fake = None
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_all",)], "--bare-lf", "reject")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        talk(s, b"DATA\r\n")
        self.assertEqual(talk(s, body[0]),
                         b"550 5.6.0 Message contains a bare LF, bare CR or NUL; refused\r\n")
        self.assertEqual(talk(s, b"QUIT\r\n"), b"221 2.0.0 Bye\r\n")
        up = self.fake.data()
        data = up[up.index(b"DATA\r\n") + 6:]
        self.assertNotIn(b"\r\n.\r\n", data)  # never committed
        self.scope.expect("message NOT submitted")

    def test_end_of_data_split_everywhere(self):
        """The end of data is found whatever the TCP split."""
        body = b"a\r\n.b\r\n\r\n.\r\n"
        pieces = [bytes([c]) for c in body]
        reply, up = self.run_data(pieces)
        self.assertEqual(reply, b"250 2.0.0 queued\r\n")
        self.assertEqual(up, body)


class CommandLimitsTest(FakeCase):
    def test_command_lines(self):
        ok = b"NOOP " + b"x" * (2048 - 7) + b"\r\n"
        self.assertEqual(len(ok), 2048)
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP xxx"), ("send", b"250 noop\r\n"),
                                          ("expect", b"NOOP last"), ("send", b"250 ok\r\n"),
                                          ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        self.assertEqual(talk(s, ok), b"250 noop\r\n")
        self.assertEqual(talk(s, b"NOOP " + b"y" * 2044 + b"\r\n"), b"500 5.5.6 Line too long\r\n")
        self.assertEqual(talk(s, b"NOOP " + b"z" * 200000 + b"\r\n"),
                         b"500 5.5.6 Line too long\r\n")
        for bad in (b"NOOP a\rb\r\n", b"NOOP\nNOOP b\r\n", b"NOOP a\x00b\r\n"):
            self.assertEqual(talk(s, bad), b"500 5.5.2 Syntax error: bare CR, bare LF or NUL in "
                                           b"command line\r\n")
        self.assertEqual(talk(s, b"NOOP last\r\n"), b"250 ok\r\n")
        s.close()
        up = self.fake.data()
        self.assertNotIn(b"yyyy", up)
        self.assertNotIn(b"zzzz", up)
        self.assertNotIn(b"a\rb", up)
        self.assertNotIn(b"a\x00b", up)
        self.assertNotIn(b"NOOP b", up)


BARE = b"500 5.5.2 Syntax error: bare CR, bare LF or NUL in command line\r\n"


class BareLineEndTest(FakeCase):
    """A command line ends at CRLF only: a bare LF, bare CR or NUL before it
    makes the whole line one bad line, answered once and never relayed."""

    def test_relay_one_line_one_reply(self):
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL FROM:<c@example.org>"), ("send", b"250 2.1.0 ok\r\n"),
            ("expect", b"AUTH LOGIN"), ("send", b"334 VXNlcm5hbWU6\r\n"),
            ("expect", b"*"), ("send", b"501 5.7.0 cancelled\r\n"),
            ("expect", b"NOOP"), ("send", b"250 2.0.0 noop\r\n"), ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\r\n"
                  b"MAIL FROM:<c@example.org>\r\n")
        self.assertEqual(h.read_reply(s), BARE)
        self.assertEqual(h.read_reply(s), b"250 2.1.0 ok\r\n")
        self.assertEqual(talk(s, b"AUTH LOGIN\r\n"), b"334 VXNlcm5hbWU6\r\n")
        # an AUTH response with a bare LF: not relayed; the exchange is
        # cancelled upstream and the client hears one 500
        s.sendall(b"dXNlcg==\nc2VjcmV0\r\nNOOP\r\n")
        self.assertEqual(h.read_reply(s), BARE)
        self.assertEqual(h.read_reply(s), b"250 2.0.0 noop\r\n")
        s.close()
        up = self.fake.data()
        self.assertEqual(self.fake.errors, [])
        self.assertNotIn(b"a@example.org", up)
        self.assertNotIn(b"b@example.net", up)
        self.assertNotIn(b"dXNlcg", up)
        self.assertNotIn(b"c2VjcmV0", up)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        text = self.scope.text()
        self.assertIn("warning: command line holds a bare LF before its CRLF: not relayed", text)
        self.assertNotIn("c2VjcmV0", text)

    def test_lf_only_line_waits_for_crlf(self):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP b"), ("send", b"250 ok\r\n"),
                                          ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"NOOP a\n")
        self.scope.expect("an SMTP command line ends only at CRLF")
        s.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            s.recv(100)  # no reply until the line ends
        self.assertEqual(talk(s, b"\r\n"), BARE)
        self.assertEqual(talk(s, b"NOOP b\r\n"), b"250 ok\r\n")
        s.close()
        self.assertNotIn(b"NOOP a", self.fake.data())

    def test_sink_split_at_every_offset(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="smtpscope-bare-")
        self.addCleanup(shutil.rmtree, d, True)
        self.scope = h.Scope("--sink", d, "--quiet", ca=False)
        cases = [
            # (what the client sends after EHLO, the replies it must get)
            (b"MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\r\n"
             b"MAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\nNOOP\r\n",
             [BARE, b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"250 2.0.0 Ok\r\n"]),
            (b"MAIL FROM:<a@example.org>\rRCPT TO:<b@example.net>\r\nNOOP\r\n",
             [BARE, b"250 2.0.0 Ok\r\n"]),
            (b"RSET\x00\r\nMAIL FROM:<c@example.org>\r\n", [BARE, b"250 2.1.0 Ok\r\n"]),
            (b"BDAT 3\nLAST\r\nNOOP\r\n", [BARE, b"250 2.0.0 Ok\r\n"]),
            (b"AUTH LOGIN\r\ndXNlcg==\nc2VjcmV0\r\nNOOP\r\n",
             [b"334 VXNlcm5hbWU6\r\n", BARE, b"250 2.0.0 Ok\r\n"]),
        ]
        for blob, want in cases:
            for cut in range(1, len(blob)):
                s = client(self.scope.port)
                talk(s, b"EHLO c\r\n")
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(blob[:cut])
                time.sleep(0.002)
                s.sendall(blob[cut:])
                got = [h.read_reply(s) for _ in want]
                self.assertEqual(got, want, f"{blob!r} cut at {cut}")
                self.assertEqual(talk(s, b"QUIT\r\n"), b"221 2.0.0 Bye\r\n")
                s.close()
        self.assertNotIn("c2VjcmV0", self.scope.text())


def shim_env(prefix):
    """smtpscope with tests/shim/failwrite.c preloaded: its TLS write of
    plaintext starting with prefix fails."""
    shim = os.environ.get("SMTPSCOPE_SHIM")
    if not shim:
        raise unittest.SkipTest("SMTPSCOPE_SHIM not set (run through ctest)")
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": shim, "SMTPSCOPE_FAIL_WRITE": prefix,
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


class WriteFailureTest(FakeCase):
    """A write that fails ends its leg at once, says so, and gives the other
    side the right reply: never a stall until a timeout."""

    def start_shim(self, script, prefix):
        self.fake = h.FakeUpstream(script)
        self.scope = h.Scope("--upstream", f"localhost:{self.fake.port}",
                             "--timeout-command", "60s", env=shim_env(prefix))

    def test_upstream_write_fails_before_data_is_421(self):
        self.start_shim(h.tls_prelude(CAPS) + [("read_all",)], "MAIL FROM:<a@example.test>")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        t0 = time.time()
        self.assertEqual(talk(s, b"MAIL FROM:<a@example.test>\r\n"),
                         b"421 4.4.2 upstream connection lost\r\n")
        self.assertLess(time.time() - t0, 5)
        self.assertEqual(read_until_closed(s, 10), b"")
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertRegex(self.scope.text(), r"error: upstream connection ended \(TLS write failed: ")
        self.assertNotIn(b"MAIL FROM", self.fake.data())

    def test_upstream_write_fails_in_data_is_451(self):
        self.start_shim(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_all",)], "Subject: fail-here")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        self.assertEqual([h.read_reply(s) for _ in range(3)],
                         [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"])
        t0 = time.time()
        s.sendall(b"Subject: fail-here\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(h.read_reply(s),
                         b"451 4.4.2 upstream connection lost: message not accepted\r\n")
        self.assertLess(time.time() - t0, 5)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertNotIn(b"fail-here", self.fake.data())
        self.assertNotIn("message accepted", self.scope.text())

    def test_client_write_fails(self):
        self.start_shim(h.tls_prelude(CAPS) + [
            ("expect", b"EHLO"), ("send", CAPS),
            ("expect", b"MAIL"), ("send", b"250 2.1.0 sender fails\r\n"), ("read_all",)],
            "250 2.1.0 sender fails")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        self.assertEqual(talk(s, b"STARTTLS\r\n"), b"220 2.0.0 Ready to start TLS\r\n")
        s = h.client_tls(s)
        talk(s, b"EHLO c\r\n")
        t0 = time.time()
        s.sendall(b"MAIL FROM:<a@x>\r\n")
        self.assertEqual(read_until_closed(s, 10), b"")  # closed, not left waiting
        self.assertLess(time.time() - t0, 5)
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        self.assertRegex(self.scope.text(),
                         r"error: writing to the client failed \(TLS write failed: ")


class SinkFloodTest(h.ScopeCase):
    def test_pipelined_far_past_the_queue(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="smtpscope-flood-")
        self.addCleanup(shutil.rmtree, d, True)
        self.scope = h.Scope("--sink", d, "--quiet", ca=False)
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        n = 5000
        s.sendall(b"MAIL FROM:<a@x>\r\n" + b"".join(b"NOOP %d\r\n" % i for i in range(n)) +
                  b"QUIT\r\n")
        got = read_until_closed(s, 30)
        self.assertEqual(got, b"250 2.1.0 Ok\r\n" + b"250 2.0.0 Ok\r\n" * n +
                         b"221 2.0.0 Bye\r\n")


class BdatTest(FakeCase):
    def test_chunks_relayed_opaque(self):
        chunk1 = b"Subject: b\r\n\r\n.\r\nnot the end\r\n"
        self.start(h.tls_prelude(CAPS_CHUNKING) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("read_until", b"BDAT 5 LAST\r\nabcde"),
            ("send", b"250 chunk\r\n250 2.0.0 queued\r\n"), ("expect", b"QUIT"),
            ("send", b"221 bye\r\n"), ("read_all",)])
        s = client(self.scope.port)
        caps = talk(s, b"EHLO c\r\n")
        self.assertIn(b"CHUNKING", caps)
        self.assertIn(b"BINARYMIME", caps)
        s.sendall(b"MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        s.sendall(b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT 5 LAST\r\nabcde")
        self.assertEqual(h.read_reply(s), b"250 chunk\r\n")
        self.assertEqual(h.read_reply(s), b"250 2.0.0 queued\r\n")
        self.assertEqual(talk(s, b"QUIT\r\n"), b"221 bye\r\n")
        s.close()
        up = self.fake.data()
        self.assertIn(b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT 5 LAST\r\nabcde", up)
        # the console may be behind the replies: wait for its lines
        self.scope.expect(f"BDAT chunk of {len(chunk1)} octets relayed as is")
        self.scope.expect("message accepted by the upstream")

    def test_malformed_size_closes(self):
        self.start(h.tls_prelude(CAPS_CHUNKING) + [("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"BDAT 12x\r\nhello world\r\n")
        self.assertEqual(read_until_closed(s),
                         b"501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing the connection\r\n")
        self.assertNotIn(b"BDAT", self.fake.data())

    def test_refused_chunk_is_consumed(self):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP"), ("send", b"250 ok\r\n"),
                                          ("read_all",)])
        s = client(self.scope.port)
        self.assertNotIn(b"CHUNKING", talk(s, b"EHLO c\r\n"))
        s.sendall(b"BDAT 12\r\nNOOP\r\nQUIT\r\n")  # 12 octets of chunk, not commands
        self.assertEqual(h.read_reply(s), b"502 5.5.1 BDAT not available: the upstream does not "
                                          b"offer CHUNKING\r\n")
        self.assertEqual(talk(s, b"NOOP\r\n"), b"250 ok\r\n")
        s.close()
        self.assertEqual(self.fake.data().count(b"NOOP"), 1)

    def test_client_gone_mid_chunk(self):
        self.start(h.tls_prelude(CAPS_CHUNKING) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        s.sendall(b"BDAT 100 LAST\r\nonly part")
        time.sleep(0.2)
        s.close()
        self.scope.wait_for("disconnect")
        self.scope.expect("client went away inside a BDAT chunk (91 octets missing): the message was "
                      "NOT submitted")
        self.assertTrue(self.fake.data().endswith(b"BDAT 100 LAST\r\nonly part"))


class MisbehavingUpstreamTest(FakeCase):
    def bad_reply(self, reply, reason):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP"), ("send", reply), ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"NOOP\r\n")
        data = read_until_closed(s)
        self.assertEqual(data, b"421 4.4.2 upstream sent a malformed reply\r\n")
        self.scope.wait_for("disconnect")
        self.scope.expect(reason)
        lines = self.scope.session_lines(1)
        after = lines[lines.index("send: 'NOOP\\r\\n'") + 1:]
        self.assertEqual([l for l in after if l.startswith("reply: ")], [])

    def test_bad_code(self):
        self.bad_reply(b"25O ok\r\n", "reply line without a valid code")

    def test_mixed_continuation(self):
        self.bad_reply(b"250-a\r\n251 b\r\n", "continuation line with another code")

    def test_overlong_line(self):
        self.bad_reply(b"250 " + b"x" * 5000 + b"\r\n", "reply line too long")

    def test_endless_continuation(self):
        self.bad_reply(b"250-x\r\n" * 200, "reply too long (lines or bytes)")

    def test_bare_lf_reply(self):
        self.bad_reply(b"250 ok\n", "reply line not ended by CRLF")

    def test_unsolicited_reply(self):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP"), ("send", b"250 ok\r\n250 extra\r\n"),
                                          ("read_all",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"NOOP\r\n")
        self.assertEqual(read_until_closed(s), b"250 ok\r\n421 4.4.2 upstream protocol error\r\n")
        self.scope.expect("upstream sent a reply no command asked for")

    def test_drop_after_end_of_data_is_451(self):
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_until", b"\r\n.\r\n"), ("rst",)])
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=15)
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            c.sendmail("a@x", ["b@x"], b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(cm.exception.smtp_code, 451)
        self.scope.wait_for("disconnect")
        self.assertNotIn("message accepted", self.scope.text())

    def test_tls_truncation_reported(self):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP"), ("close",)])
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"NOOP\r\n")
        self.assertEqual(read_until_closed(s), b"421 4.4.2 upstream connection lost\r\n")
        self.scope.expect("the upstream closed TCP without TLS close_notify (truncation)")


class TimeoutTest(FakeCase):
    def test_command_timeout(self):
        self.start(h.tls_prelude(CAPS) + [("expect", b"NOOP"), ("read_all",)],
                   "--timeout-command", "400ms")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        t0 = time.time()
        s.sendall(b"NOOP\r\n")
        self.assertEqual(read_until_closed(s), b"421 4.4.2 upstream timed out\r\n")
        self.assertGreater(time.time() - t0, 0.35)
        self.scope.expect("upstream did not answer NOOP within 400 ms")

    def test_final_reply_timeout(self):
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_all",)], "--timeout-final", "500ms")
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=15)
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            c.sendmail("a@x", ["b@x"], b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(cm.exception.smtp_code, 451)
        self.scope.expect("upstream did not answer end of data within 500 ms")

    def test_greeting_timeout(self):
        self.start([("read_all",)], "--timeout-greeting", "300ms")
        s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
        self.assertEqual(read_until_closed(s), b"421 4.4.2 upstream timed out\r\n")
        self.scope.expect("upstream did not answer GREETING within 300 ms")

    def test_idle_and_data_timeouts(self):
        self.start(h.tls_prelude(CAPS) + [
            ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("read_all",)], "--timeout-idle", "300ms", "--timeout-data", "300ms")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n")
        h.read_reply(s)
        h.read_reply(s)
        talk(s, b"DATA\r\n")
        s.sendall(b"Subject: half\r\n")
        self.assertEqual(read_until_closed(s),
                         b"421 4.4.2 Timeout waiting for client input; closing\r\n")
        self.scope.expect("client sent no message data for 300 ms: the message was NOT submitted")
        self.assertNotIn(b"\r\n.\r\n", self.fake.data())

    def test_client_idle(self):
        self.start(h.tls_prelude(CAPS) + [("read_all",)], "--timeout-idle", "300ms")
        s = client(self.scope.port)
        talk(s, b"EHLO c\r\n")
        self.assertEqual(read_until_closed(s),
                         b"421 4.4.2 Timeout waiting for client input; closing\r\n")
        self.scope.expect("client idle for 300 ms")

    def test_connect_timeout_tries_next(self):
        # up.test is 127.0.0.1, then 127.0.0.2 (for smtpscope alone; glibc
        # puts 127.0.0.1 first, RFC 6724 rule 9); at 127.0.0.1 a listener whose
        # accept queue is full drops SYNs, so that connect hangs until
        # --timeout-connect; 127.0.0.2 answers
        wrap = h.hosts_wrap("127.0.0.1 up.test\n127.0.0.2 up.test\n")
        for _ in range(20):  # the fake's port on 127.0.0.2 may be in use on 127.0.0.1
            self.fake = h.FakeUpstream(h.tls_prelude(CAPS) + [("expect", b"QUIT"),
                                                              ("send", b"221 bye\r\n"),
                                                              ("read_all",)],
                                       cert="uptest", host="127.0.0.2")
            port = self.fake.port
            blackhole = socket.socket()
            try:
                blackhole.bind(("127.0.0.1", port))
                break
            except OSError:
                blackhole.close()
                self.fake.stop()
        blackhole.listen(0)
        fillers = []
        for _ in range(64):  # fill the queue until a connect no longer completes
            f = socket.socket()
            f.settimeout(0.3)
            fillers.append(f)
            try:
                f.connect(("127.0.0.1", port))
            except (socket.timeout, TimeoutError):
                break
        else:
            self.fail("could not make a listener drop SYNs here")
        try:
            self.scope = h.Scope("--upstream", f"up.test:{port}", "--timeout-connect", "300ms",
                                 wrap=wrap)
            s = client(self.scope.port)  # the greeting came: the next address answered
            self.assertIn(b"8BITMIME", talk(s, b"EHLO c\r\n"))
            self.assertEqual(talk(s, b"QUIT\r\n"), b"221 bye\r\n")
            s.close()
            self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
            text = self.scope.text()
            self.assertIn(f"connect to 127.0.0.1:{port}: no connection within 300 ms; trying "
                          f"127.0.0.2:{port}", text)
            self.assertIn(f"connected to upstream up.test:{port} (127.0.0.2:{port})", text)
        finally:
            for f in fillers:
                f.close()
            blackhole.close()


class MaxSessionsTest(FakeCase):
    def test_over_the_limit(self):
        up = h.Upstream()
        try:
            self.scope = h.Scope("--max-sessions", "2", upstream=up)
            a = client(self.scope.port)
            b = client(self.scope.port)
            c = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
            self.assertEqual(read_until_closed(c), b"421 4.3.2 Too many sessions, try again later\r\n")
            self.scope.expect("connection refused with 421 4.3.2: 2 sessions open "
                              "(--max-sessions 2)")
            a.close()
            self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
            d = client(self.scope.port)  # room again
            d.close()
            b.close()
        finally:
            up.stop()


if __name__ == "__main__":
    unittest.main()
