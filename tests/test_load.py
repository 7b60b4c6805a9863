"""Big messages arrive byte-exact; many concurrent sessions all arrive intact."""
import random
import smtplib
import threading
import unittest

import harness as h


def big_message(size, seed):
    """Lines of printable and 8-bit bytes, with dot-leading lines ("." alone,
    "..", ".x"), each at most 998 bytes, CRLF-ended."""
    rnd = random.Random(seed)
    out = bytearray(b"Subject: big\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    specials = [b".", b"..", b".hidden", b". ", b"...\xff"]
    while len(out) < size:
        if rnd.random() < 0.1:
            line = rnd.choice(specials)
        else:
            n = rnd.randint(0, 200)
            line = bytes(rnd.choice(range(0x20, 0x100)) for _ in range(n)).replace(b"\x7f", b"~")
        out += line + b"\r\n"
    return bytes(out)


class LoadTest(unittest.TestCase):
    def setUp(self):
        self.up = h.Upstream()
        self.scope = h.Scope(upstream=self.up)

    def tearDown(self):
        rc, err = self.scope.stop()
        self.assertEqual(rc, 0, err)
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error", err)
        self.up.stop()

    def send(self, body, sender="a@example.test"):
        c = smtplib.SMTP("127.0.0.1", self.scope.port, timeout=120)
        c.starttls()
        c.login(h.USER, h.PASSWORD)
        c.sendmail(sender, ["b@example.test"], body)
        c.quit()

    def test_multi_megabyte_byte_exact(self):
        body = big_message(4 * 1024 * 1024, 1)
        self.assertIn(b"\r\n.\r\n", body)  # a lone dot line, which the client stuffs
        self.send(body)
        msgs = self.up.recorder.wait_messages(1, timeout=60)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(len(msgs[0][2]), len(body))
        self.assertTrue(msgs[0][2] == body, "content differs")
        self.scope.wait_for("disconnect")
        text = self.scope.text()
        self.assertRegex(text, r"message: \d+ lines, \d+ bytes; \d+ lines \(\d+ bytes\) not "
                               r"shown \(--body-lines 20\)")
        self.assertLess(len(text), 64 * 1024)  # the transcript stays bounded

    def test_fifty_concurrent_sessions(self):
        n = 50
        bodies = {f"s{i}@example.test": big_message(20000 + i * 97, 100 + i) for i in range(n)}
        errors = []

        def run(sender, body):
            try:
                self.send(body, sender)
            except Exception as e:  # reported below
                errors.append((sender, e))

        threads = [threading.Thread(target=run, args=kv) for kv in bodies.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        msgs = self.up.recorder.wait_messages(n, timeout=60)
        self.assertEqual(len(msgs), n)
        for sender, rcpts, content in msgs:
            self.assertEqual(content, bodies[sender], sender)
        text = self.scope.text()
        self.assertEqual(text.count("smtpscope: message accepted by the upstream"), n)
        self.scope.wait_for(r"\[#50\] smtpscope: disconnect")


if __name__ == "__main__":
    unittest.main()


class SlowUpstreamMemoryTest(unittest.TestCase):
    """A 100 MB message to an upstream that reads slowly: smtpscope's memory
    stays flat (backpressure, including for bytes already decrypted inside
    mbedTLS on the client leg)."""

    def test_rss_flat(self):
        import socket
        import ssl
        import os
        size = 100 * 1024 * 1024
        fake = h.FakeUpstream(h.tls_prelude(b"250 fake\r\n") + [
            ("expect", b"EHLO"), ("send", b"250 fake\r\n"), ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("slow_read_until", b"\r\n.\r\n", 40 * 1024 * 1024),
            ("send", b"250 2.0.0 queued\r\n"), ("read_all",)])
        # ASan's quarantine keeps freed memory resident: keep it small here
        asan = os.environ.get("ASAN_OPTIONS", "")
        sc = h.Scope("--upstream", f"localhost:{fake.port}",
                     env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"})
        try:
            s = socket.create_connection(("127.0.0.1", sc.port), timeout=60)
            h.read_reply(s)
            s.sendall(b"EHLO c\r\n")
            h.read_reply(s)
            s.sendall(b"STARTTLS\r\n")
            self.assertTrue(h.read_reply(s).startswith(b"220"))
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            t = ctx.wrap_socket(s, server_hostname="localhost")
            t.sendall(b"EHLO c\r\n")
            h.read_reply(t)
            t.sendall(b"MAIL FROM:<a@x>\r\n")
            h.read_reply(t)
            t.sendall(b"RCPT TO:<b@x>\r\n")
            h.read_reply(t)
            t.sendall(b"DATA\r\n")
            self.assertEqual(h.read_reply(t), b"354 go\r\n")
            base = sc.status("VmRSS")
            line = b"x" * 1022 + b"\r\n"
            block = line * 1024  # 1 MiB
            peak = 0
            for i in range(size // len(block)):
                t.sendall(block)
                if i % 8 == 0:
                    peak = max(peak, sc.status("VmRSS"))
            t.sendall(b".\r\n")
            self.assertEqual(h.read_reply(t, timeout=120), b"250 2.0.0 queued\r\n")
            peak = max(peak, sc.status("VmRSS"))
            t.close()
            sc.wait_for("disconnect")
            growth = peak - base
            print(f"\nRSS before {base} kB, peak {peak} kB during a 100 MB message")
            self.assertLess(growth, 16 * 1024, f"RSS grew by {growth} kB")
            self.assertRegex(sc.text(), r"message: 102400 lines, 104857600 bytes")
        finally:
            rc, err = sc.stop()
            fake.stop()
        self.assertEqual(rc, 0, err)
