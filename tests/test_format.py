"""--format smtplib / smtplib2: the client leg exactly as smtplib prints it.

The same smtplib script runs against the Gmail-like upstream directly and
through smtpscope; smtplib's own stderr is compared with smtpscope's stdout.
What must differ, and only that, is normalised: the port in `connect: to`,
the times at debug level 2, smtpscope's own answer to STARTTLS, and the
first EHLO reply (the client is shown the upstream's capabilities from
inside TLS, AUTH included, plus STARTTLS, where the upstream itself shows
its plaintext list).
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = os.path.join(HERE, "seed_script_levels.py")
SEED = os.path.join(HERE, "seed_script.py")
TIME = re.compile(r"^\d\d:\d\d:\d\d(\.\d{6})? ")


class SmtplibScope:
    """smtpscope with an smtplib format: stdout is the transcript, stderr
    smtpscope's own lines (the start-up line names the port)."""

    def __init__(self, *args, upstream):
        self.errf = tempfile.TemporaryFile()
        argv = [h.BIN, "--listen", "127.0.0.1:0", "--upstream", f"localhost:{upstream.port}",
                "--ca-file", h.certs().ca, *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.errf,
                                     stdin=subprocess.DEVNULL)
        self.port = None
        end = time.time() + 15
        while self.port is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            elif time.time() > end or self.proc.poll() is not None:
                raise AssertionError("smtpscope did not start:\n" + self.stderr())
            else:
                time.sleep(0.05)

    def stderr(self):
        self.errf.seek(0)
        return self.errf.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; (exit status, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        err = self.stderr()
        self.errf.close()
        return self.proc.returncode, out.decode("utf-8", "replace"), err


def run_script(script, port, *extra):
    r = subprocess.run([sys.executable, script, "127.0.0.1", str(port), h.USER, h.PASSWORD,
                        *extra], capture_output=True, timeout=60)
    return r.returncode, r.stderr.decode("utf-8", "replace")


def msg_of(lines):
    """What smtplib's getreply() joins from reply lines (for the expected
    retcode line of the one reply smtpscope changes)."""
    return b"\n".join(l[4:].strip(b" \t\r\n") for l in lines)


def reply_block(lines, code):
    return [f"reply: {l!r}" for l in lines] + \
        ["reply: retcode (%s); Msg: %a" % (code, msg_of(lines))]


def ehlo_blocks(out):
    """The (start, end) line spans of each reply to an ehlo in a transcript."""
    spans, lines = [], out
    for i, l in enumerate(lines):
        if l.startswith("send: 'ehlo "):
            j = i + 1
            while not lines[j].startswith("reply: retcode"):
                j += 1
            spans.append((i + 1, j + 1))
    return spans


class SmtplibFormat(unittest.TestCase):
    maxDiff = None

    def session(self, level, script=LEVELS, extra=(), scope_args=()):
        """Run script directly and through smtpscope (each against a fresh
        upstream, so queue ids agree); returns (direct stderr, the client's
        stderr through smtpscope, smtpscope's stdout, smtpscope's stderr)."""
        fmt = "smtplib" if level == 1 else "smtplib2"
        up = h.Upstream()
        try:
            rc, direct = run_script(script, up.port, *extra)
            self.assertEqual(rc, 0, direct)
        finally:
            up.stop()
        up = h.Upstream()
        try:
            sc = SmtplibScope("--format", fmt, "--show-secrets", *scope_args, upstream=up)
            try:
                rc, client = run_script(script, sc.port, *extra)
                self.assertEqual(rc, 0, client)
                self.assertEqual(len(up.recorder.wait_messages(1)), 1)
            finally:
                src, out, err = sc.stop()
            h.assert_clean_exit(self, src, err)
        finally:
            up.stop()
        return direct, client, out, err

    def untimed(self, text, level):
        lines = text.splitlines()
        if level == 2:
            for l in lines:
                self.assertRegex(l, TIME)
            lines = [TIME.sub("", l) for l in lines]
        return lines

    def check_level(self, level):
        direct, client, out, err = self.session(level, extra=(str(level),))
        d, c, o = (self.untimed(t, level) for t in (direct, client, out))

        # 1. smtpscope prints what smtplib itself printed for the same
        #    session through smtpscope: identical, but for level 2's times
        self.assertEqual(o, c)
        if level == 1:
            self.assertEqual(out, client)

        # 2. against the upstream directly: only what must differ
        port = re.compile(r"^connect: to \('127\.0\.0\.1', \d+\) None$")
        self.assertRegex(d[0], port)
        self.assertRegex(o[0], port)
        want = ["connect: to ('127.0.0.1', PORT) None"] + d[1:]
        # smtpscope answers STARTTLS itself
        i = want.index("send: 'STARTTLS\\r\\n'")
        self.assertEqual(want[i + 1], "reply: b'220 Ready to start TLS\\r\\n'")
        want[i + 1:i + 3] = reply_block([b"220 2.0.0 Ready to start TLS\r\n"], 220)
        # the first EHLO reply: the upstream's capabilities inside TLS (the
        # second EHLO reply, direct) plus STARTTLS before the last line
        (a1, b1), (a2, b2) = ehlo_blocks(want)
        inner = [eval(l[len("reply: "):]) for l in want[a2:b2 - 1]]
        self.assertNotIn(b"250-STARTTLS\r\n", inner)
        shown = inner[:-1] + [b"250-STARTTLS\r\n"] + inner[-1:]
        want[a1:b1] = reply_block(shown, 250)
        o[0] = port.sub("connect: to ('127.0.0.1', PORT) None", o[0])
        self.assertEqual(o, want)

        # 3. nothing of smtpscope's own on stdout; its lines on stderr
        self.assertNotIn("smtpscope", out)
        self.assertIn("listening on", err)
        self.assertIn("summary: 1 session(s); 1 message(s) relayed", err)
        return out

    def test_level1(self):
        out = self.check_level(1)
        # the whole message, one send: line, as smtplib's data() prints it
        self.assertIn("send: b'Content-Type: text/plain; charset=\"us-ascii\"\\r\\nMIME-Version:",
                      out)
        self.assertIn("\\r\\n\\r\\nHi ,I am leehark\\r\\n.\\r\\n'\n", out)

    def test_level2(self):
        out = self.check_level(2)
        times = [TIME.match(l).group(0) for l in out.splitlines()]
        self.assertEqual(times, sorted(times))

    def test_seed_script(self):
        """The founding script turns debugging on after connecting: it
        prints nothing of the connection and greeting, smtpscope does (its
        first four lines); from the first send: on they agree."""
        direct, client, out, err = self.session(1, script=SEED)
        o = out.splitlines()
        self.assertTrue(o[0].startswith("connect: to ('127.0.0.1', "), o[0])
        self.assertTrue(o[3].startswith("connect: b'"), o[3])
        self.assertEqual(o[4:], client.splitlines())
        self.assertTrue(direct.startswith("send: 'ehlo "), direct)

    def test_transcript_dir_and_redaction(self):
        """--transcript-dir gets the same form, one session a file; without
        --show-secrets the AUTH line is redacted as everywhere else."""
        d = tempfile.mkdtemp(prefix="smtpscope-fmt-")
        up = h.Upstream()
        try:
            sc = SmtplibScope("--format", "smtplib", "--transcript-dir", d, upstream=up)
            try:
                rc, client = run_script(LEVELS, sc.port, "1")
                self.assertEqual(rc, 0, client)
            finally:
                src, out, err = sc.stop()
            h.assert_clean_exit(self, src, err)
        finally:
            up.stop()
        files = os.listdir(d)
        self.assertEqual(len(files), 1, files)
        with open(os.path.join(d, files[0])) as f:
            self.assertEqual(f.read(), out)
        self.assertIn("send: 'AUTH PLAIN [redacted; user=alice@example.test]\\r\\n'\n", out)
        self.assertNotIn(h.PASSWORD, out)
        self.assertIn("send: 'AUTH PLAIN ", client)
        norm = [l for l in out.splitlines() if not l.startswith("send: 'AUTH")]
        self.assertEqual(norm, [l for l in client.splitlines() if not l.startswith("send: 'AUTH")])

    def test_warnings_go_to_stderr(self):
        """A line smtpscope refuses: the client's send: and smtpscope's 500
        are smtplib's to print; the warning is smtpscope's, on stderr."""
        up = h.Upstream()
        try:
            sc = SmtplibScope("--format", "smtplib", upstream=up)
            try:
                with socket.create_connection(("127.0.0.1", sc.port), timeout=10) as s:
                    h.read_reply(s)
                    s.sendall(b"NOOP\nX\r\n")
                    self.assertTrue(h.read_reply(s).startswith(b"500 5.5.2"))
                    s.sendall(b"QUIT\r\n")
                    h.read_reply(s)
            finally:
                src, out, err = sc.stop()
            h.assert_clean_exit(self, src, err)
        finally:
            up.stop()
        self.assertIn("send: 'NOOP\\nX\\r\\n'\nreply: b'500 5.5.2 ", out)
        self.assertIn("reply: retcode (500); Msg: b'5.5.2 Syntax error", out)
        self.assertNotIn("warning", out)
        self.assertRegex(err, r"\[#1\] smtpscope: warning: command line holds a bare LF")

    def test_usage(self):
        for args, what in ((["--format", "pretty"], "--format: expected smtpscope, smtplib"),
                           (["--format", "smtplib", "--quiet"], "do not apply"),
                           (["--format", "smtplib2", "--explain"], "do not apply")):
            r = subprocess.run([h.BIN, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(what, r.stderr)


if __name__ == "__main__":
    unittest.main()
