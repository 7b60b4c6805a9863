"""Test harness: certificates, a Gmail-like aiosmtpd upstream, smtpscope.

Everything runs on 127.0.0.1 with certificates made at test time by openssl.
Standard library and Debian's python3-aiosmtpd only; run by /usr/bin/python3.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

warnings.filterwarnings("ignore", message="Session.login_data")

BIN = os.environ.get("SMTPSCOPE_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "smtpscope"))

USER = "alice@example.test"
PASSWORD = "s3cret-Pa55w0rd!"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Certs:
    """A test CA, certificates it signs, and an untrusted CA."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="smtpscope-certs-")
        d = self.dir
        for ca in ("ca", "evilca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                     "-subj", f"/CN=smtpscope test {ca}", cwd=d)
        self.make("server", "localhost", "ca")
        self.make("wrongname", "wrong.example", "ca")
        self.make("untrusted", "localhost", "evilca")
        self.ca = os.path.join(d, "ca.pem")

    def make(self, name, dns, ca):
        d = self.dir
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={dns}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{dns}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
                 cwd=d)

    def pair(self, name):
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def context(self, name):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*self.pair(name))
        return ctx


_certs = None


def certs():
    global _certs
    if _certs is None:
        _certs = Certs()
    return _certs


class Recorder:
    """aiosmtpd handler: records what reached the upstream."""

    def __init__(self):
        self.messages = []  # (mail_from, rcpt_tos, original_content bytes)
        self.ehlo = []
        self.auth = []  # (login, password) pairs that were tried
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.ehlo.append(hostname)
        return responses

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content)))
        return "250 2.0.0 OK queued as TEST%d" % len(self.messages)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        with self.lock:
            self.auth.append((mechanism, ok))
        return AuthResult(success=ok)

    def wait_messages(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            return list(self.messages)


class Upstream:
    """A Gmail-like upstream: STARTTLS required, AUTH only inside TLS."""

    def __init__(self, cert="server", starttls=True, auth=True):
        self.recorder = Recorder()
        self.port = free_port()
        kw = {}
        if starttls:
            kw.update(tls_context=certs().context(cert), require_starttls=True)
        if auth:
            kw.update(authenticator=self.recorder.authenticate, auth_required=True,
                      auth_require_tls=True)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                     server_hostname="mx.upstream.test", **kw)
        self.controller.start()

    def stop(self):
        self.controller.stop()


class Scope:
    """A running smtpscope; its stdout is collected line by line."""

    def __init__(self, *args, upstream=None, ca=True, wait=True):
        argv = [BIN, "--listen", "127.0.0.1:0"]
        if upstream is not None:
            argv += ["--upstream", f"localhost:{upstream.port}"]
        if ca:
            argv += ["--ca-file", certs().ca]
        argv += list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = None
        if wait:
            line = self.wait_for(r"listening on 127\.0\.0\.1:(\d+)")
            self.port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=15, start=0):
        rx = re.compile(pattern)
        end = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                left = end - time.time()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in:\n" + self.text())
                self.cond.wait(min(left, 0.2))

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def session_lines(self, sid):
        tag = f"[#{sid}] "
        return [l.split(tag, 1)[1] for l in self.text().splitlines() if tag in l]

    def stop(self):
        """SIGTERM; returns (exit status, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(timeout=5)
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        return rc, err


class FakeUpstream:
    """A scriptable upstream for what real servers won't do.

    script: a list of steps run against each connection in turn:
      ("send", bytes)      write bytes (plaintext or inside TLS)
      ("expect", bytes)    read one line; it must start with these bytes
      ("tls",)             server-side TLS handshake with the test CA's cert
      ("close",)           close the connection
      ("read_all",)        read until the peer closes, keep the bytes
    What was read is kept in .received (one bytes per connection).
    """

    def __init__(self, script, cert="server"):
        self.script = script
        self.cert = cert
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.errors = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        got = bytearray()
        self.received.append(got)
        f = conn
        buf = b""
        try:
            conn.settimeout(15)
            for step in self.script:
                if step[0] == "send":
                    f.sendall(step[1])
                elif step[0] == "expect":
                    while b"\n" not in buf:
                        chunk = f.recv(65536)
                        if not chunk:
                            raise AssertionError(f"closed while expecting {step[1]!r}")
                        got.extend(chunk)
                        buf += chunk
                    line, buf = buf.split(b"\n", 1)
                    if not line.startswith(step[1]):
                        raise AssertionError(f"expected {step[1]!r}, got {line!r}")
                elif step[0] == "tls":
                    f = certs().context(self.cert).wrap_socket(f, server_side=True)
                elif step[0] == "read_all":
                    while True:
                        chunk = f.recv(65536)
                        if not chunk:
                            break
                        got.extend(chunk)
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "close":
                    break
        except Exception as e:  # recorded for the test to assert on
            self.errors.append(e)
        finally:
            try:
                f.close()
            except OSError:
                pass
            self.done.set()

    def stop(self):
        self.sock.close()


def lines_after(text, start_pattern):
    """The transcript lines from the first one matching start_pattern."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if re.search(start_pattern, l):
            return lines[i:]
    return []


def client_lines(sock, n, timeout=10):
    """Read n CRLF-ended reply lines from a plain socket."""
    sock.settimeout(timeout)
    buf = b""
    while buf.count(b"\r\n") < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def read_reply(sock, timeout=10):
    """Read one whole (multi-line) reply from a socket."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for l in lines[:-1]:
            if len(l) >= 4 and l[3:4] == b" " or len(l) == 3:
                return buf
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
