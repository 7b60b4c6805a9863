"""Protocol fidelity and hardening: pipelining, framing, limits, BDAT,
misbehaving peers, timeouts. The upstream sees exactly the transactions the
transcript shows, and the client hears success only when the upstream gave it."""
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
        self.assertIn("warning: message line 3 holds a bare LF: re-framed with CRLF, NUL dropped "
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
        for bad in (b"NOOP a\rb\r\n", b"NOOP\n", b"NOOP a\x00b\r\n"):
            self.assertEqual(talk(s, bad), b"500 5.5.2 Syntax error: bare CR, bare LF or NUL in "
                                           b"command line\r\n")
        self.assertEqual(talk(s, b"NOOP last\r\n"), b"250 ok\r\n")
        s.close()
        up = self.fake.data()
        self.assertNotIn(b"yyyy", up)
        self.assertNotIn(b"zzzz", up)
        self.assertNotIn(b"a\rb", up)
        self.assertNotIn(b"a\x00b", up)


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
        text = self.scope.text()
        self.assertIn(f"BDAT chunk of {len(chunk1)} octets relayed as is", text)
        self.assertIn("message accepted by the upstream", text)

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
        self.scope.expect("TCP closed without TLS close_notify (truncation)")


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
        # a listener whose accept queue is full drops SYNs: the connect hangs
        blackhole = socket.socket()
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        port = blackhole.getsockname()[1]
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
            self.skipTest("could not make a listener drop SYNs here")
        try:
            self.scope = h.Scope("--upstream", f"localhost:{port}", "--timeout-connect", "300ms")
            s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=15)
            self.assertEqual(read_until_closed(s), b"421 4.4.1 upstream unreachable\r\n")
            self.scope.wait_for(r"no connection within 300 ms")
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
