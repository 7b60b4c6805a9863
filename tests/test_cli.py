"""Command line: --help, --version, usage errors, start-up errors."""
import os
import re
import socket
import shutil
import subprocess
import tempfile
import unittest

import harness as h


def run(*args):
    return subprocess.run([h.BIN, *args], capture_output=True, timeout=30, text=True)


class CliTest(unittest.TestCase):
    def test_help_lists_every_option(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--listen", "--upstream", "--upstream-tls", "--ca-file", "--insecure",
                    "--client-tls", "--cert", "--key", "--show-secrets", "--body-lines",
                    "--helo", "--version"):
            self.assertIn(opt, r.stdout)
        self.assertIn("127.0.0.1:2525", r.stdout)
        self.assertIn("smtp.gmail.com:587", r.stdout)

    def test_every_option_is_documented(self):
        """Each option --help names is in the README's table and the man page."""
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        helptext = run("--help").stdout
        opts = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", helptext)) - {"--help", "--version"}
        self.assertIn("--loops", opts)
        with open(os.path.join(root, "README.md")) as f:
            readme = f.read()
        with open(os.path.join(root, "docs", "smtpscope.1")) as f:
            man = f.read().replace("\\-", "-")
        whats = "connect|greeting|command|data|final|idle"
        man = man.replace(f"--timeout-{whats}", " ".join(f"--timeout-{w}" for w in whats.split("|")))
        for opt in sorted(opts):
            self.assertTrue(f"`{opt}" in readme, f"{opt} is not in README.md's options")
            self.assertTrue(opt in man, f"{opt} is not in docs/smtpscope.1")

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^smtpscope \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2_with_one_line(self):
        cases = [
            (["--bogus"], "unknown option '--bogus'"),
            (["-x"], "unknown option '-x'"),
            (["--listen", "nocolon"], "--listen: expected HOST:PORT or a port alone"),
            (["--listen", "1.2.3.4:99999"], "--listen: port 99999 is out of range (0 to 65535)"),
            (["--listen", "70000"], "--listen: port 70000 is out of range (0 to 65535)"),
            (["--upstream", "h:0"], "--upstream: port 0 cannot be connected to"),
            (["--upstream", "host:"], "--upstream: expected HOST:PORT"),
            (["--upstream-tls", "tls"], "--upstream-tls: expected starttls or implicit"),
            (["--client-tls", "maybe"], "--client-tls: expected offer, require or off"),
            (["--body-lines", "ten"], "--body-lines: expected a number of lines"),
            (["--body-lines", "-1"], "--body-lines: expected a number of lines"),
            (["--cert", "/x.pem"], "--cert and --key go together"),
            (["--listen"], "option '--listen' needs a value"),
            (["stray"], "unexpected argument 'stray'"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stdout, "")
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn(msg, r.stderr)

    def test_startup_errors_exit_2(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            r = run("--listen", f"127.0.0.1:{port}", "--ca-file", h.certs().ca)
        finally:
            busy.close()
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, rf"^smtpscope: cannot listen on 127\.0\.0\.1:{port}: "
                                   r"address already in use \(.*--listen 127\.0\.0\.1:0 for any "
                                   r"free one: the port chosen is printed\)\n$")
        r = run("--listen", "127.0.0.1:0", "--ca-file", "/nonexistent/ca.pem")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "smtpscope: --ca-file /nonexistent/ca.pem: cannot read the CA "
                                   "certificates: No such file or directory\n")
        r = run("--listen", "127.0.0.1:0", "--ca-file", "/tmp")
        self.assertEqual(r.stderr, "smtpscope: --ca-file /tmp: the CA certificates must be a file "
                                   "(PEM), and this is a directory\n")
        r = run("--listen", "127.0.0.1:0", "--cert", "/nonexistent/c.pem", "--key", "/x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--cert /nonexistent/c.pem: cannot read the certificate: No such file or "
                      "directory", r.stderr)
        # a file that is not PEM still gets mbedTLS's words, and the file's name
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as junk:
            junk.write("not a certificate\n")
            junk.flush()
            r = run("--listen", "127.0.0.1:0", "--ca-file", junk.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"cannot load CA file {junk.name}: ", r.stderr)
        # a key smtpscope may not read (as an unprivileged user)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            d = tempfile.mkdtemp()
            self.addCleanup(shutil.rmtree, d, True)
            cert, key = h.certs().pair("wrongname")
            shutil.copy(cert, os.path.join(d, "c.pem"))
            os.chmod(os.path.join(d, "c.pem"), 0o644)
            cert = os.path.join(d, "c.pem")
            shutil.copy(key, os.path.join(d, "k.pem"))
            os.chmod(os.path.join(d, "k.pem"), 0o600)
            os.chmod(d, 0o755)
            r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                h.BIN, "--listen", "127.0.0.1:0", "--cert", cert, "--key",
                                os.path.join(d, "k.pem")], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("cannot read the private key: Permission denied (check its "
                          "permissions", r.stderr)

    def test_given_certificate_is_served(self):
        cert, key = h.certs().pair("wrongname")
        up = h.Upstream()
        sc = h.Scope("--cert", cert, "--key", key, upstream=up)
        try:
            import smtplib
            import ssl
            c = smtplib.SMTP("127.0.0.1", sc.port, timeout=20)
            ctx = ssl.create_default_context(cafile=h.certs().ca)
            ctx.check_hostname = False
            c.starttls(context=ctx)  # verifies against the test CA
            der = c.sock.getpeercert(binary_form=True)
            self.assertIn(b"wrong.example", der)
            c.quit()
        finally:
            rc, err = sc.stop()
            up.stop()
        h.assert_clean_exit(self, rc, err)

    def test_sigint_exits_0(self):
        sc = h.Scope(upstream=None)
        import signal
        sc.proc.send_signal(signal.SIGINT)
        sc.proc.wait(timeout=20)  # before stop() could send its SIGTERM
        rc, err = sc.stop()
        h.assert_clean_exit(self, rc, err)
        self.assertIn("SIGINT: shutting down", sc.text())


class ListenTest(unittest.TestCase):
    def start(self, *args):
        """Start, wait for readiness, stop: what it printed until then."""
        import signal
        import time
        p = subprocess.Popen([h.BIN, "--upstream", "localhost:9", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        self.assertEqual(p.returncode, 0, err)
        return p, out

    def test_non_loopback_refused_without_allow_remote(self):
        for addr in ("0.0.0.0:0", "[::]:0"):
            r = run("--listen", addr)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("is not a loopback address: anyone who can reach it could send mail "
                          "through your upstream session; add --allow-remote", r.stderr)

    def test_allow_remote_warns(self):
        p, out = self.start("--listen", "0.0.0.0:0", "--allow-remote", "--show-secrets")
        self.assertRegex(out, r"warning: listening on 0\.0\.0\.0:\d+, which is not a loopback "
                              r"address \(--allow-remote\): anyone who can reach it can send mail "
                              r"through your upstream session, and with --show-secrets their "
                              r"credentials are logged")

    def test_loopback_has_no_warning_and_port_alone(self):
        p, out = self.start("--listen", "0")
        self.assertRegex(out, r"listening on 127\.0\.0\.1:\d+")
        self.assertNotIn("warning:", out)

    def test_busy_port_suggests_port_0(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        r = run("--listen", f"127.0.0.1:{s.getsockname()[1]}")
        self.assertEqual(r.returncode, 2)
        self.assertIn("address already in use", r.stderr)
        self.assertIn("--listen 127.0.0.1:0 for any free one", r.stderr)


if __name__ == "__main__":
    unittest.main()
