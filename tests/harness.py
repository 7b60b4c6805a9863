"""Test harness: certificates, a Gmail-like aiosmtpd upstream, smtpscope.

Everything runs on loopback with certificates made at test time by openssl.
smtpscope listens on 127.0.0.1; the upstreams are reached as "localhost" and
listen on every address that name has here (127.0.0.1, and ::1 too on a
standard Debian /etc/hosts), so no result depends on how it resolves.
Standard library and Debian's python3-aiosmtpd only; run by /usr/bin/python3.
"""
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
import time
import warnings
import weakref

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

warnings.filterwarnings("ignore", message="Session.login_data")

# smtpscope's HTTP API listens on 127.0.0.1:8025 unless told otherwise; in
# tests nothing may meet another program there, so it is off unless a test
# asks for it (--http, or this variable set to a free port: test_http.py)
os.environ.setdefault("SMTPSCOPE_HTTP_DEFAULT", "off")

BIN = os.environ.get("SMTPSCOPE_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "smtpscope"))

USER = "alice@example.test"
PASSWORD = "s3cret-Pa55w0rd!"
# the end of a TLS line's peer certificate: its issuer's closing quote and
# its validity (tls_conn_peer_text)
VALID_RX = r'", valid \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ to \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'


def localhost_addrs():
    """The addresses "localhost" has here, in the order smtpscope tries them."""
    addrs = []
    for family, _, _, _, sa in socket.getaddrinfo("localhost", None, socket.AF_UNSPEC,
                                                  socket.SOCK_STREAM):
        if (family, sa[0]) not in addrs:
            addrs.append((family, sa[0]))
    return addrs


def addr_text(host, port):
    """An address as smtpscope prints it: 127.0.0.1:25, [::1]:25."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def localhost_rx():
    """A regex for any of localhost's addresses as smtpscope prints them,
    without the port."""
    return "(?:" + "|".join(re.escape(addr_text(a, 0)[:-2]) for _, a in localhost_addrs()) + ")"


def listen(host="localhost", backlog=16):
    """(sockets, port): listening on one port at every address of host
    ("localhost", an address, or a tuple of addresses)."""
    if host == "localhost":
        addrs = localhost_addrs()
    else:
        addrs = [(socket.AF_INET6 if ":" in a else socket.AF_INET, a)
                 for a in ((host,) if isinstance(host, str) else host)]
    for _ in range(100):  # a port free at the first address may be taken at another
        socks, port = [], 0
        try:
            for family, addr in addrs:
                s = socket.socket(family)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, port))
                port = s.getsockname()[1]
            for s in socks:
                s.listen(backlog)
            return socks, port
        except OSError:
            for s in socks:
                s.close()
    raise OSError(f"no port free at every address of {host}")


def free_port(host="127.0.0.1"):
    """A port nothing listens on at any address of host (for now)."""
    socks, port = listen(host)
    for s in socks:
        s.close()
    return port


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Certs:
    """A test CA, certificates it signs (one expired), an untrusted CA, and
    a self-signed certificate. The CAs carry keyUsage: Python 3.13's
    default context verifies strictly (VERIFY_X509_STRICT)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="smtpscope-certs-")
        d = self.dir
        for ca in ("ca", "evilca"):
            self.self_signed(ca, f"smtpscope test {ca}", "-addext",
                             "keyUsage=critical,keyCertSign,cRLSign")
        self.make("server", "localhost", "ca")
        self.make("wrongname", "wrong.example", "ca")
        self.make("uptest", "up.test", "ca")
        self.make("untrusted", "localhost", "evilca")
        self.make("expired", "localhost", "ca", expired=True)
        self.self_signed("selfsigned", "localhost", "-addext", "subjectAltName=DNS:localhost")
        self.ca = os.path.join(d, "ca.pem")

    def self_signed(self, name, cn, *ext):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN={cn}", *ext, cwd=self.dir)

    def make(self, name, dns, ca, expired=False):
        d = self.dir
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={dns}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:{dns}\n")
        sign = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-extfile", f"{name}.ext"]
        if not expired:
            _openssl(*sign, "-days", "2", cwd=d)
            return
        try:  # OpenSSL 3.4 and later say when; 3.0 takes a negative -days instead
            _openssl(*sign, "-not_before", "20200101000000Z", "-not_after", "20200102000000Z",
                     cwd=d)
        except subprocess.CalledProcessError:
            _openssl(*sign, "-days", "-1", cwd=d)

    def pair(self, name):
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def context(self, name, tls=None):
        """A server context with this certificate; tls "1.2" or "1.3" pins
        the protocol version, as does a name made by pinned()."""
        if isinstance(name, tuple):
            name, tls = name
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*self.pair(name))
        pin(ctx, tls)
        return ctx


