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
