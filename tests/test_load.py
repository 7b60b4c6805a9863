"""Big messages arrive byte-exact; many concurrent sessions all arrive intact,
also when they are spread over several event loops (--loops)."""
import base64
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
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


def send(port, body, sender="a@example.test"):
    """The founding script's session: STARTTLS, AUTH, one message."""
    c = smtplib.SMTP("127.0.0.1", port, timeout=120)
    c.starttls()
    c.login(h.USER, h.PASSWORD)
    c.sendmail(sender, ["b@example.test"], body)
    c.quit()


def send_concurrently(port, bodies):
    """One session per {sender: body}, all at once; the (sender, error)
    pairs of those that failed."""
    errors = []

    def run(sender, body):
        try:
            send(port, body, sender)
        except Exception as e:  # reported by the caller
            errors.append((sender, e))

    threads = [threading.Thread(target=run, args=kv) for kv in bodies.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


class LoadTest(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.up = h.Upstream()
        self.scope = h.Scope(upstream=self.up)

    def test_multi_megabyte_byte_exact(self):
        body = big_message(4 * 1024 * 1024, 1)
        self.assertIn(b"\r\n.\r\n", body)  # a lone dot line, which the client stuffs
        send(self.scope.port, body)
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
        self.assertEqual(send_concurrently(self.scope.port, bodies), [])
        msgs = self.up.recorder.wait_messages(n, timeout=60)
        self.assertEqual(len(msgs), n)
        for sender, rcpts, content in msgs:
            self.assertEqual(content, bodies[sender], sender)
        text = self.scope.text()
        self.assertEqual(text.count("smtpscope: message accepted by the upstream"), n)
        self.scope.wait_for(r"\[#50\] smtpscope: disconnect")



class LoopsTest(h.ScopeCase):
    """--loops 2: two event loops on two threads, one listening port."""

    def start(self, *args):
        self.up = h.Upstream()
        self.scope = h.Scope("--loops", "2", *args, upstream=self.up)
        self.scope.wait_for(r"; 2 event loops$")

    def loop_counts(self):
        """{loop number: sessions it accepted} from the transcript."""
        counts = {}
        for n in re.findall(r"connection from \S+ to \S+ \(loop (\d)\)", self.scope.text()):
            counts[n] = counts.get(n, 0) + 1
        return counts

    def test_sessions_spread_over_both_loops_arrive_intact(self):
        self.start()
        n = 40
        bodies = {f"s{i}@example.test": big_message(3000 + i * 101, 500 + i) for i in range(n)}
        self.assertEqual(send_concurrently(self.scope.port, bodies), [])
        msgs = self.up.recorder.wait_messages(n)
        self.assertEqual(len(msgs), n)
        for sender, rcpts, content in msgs:
            self.assertEqual(content, bodies[sender], sender)
        for i in range(1, n + 1):
            self.scope.wait_for(rf"\[#{i}\] smtpscope: disconnect")
        text = self.scope.text()
        # both loops took sessions (the kernel spreads connections over the
        # SO_REUSEPORT listeners by address hash)
        self.assertEqual(set(self.loop_counts()), {"1", "2"})
        # session ids are unique across loops: each connects exactly once
        ids = re.findall(r"\[#(\d+)\] smtpscope: connection from", text)
        self.assertEqual(sorted(map(int, ids)), list(range(1, n + 1)))
        # lines from two threads never mix: each one is whole (and the
        # summary below counts every session: one lock for both)
        for line in text.splitlines():
            self.assertRegex(line, r"^\d\d:\d\d:\d\d\.\d{6} \[#\d+\] ", line)
        self.assertEqual(text.count("smtpscope: message accepted by the upstream"), n)
        self.assertNotIn(h.PASSWORD, text)
        scope, self.scope = self.scope, None
        rc, err = scope.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertRegex(scope.text(), rf"summary: {n} session\(s\); {n} message\(s\) "
                                       r"relayed, 0 refused")

    def test_threads_are_named_for_top(self):
        # top -H and /proc name what each thread does (README, docs/architecture.md)
        self.start("--http", "127.0.0.1:0")
        task = f"/proc/{self.scope.proc.pid}/task"
        names = {}
        for tid in os.listdir(task):
            with open(f"{task}/{tid}/comm") as f:
                names[tid] = f.read().strip()
        self.assertEqual(names.pop(str(self.scope.proc.pid)), "smtpscope")  # the first loop
        for name in ("relay-2", "http-api", "tlog-consumers", "tlog-writer"):
            self.assertIn(name, names.values())

    def test_max_sessions_counts_the_sessions_of_every_loop(self):
        self.start("--max-sessions", "4")
        socks, greetings = [], []
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=10)
            socks.append(s)
            greetings.append(h.read_reply(s)[:9])
        self.assertEqual(sum(g.startswith(b"220") for g in greetings), 4, greetings)
        self.assertEqual(sum(g == b"421 4.3.2" for g in greetings), 8, greetings)
        for s in socks:
            s.close()

    def test_shutdown_lets_sessions_of_every_loop_finish(self):
        self.start("--grace", "20s")
        socks = []
        # an idle loop takes the next connection: open sessions (each past
        # AUTH) until both loops hold some
        while len(socks) < 200 and (len(socks) < 12 or
                                    min(self.loop_counts().values(), default=0) < 2):
            s = socket.create_connection(("127.0.0.1", self.scope.port), timeout=10)
            self.assertTrue(h.read_reply(s).startswith(b"220"))
            s.sendall(b"EHLO client.example.test\r\n")
            self.assertTrue(h.read_reply(s).startswith(b"250"))
            plain = base64.b64encode(f"\0{h.USER}\0{h.PASSWORD}".encode())
            s.sendall(b"AUTH PLAIN " + plain + b"\r\n")
            self.assertTrue(h.read_reply(s).startswith(b"235"))
            socks.append(s)
        self.assertEqual(set(self.loop_counts()), {"1", "2"})
        n = len(socks)
        self.scope.proc.send_signal(signal.SIGTERM)
        self.scope.wait_for(rf"SIGTERM: shutting down; {n} open session\(s\) may finish")
        for i, s in enumerate(socks):
            for cmd, code in ((f"MAIL FROM:<g{i}@example.test>", b"250"),
                              ("RCPT TO:<b@example.test>", b"250"), ("DATA", b"354"),
                              (f"Subject: {i}\r\n\r\nbody {i}\r\n.", b"250"),
                              ("QUIT", b"221")):
                s.sendall(cmd.encode() + b"\r\n")
                self.assertTrue(h.read_reply(s).startswith(code), (i, cmd))
            s.close()
        self.assertEqual(self.scope.proc.wait(20), 0)
        self.scope.wait_for(rf"summary: {n} session\(s\); {n} message\(s\) relayed")
        self.assertEqual(len(self.up.recorder.wait_messages(n)), n)

    def test_a_second_instance_cannot_join_the_port(self):
        # every loop's listener has SO_REUSEPORT, which would let a second
        # smtpscope --loops 2 on the same port take half of the connections
        self.start()
        r = subprocess.run([h.BIN, "--loops", "2", "--listen", f"127.0.0.1:{self.scope.port}",
                            "--upstream", f"localhost:{self.up.port}", "--ca-file", h.certs().ca],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn(f"cannot listen on 127.0.0.1:{self.scope.port}: address already in use",
                      r.stderr)

    def test_loops_need_relay_mode(self):
        r = subprocess.run([h.BIN, "--loops", "2", "--record", "/dev/null"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--loops above 1 is for relay mode", r.stderr)
        r = subprocess.run([h.BIN, "--loops", "0"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--loops", r.stderr)



class SlowUpstreamMemoryTest(unittest.TestCase):
    """A 100 MB message to an upstream that reads slowly: smtpscope's memory
    stays flat (backpressure, including for bytes already decrypted inside
    mbedTLS on the client leg)."""

    def test_rss_flat(self):
        import socket
        import os
        size = 100 * 1024 * 1024
        fake = h.FakeUpstream(h.tls_prelude(b"250 fake\r\n") + [
            ("expect", b"EHLO"), ("send", b"250 fake\r\n"), ("expect", b"MAIL"), ("send", b"250 ok\r\n"), ("expect", b"RCPT"),
            ("send", b"250 ok\r\n"), ("expect", b"DATA"), ("send", b"354 go\r\n"),
            ("slow_read_until", b"\r\n.\r\n", 40 * 1024 * 1024),
            ("send", b"250 2.0.0 queued\r\n"), ("read_all",)])
        # ASan's quarantine keeps freed memory resident: keep it small here.
        # The mailbox keeps messages up to --keep-bytes: this one is larger,
        # so what it copied is let go at 4 MiB, and the relay stays flat.
        asan = os.environ.get("ASAN_OPTIONS", "")
        sc = h.Scope("--upstream", f"localhost:{fake.port}", "--keep-bytes", "4M",
                     env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=4"})
        try:
            s = socket.create_connection(("127.0.0.1", sc.port), timeout=60)
            h.read_reply(s)
            s.sendall(b"EHLO c\r\n")
            h.read_reply(s)
            s.sendall(b"STARTTLS\r\n")
            self.assertTrue(h.read_reply(s).startswith(b"220"))
            t = h.client_tls(s)
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
            # the mailbox holds up to --keep-bytes of it (4 MiB) before it
            # lets go; under ASan its 4 MB quarantine and shadow memory come
            # on top (19 MB seen on Debian 13)
            bound = (24 if asan else 16) * 1024
            self.assertLess(growth, bound, f"RSS grew by {growth} kB")
            self.assertRegex(sc.text(), r"message: 102400 lines, 104857600 bytes")
        finally:
            rc, err = sc.stop()
            fake.stop()
        h.assert_clean_exit(self, rc, err)


class IdleMemoryTest(h.ScopeCase):
    """An idle session holds little: no TLS record buffer pages it does not
    use, no reply buffer between replies (bench/scale measures 1000)."""

    def test_idle_sessions_are_small(self):
        with open(h.BIN, "rb") as f:
            if b"__asan_init" in f.read():
                self.skipTest("AddressSanitizer's allocator decides what is resident")
        self.up = h.Upstream()
        self.scope = h.Scope(upstream=self.up)
        n = 300
        # one session first: the upstream TLS session is saved, the others
        # resume it, as in steady use (300 first-time handshakes at once
        # would leave their scratch memory resident)
        warm = socket.create_connection(("127.0.0.1", self.scope.port), timeout=120)
        self.assertTrue(h.read_reply(warm, 120).startswith(b"220"))
        warm.close()
        self.scope.wait_for(r"\[#1\] smtpscope: disconnect")
        base = self.scope.status("VmRSS")
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection(("127.0.0.1", self.scope.port), timeout=120))
            for s in socks:
                self.assertTrue(h.read_reply(s, 120).startswith(b"220"))  # upstream TLS is up
                s.sendall(b"EHLO idle.example.test\r\n")
            for s in socks:
                self.assertTrue(h.read_reply(s, 120).startswith(b"250"))
            per_session = (self.scope.status("VmRSS") - base) / n
            # here 46.5 kB with the record buffers on the heap and the reply
            # buffer kept, about 42 with only the reply buffer freed, 32-34
            # with both (bench/scale, 1000 sessions: 28 kB; stunnel 66 kB).
            # mbedTLS 3.6 keeps a TLS 1.3 client's handshake state after the
            # handshake (~4.7 kB live: it parses later NewSessionTickets
            # with it) and the heap around it fragments: 50-54 kB here with
            # the upstream leg in TLS 1.3 (37-38 in TLS 1.2, 38.2 seen on
            # a pristine Debian 12 root); with the record buffers back on
            # the heap it would be about 66 (1.3) or 46.5 (1.2), so the
            # bounds keep a margin for the heap and still catch that.
            # smtpscope's malloc keeps up to 1 MiB of freed heap for reuse
            # (px_tune_malloc: glibc's trim threshold raised from 128 KiB):
            # once, not per session, so it is allowed once (3.4 kB a
            # session of 300) and the bounds still catch the record buffers
            # back on the heap
            kept = 1024 / n
            self.assertLess(per_session, (58 if h.TLS13 else 42) + kept, per_session)
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    unittest.main()