def pinned(cert, tls):
    """A certificate name for Upstream(cert=...) or FakeUpstream whose TLS
    allows only version tls ("1.2", "1.3"; None: any)."""
    return (cert, tls) if tls is not None else cert


def pin(ctx, tls):
    """Allow only TLS 1.2 or only TLS 1.3 on ctx (tls None: leave it)."""
    if tls is not None:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[tls]
        ctx.minimum_version = ctx.maximum_version = v


def mbedtls_has_tls13():
    """Does the mbedTLS smtpscope is built with speak TLS 1.3? ctest says
    (SMTPSCOPE_TLS13, from tests/CMakeLists.txt); else the installed
    headers do. Only then are TLS 1.3 tests skipped."""
    env = os.environ.get("SMTPSCOPE_TLS13")
    if env is not None:
        return env == "1"
    try:
        with open("/usr/include/mbedtls/mbedtls_config.h") as f:
            return re.search(r"^#define MBEDTLS_SSL_PROTO_TLS1_3\b", f.read(), re.M) is not None
    except OSError:
        return False


TLS13 = mbedtls_has_tls13()
NO_TLS13 = "the mbedTLS smtpscope is built with has no TLS 1.3 (2.28)"


_certs = None


def certs():
    global _certs
    if _certs is None:
        _certs = Certs()
    return _certs


def assert_clean_exit(tc, rc, err, want_rc=0):
    """The one check of how an smtpscope ended, for every test: its exit
    status, and no AddressSanitizer, LeakSanitizer or UBSan report."""
    tc.assertEqual(rc, want_rc, err)
    for marker in ("Sanitizer", "runtime error"):
        tc.assertNotIn(marker, err)


class ScopeCase(unittest.TestCase):
    """A test with one smtpscope (self.scope) and its upstream (self.up or
    self.fake): afterwards smtpscope must exit 0 with no sanitizer report,
    even if it ended before (a test that ends it on purpose checks it and
    sets self.scope to None), and the upstream is stopped."""

    def setUp(self):
        self.scope = None
        self.up = None
        self.fake = None

    def tearDown(self):
        if self.scope is not None:
            rc, err = self.scope.stop()
            assert_clean_exit(self, rc, err)
        for peer in (self.up, self.fake):
            if peer is not None:
                peer.stop()


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


class BacklogController(Controller):
    """aiosmtpd's Controller listening with a backlog for hundreds of
    connections at once: asyncio's default of 100 overflows when test_load
    opens 300 sessions on a busy machine, and a session whose handshake ACK
    was dropped waits a minute for a greeting."""

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port,
                                       ssl=self.ssl_context, backlog=1024)


class Upstream:
    """A Gmail-like upstream: STARTTLS required, AUTH only inside TLS."""

    def __init__(self, cert="server", starttls=True, auth=True, host="localhost", port=None):
        self.recorder = Recorder()
        self.port = port or free_port(host)
        kw = {}
        if starttls:
            kw.update(tls_context=certs().context(cert), require_starttls=True)
        if auth:
            kw.update(authenticator=self.recorder.authenticate, auth_required=True,
                      auth_require_tls=True)
        # asyncio's create_server listens on every address of the name
        self.controller = BacklogController(self.recorder, hostname=host, port=self.port,
                                            server_hostname="mx.upstream.test", **kw)
        self.controller.start()

    def stop(self):
        self.controller.stop()


