"""Soak: hundreds of sessions with random client and upstream resets.

Afterwards smtpscope holds no more file descriptors than at the start, exits
0 without leaks (LeakSanitizer in the sanitizer build), and every message the
client was told 250 for is at the upstream exactly once."""
import random
import re
import smtplib
import socket
import threading
import time
import unittest

import harness as h

SESSIONS = 300
WORKERS = 12
SEED = 20261127


class FlakyRecorder(h.Recorder):
    """aiosmtpd handler that resets some sessions at random points."""

    def __init__(self, seed):
        super().__init__()
        self.rnd = random.Random(seed)

    def maybe_reset(self, server, p):
        with self.lock:
            hit = self.rnd.random() < p
        if hit:
            server.transport.abort()
        return hit

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.maybe_reset(server, 0.05):
            return "421 gone"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.maybe_reset(server, 0.05):  # before storing: never a 250
            return "421 gone"
        reply = await super().handle_DATA(server, session, envelope)
        if self.maybe_reset(server, 0.05):  # stored, but the 250 never leaves
            return "421 gone"
        return reply


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    sock.close()


class SoakTest(unittest.TestCase):
    def test_soak(self):
        from aiosmtpd.controller import Controller
        rec = FlakyRecorder(SEED)
        port = h.free_port("localhost")
        ctrl = Controller(rec, hostname="localhost", port=port,
                          tls_context=h.certs().context("server"), require_starttls=True,
                          authenticator=rec.authenticate, auth_required=True,
                          auth_require_tls=True)
        ctrl.start()
        sc = h.Scope("--upstream", f"localhost:{port}", "--body-lines", "2",
                     "--timeout-idle", "10s")
        base_fds = sc.fds()
        accepted = []  # message ids the client heard 250 for
        lock = threading.Lock()
        rnd = random.Random(SEED + 1)
        plans = [(i, rnd.random(), rnd.randint(0, 3)) for i in range(SESSIONS)]

        def one(i, r, where):
            mid = f"soak-{i}"
            body = (f"Subject: {mid}\r\nMessage-ID: <{mid}@soak>\r\n\r\n".encode()
                    + b"line\r\n" * (1 + i % 50))
            try:
                if r < 0.25:
                    # the client resets at a random point, inside TLS
                    c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
                    c.starttls()
                    c.login(h.USER, h.PASSWORD)
                    if where >= 1:
                        c.mail("a@x")
                    if where >= 2:
                        c.rcpt("b@x")
                    if where >= 3:
                        c.putcmd("data")
                        if c.getreply()[0] == 354:
                            c.send(body[:40])
                    rst(c.sock)
                    return
                c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
                c.starttls()
                c.login(h.USER, h.PASSWORD)
                c.sendmail("a@x", ["b@x"], body)
                with lock:
                    accepted.append(mid)
                c.quit()
            except (smtplib.SMTPException, OSError):
                pass  # resets are the point; what matters is what got a 250

        sem = threading.Semaphore(WORKERS)

        def run(plan):
            with sem:
                one(*plan)

        threads = [threading.Thread(target=run, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        try:
            # every session ends; the descriptors go back to where they were
            sc.wait_for(rf"\[#{SESSIONS}\] smtpscope: disconnect", timeout=60)
            end = time.time() + 20
            while time.time() < end and (sc.fds() != base_fds or
                                         sc.text().count("smtpscope: disconnect") < SESSIONS):
                time.sleep(0.1)
            self.assertEqual(sc.text().count("smtpscope: disconnect"), SESSIONS)
            self.assertEqual(sc.fds(), base_fds)
            stored = {}
            for _, _, content in rec.messages:
                m = re.search(rb"Subject: (soak-\d+)", content)
                stored[m.group(1).decode()] = stored.get(m.group(1).decode(), 0) + 1
            for mid in accepted:
                self.assertEqual(stored.get(mid), 1, mid)
            self.assertGreater(len(accepted), SESSIONS // 3)
            text = sc.text()
            self.assertIn("client went away during DATA: the message was NOT submitted", text)
            self.assertIn("upstream connection ended", text)
            print(f"\n{SESSIONS} sessions: {len(accepted)} messages accepted, "
                  f"{len(stored)} stored upstream, fds {base_fds} -> {sc.fds()}")
        finally:
            rc, err = sc.stop()
            ctrl.stop()
        h.assert_clean_exit(self, rc, err)


if __name__ == "__main__":
    unittest.main()