class Scope:
    """A running smtpscope; its stdout is collected line by line. wrap: an
    argv prefix to run it under (hosts_wrap)."""

    def __init__(self, *args, upstream=None, ca=True, wait=True, env=None, wrap=()):
        argv = [*wrap, BIN, "--listen", "127.0.0.1:0"]
        if upstream is not None:
            argv += ["--upstream", f"localhost:{upstream.port}"]
        if ca:
            argv += ["--ca-file", certs().ca]
        argv += list(args)
        penv = dict(os.environ)
        penv["XDG_DATA_HOME"] = xdg_data_home()  # the local CA: never the user's
        penv.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=penv)
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

    def expect(self, literal, timeout=15):
        """Wait for a transcript line holding this literal text."""
        return self.wait_for(re.escape(literal), timeout=timeout)

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def session_lines(self, sid):
        tag = f"[#{sid}] "
        return [l.split(tag, 1)[1] for l in self.text().splitlines() if tag in l]

    def status(self, field):
        """A field of /proc/PID/status in kB (VmRSS, VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        """SIGTERM; returns (exit status, stderr). Idempotent."""
        if getattr(self, "_ended", None) is not None:
            return self._ended
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
        self._ended = (rc, err)
        return rc, err


class FakeUpstream:
    """A scriptable upstream for what real servers won't do.

    script: steps run against the first connection:
      ("send", bytes)              write bytes (plaintext or inside TLS)
      ("expect", bytes)            read one line; it must start with these bytes
      ("expect_nothing", secs)     nothing may arrive for that long
      ("read_until", marker)       read until marker (consumed with it)
      ("slow_read_until", marker, bytes_per_second)
      ("tls",)                     server-side TLS handshake (test CA's cert)
      ("sleep", secs)
      ("close",)                   close (with TLS: no close_notify)
      ("rst",)                     reset the connection
      ("read_all",)                read until the peer closes
    What was read is kept in .received (one bytearray per connection);
    .errors holds what went wrong in the script.
    """

    def __init__(self, script, cert="server", host="localhost"):
        self.script = script
        self.cert = cert
        self.socks, self.port = listen(host)
        self.received = []
        self.errors = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            with selectors.DefaultSelector() as sel:
                for s in self.socks:
                    sel.register(s, selectors.EVENT_READ)
                while True:  # until stop() closes the sockets
                    ready = sel.select(timeout=0.2)
                    if ready:
                        break
                    if any(s.fileno() < 0 for s in self.socks):
                        return
            conn, _ = ready[0][0].fileobj.accept()
        except (OSError, ValueError):
            return
        got = bytearray()
        self.received.append(got)
        f = conn
        buf = bytearray()

        def more(limit=65536):
            chunk = f.recv(limit)
            if not chunk:
                raise EOFError("peer closed")
            got.extend(chunk)
            buf.extend(chunk)

        try:
            conn.settimeout(30)
            for step in self.script:
                op = step[0]
                if op == "send":
                    f.sendall(step[1])
                elif op == "expect":
                    while b"\n" not in buf:
                        more()
                    i = buf.index(b"\n")
                    line = bytes(buf[:i])
                    del buf[:i + 1]
                    if not line.lower().startswith(step[1].lower()):
                        raise AssertionError(f"expected {step[1]!r}, got {line!r}")
                elif op == "expect_nothing":
                    f.settimeout(step[1])
                    try:
                        more()
                        raise AssertionError(f"unexpected bytes: {bytes(buf)!r}")
                    except (socket.timeout, TimeoutError):
                        pass
                    f.settimeout(30)
                elif op == "read_until":
                    while step[1] not in buf:
                        more()
                    del buf[:buf.index(step[1]) + len(step[1])]
                elif op == "slow_read_until":
                    marker, rate = step[1], step[2]
                    start = time.time()
                    total = 0
                    while marker not in buf[-len(marker) - 65536:]:
                        more(16384)
                        total += 16384
                        ahead = total / rate - (time.time() - start)
                        if ahead > 0:
                            time.sleep(ahead)
                        if len(buf) > 1 << 20:
                            del buf[:-(len(marker) + 65536)]
                    buf.clear()
                elif op == "tls":
                    f = certs().context(self.cert).wrap_socket(f, server_side=True)
                elif op == "sleep":
                    time.sleep(step[1])
                elif op == "read_all":
                    try:
                        while True:
                            more()
                    except (EOFError, ConnectionError, ssl.SSLError):
                        pass
                elif op == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    break
                elif op == "close":
                    break
        except Exception as e:  # recorded for the test to assert on
            self.errors.append(e)
        finally:
            try:
                conn.close() if f is conn else f.close()
            except OSError:
                pass
            self.done.set()

    def data(self):
        self.done.wait(30)
        return bytes(self.received[0]) if self.received else b""

    def stop(self):
        for s in self.socks:
            s.close()


def xdg_data_home():
    """An XDG_DATA_HOME of the test run's own, where smtpscope keeps its
    local CA (one for the whole run, as a user has one)."""
    d = os.path.join(certs().dir, "xdg")
    os.makedirs(d, exist_ok=True)
    return d


def hosts_wrap(text):
    """An argv prefix that runs a command with an /etc/hosts of this text, in
    a mount namespace of its own (needs root and util-linux's unshare). Not
    root: the calling test is skipped; root and it cannot be done: it fails."""
    path = os.path.join(certs().dir, f"hosts-{len(os.listdir(certs().dir))}")
    with open(path, "w") as f:
        f.write(text)
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', path]
    if os.geteuid() != 0:
        raise unittest.SkipTest("replacing /etc/hosts for one process needs root")
    r = subprocess.run(wrap + ["cat", "/etc/hosts"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0 or r.stdout != text:
        raise AssertionError("cannot replace /etc/hosts for one process: " + r.stderr)
    return wrap


def client_tls(sock):
    """A raw client socket after smtpscope's 220 to STARTTLS, wrapped in TLS.
    smtpscope's client-leg certificate is its own self-signed one: not
    verified here."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname="localhost")


def tls_prelude(caps=b"250 fake\r\n"):
    """The steps of an upstream that speaks STARTTLS with smtpscope and then
    answers the client's EHLO with caps."""
    return [("send", b"220 fake ESMTP\r\n"), ("expect", b"EHLO"),
            ("send", b"250-fake\r\n250 STARTTLS\r\n"), ("expect", b"STARTTLS"),
            ("send", b"220 go ahead\r\n"), ("tls",), ("expect", b"EHLO"),
            ("send", b"250 fake\r\n"), ("expect", b"EHLO"), ("send", caps)]


def lines_after(text, start_pattern):
    """The transcript lines from the first one matching start_pattern."""
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if re.search(start_pattern, l):
            return lines[i:]
    return []


_leftover = weakref.WeakKeyDictionary()  # bytes read past a reply, per socket


def read_reply(sock, timeout=10):
    """Read one whole (multi-line) reply from a socket; bytes after it are
    kept for the next call."""
    sock.settimeout(timeout)
    buf = _leftover.pop(sock, b"")
    while True:
        start = 0
        while True:
            end = buf.find(b"\r\n", start)
            if end < 0:
                break
            line = buf[start:end]
            if len(line) == 3 or (len(line) >= 4 and line[3:4] == b" "):
                if end + 2 < len(buf):
                    _leftover[sock] = buf[end + 2:]
                return buf[:end + 2]
            start = end + 2
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
