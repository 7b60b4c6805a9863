"""The HTTP API's server (http/): its own routes over urllib and curl,
keep-alive and pipelining, HEAD, the Host and Origin rules, nosniff on every
response, CORS only with --http-cors, the bounds (target, headers, body,
connections, idle time) with the process answering afterwards, --http off,
the default address taken (a warning), an explicit one taken (exit 2), a
non-loopback address without --http-auth (exit 2), and --http-auth with
{SHA}, $5$ and $6$ hashes.

smtpscope runs in sink mode with --http 127.0.0.1:0 (the port it prints);
the default address is made a free port of the test's through
SMTPSCOPE_HTTP_DEFAULT, so no test meets another program on 8025.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import harness as h

VERSION = "0.1.0"
URL_RX = r"HTTP API on http://127\.0\.0\.1:(\d+)"


def read_response(f, head=False):
    """(status, headers, body) of one response read from a buffered socket
    file; the body by its Content-Length (none for HEAD)."""
    line = f.readline()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", line)
    if m is None:
        raise AssertionError(f"not a status line: {line!r}")
    headers = http.client.parse_headers(f)
    n = int(headers.get("Content-Length", "0"))
    body = b"" if head else f.read(n)
    return int(m.group(1)), headers, body


def get(port, path, headers=None, method="GET", host=None, body=None):
    """One request on a fresh connection: (status, headers, body)."""
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not False:
        lines.append(f"Host: {host or f'127.0.0.1:{port}'}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        with s.makefile("rb") as f:
            return read_response(f, head=method == "HEAD")


def wait_closed(sock, timeout=10):
    """Read until the server closes; the bytes read (b"" for none)."""
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


class HttpCase(h.ScopeCase):
    def setUp(self):
        super().setUp()
        self.extra = []  # other smtpscopes a test started: stopped and checked too

    def tearDown(self):
        for sc in self.extra:
            rc, err = sc.stop()
            h.assert_clean_exit(self, rc, err)
        super().tearDown()

    def api(self, *args, env=None):
        """smtpscope (sink mode) with the HTTP API on a free port: the port."""
        d = tempfile.mkdtemp(prefix="smtpscope-http-")
        self.scope = h.Scope("--sink", d, "--http", "127.0.0.1:0", *args, ca=False, env=env)
        line = self.scope.wait_for(URL_RX)
        self.port = int(re.search(URL_RX, line).group(1))
        return self.port

    def assert_alive(self):
        st, hd, body = get(self.port, "/livez")
        self.assertEqual((st, body), (200, b"ok"))


class RoutesTest(HttpCase):
    def test_livez_readyz_info_webui_with_urllib(self):
        port = self.api()
        for path in ("/livez", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), b"ok")
                self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/info", timeout=10) as r:
            self.assertEqual(r.headers["Content-Type"], "application/json")
            info = json.loads(r.read())
        self.assertEqual(info["Version"], VERSION)
        for k in ("LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags"):
            self.assertIn(k, info)
        rt = info["RuntimeStats"]
        for k in ("Uptime", "Memory", "MessagesDeleted", "SMTPAccepted", "SMTPAcceptedSize",
                  "SMTPRejected", "SMTPIgnored"):
            self.assertIsInstance(rt[k], int, k)
        self.assertGreater(rt["Memory"], 1000000)  # resident memory, in bytes
        self.assertEqual(info["SMTP"]["Mode"], "sink")
        self.assertEqual(info["SMTP"]["Listen"], f"127.0.0.1:{self.scope.port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/webui", timeout=10) as r:
            webui = json.loads(r.read())
        self.assertEqual(set(webui), {"Label", "MessageRelay", "SpamAssassin", "ChaosEnabled",
                                      "DuplicatesIgnored", "HideDeleteAllButton"})
        self.assertEqual(webui["MessageRelay"]["Enabled"], False)
        self.assertEqual(webui["ChaosEnabled"], False)

    def test_info_counts_smtp_messages(self):
        port = self.api()
        self.assertEqual(json.loads(get(port, "/api/v1/info")[2])["RuntimeStats"]["SMTPAccepted"],
                         0)
        with smtplib.SMTP("127.0.0.1", self.scope.port, timeout=10) as smtp:
            smtp.sendmail("a@x.test", ["b@x.test"], b"Subject: x\r\n\r\nhi\r\n")
        end = time.time() + 10
        while True:
            accepted = json.loads(get(port, "/api/v1/info")[2])["RuntimeStats"]["SMTPAccepted"]
            if accepted == 1 or time.time() > end:
                break
            time.sleep(0.05)
        self.assertEqual(accepted, 1)

    def test_curl_info_head_and_reuse(self):
        port = self.api()
        r = subprocess.run(["curl", "-sS", "-i", f"http://127.0.0.1:{port}/api/v1/info"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head)
        self.assertIn(b"X-Content-Type-Options: nosniff", head)
        self.assertEqual(json.loads(body)["Version"], VERSION)
        # HEAD: the length a GET would have, and no body
        r = subprocess.run(["curl", "-sS", "-I", f"http://127.0.0.1:{port}/livez"],
                           capture_output=True, timeout=30)
        self.assertIn(b"Content-Length: 2", r.stdout)
        self.assertTrue(r.stdout.endswith(b"\r\n\r\n"), r.stdout)
        # two URLs in one curl: the second goes over the first's connection
        r = subprocess.run(["curl", "-sS", "-v", f"http://127.0.0.1:{port}/livez",
                            f"http://localhost:{port}/readyz", f"http://127.0.0.1:{port}/readyz"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.stdout, b"okokok")
        self.assertRegex(r.stderr, rb"[Rr]e-?using existing (http: )?connection")  # curl 7.88, 8.14

    def test_unknown_path_404_and_wrong_method_405(self):
        port = self.api()
        st, hd, body = get(port, "/api/v1/nothing")
        self.assertEqual(st, 404)
        self.assertEqual(hd["Content-Type"], "application/json")
        self.assertEqual(json.loads(body), {"Error": "not found"})
        st, hd, body = get(port, "/nothing")
        self.assertEqual((st, hd["Content-Type"]), (404, "text/plain; charset=utf-8"))
        st, hd, body = get(port, "/api/v1/info", method="DELETE")
        self.assertEqual(st, 405)
        self.assertEqual(hd["Allow"], "GET, HEAD")
        st, hd, body = get(port, "/livez", method="POST", body=b"x")
        self.assertEqual(st, 405)
        # a path parameter-like suffix is not the route
        self.assertEqual(get(port, "/livez/")[0], 404)
        self.assertEqual(get(port, "/livez?x=1")[0], 200)


class ConnectionTest(HttpCase):
    def test_keep_alive_with_http_client(self):
        port = self.api()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        names = set()
        for path in ("/livez", "/api/v1/info", "/readyz", "/nope", "/api/v1/webui", "/livez"):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            self.assertIsNone(r.getheader("Connection"), path)
            names.add(conn.sock.getsockname())
        conn.close()
        self.assertEqual(len(names), 1, "http.client had to reconnect: no keep-alive")

    def test_pipelined_requests_answered_in_order(self):
        port = self.api()
        reqs = (b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"HEAD /api/v1/webui HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"POST /readyz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
                b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(reqs)
            f = s.makefile("rb")
            got = [read_response(f), read_response(f), read_response(f),
                   read_response(f, head=True), read_response(f), read_response(f)]
            self.assertEqual(f.read(), b"")  # closed after the one that said close
        self.assertEqual([g[0] for g in got], [200, 200, 404, 200, 405, 200])
        self.assertEqual(got[0][2], b"ok")
        self.assertEqual(json.loads(got[1][2])["Version"], VERSION)
        self.assertGreater(int(got[3][1]["Content-Length"]), 10)
        self.assertEqual(got[5][1]["Connection"], "close")

    def test_pipelined_dribbled_byte_by_byte(self):
        port = self.api()
        reqs = (b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(reqs)):
                s.sendall(reqs[i:i + 1])
            f = s.makefile("rb")
            self.assertEqual(read_response(f)[0], 200)
            self.assertEqual(read_response(f)[0], 200)

    def test_http10_closes_unless_keep_alive(self):
        port = self.api()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.0\r\nHost: localhost\r\n\r\n")
            f = s.makefile("rb")
            st, hd, body = read_response(f)
            self.assertEqual((st, body, hd["Connection"]), (200, b"ok", "close"))
            self.assertEqual(f.read(), b"")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
                      b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            f = s.makefile("rb")
            self.assertEqual(read_response(f)[1]["Connection"], "keep-alive")
            self.assertEqual(read_response(f)[1]["Connection"], "close")

    def test_not_http_is_400_and_closed(self):
        port = self.api()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"EHLO me\r\n\r\n")
            f = s.makefile("rb")
            st, hd, body = read_response(f)
            self.assertEqual(st, 400)
            self.assertEqual(hd["X-Content-Type-Options"], "nosniff")
            self.assertEqual(f.read(), b"")
        self.assert_alive()


class HostTest(HttpCase):
    def test_host_rules(self):
        port = self.api("--http-host", "scope.test", "--http-host", "[fd00::1]")
        ok = ["localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}", "[::1]",
              f"[::1]:{port}", "LOCALHOST", "scope.test", f"scope.test:{port}", "[fd00::1]:80"]
        for host in ok:
            self.assertEqual(get(port, "/livez", host=host)[0], 200, host)
        foreign = ["evil.example", f"evil.example:{port}", "localhost.evil.example",
                   "127.0.0.1.nip.io", "localhost:x", "scope.test.evil", "[::2]", "127.0.0.2"]
        for host in foreign:
            st, hd, body = get(port, "/api/v1/info", host=host)
            self.assertEqual(st, 403, host)
            self.assertNotIn(b"Version", body)
        st, hd, body = get(port, "/livez", host=False)
        self.assertEqual(st, 400)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.0\r\n\r\n")  # 1.0 too
            self.assertEqual(read_response(s.makefile("rb"))[0], 400)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
            self.assertEqual(read_response(s.makefile("rb"))[0], 400)
        # an absolute target names another host than the Host header: refused
        st, hd, body = get(port, "http://evil.example/livez", host="localhost")
        self.assertEqual(st, 400)

    def test_refusals_warn_without_flooding(self):
        port = self.api()
        for _ in range(12):
            self.assertEqual(get(port, "/livez", host="rebind.example")[0], 403)
        self.assert_alive()
        self.scope.wait_for(r"said again at 100")
        time.sleep(0.3)
        lines = [l for l in self.scope.text().splitlines()
                 if "refused a request for Host 'rebind.example'" in l]
        self.assertEqual(len(lines), 2, "\n".join(lines))  # the 1st and the 10th
        self.assertIn("1 such so far", lines[0])
        self.assertIn("10 such so far", lines[1])

    def test_origin_of_another_site_is_refused(self):
        port = self.api()
        st, hd, body = get(port, "/api/v1/info", headers={"Origin": "http://evil.example"})
        self.assertEqual(st, 403)
        self.assertIsNone(hd["Access-Control-Allow-Origin"])
        # the API's own origin (its UI) is not cross-origin
        st, hd, body = get(port, "/api/v1/info", host=f"localhost:{port}",
                           headers={"Origin": f"http://localhost:{port}"})
        self.assertEqual(st, 200)
        self.assertIsNone(hd["Access-Control-Allow-Origin"])


class CorsTest(HttpCase):
    ORIGIN = "http://localhost:3000"

    def test_no_cors_headers_without_the_option(self):
        port = self.api()
        st, hd, body = get(port, "/api/v1/info")
        self.assertEqual(st, 200)
        self.assertNotIn("Access-Control-Allow-Origin", hd)
        self.assertNotIn("Vary", hd)
        st, hd, body = get(port, "/api/v1/info", method="OPTIONS",
                           headers={"Origin": self.ORIGIN,
                                    "Access-Control-Request-Method": "DELETE"})
        self.assertEqual(st, 403)
        self.assertNotIn("Access-Control-Allow-Origin", hd)
        st, hd, body = get(port, "/api/v1/info", method="OPTIONS")
        self.assertEqual(st, 405)
        self.assertEqual(hd["Allow"], "GET, HEAD")

    def test_cors_for_the_one_origin(self):
        port = self.api("--http-cors", self.ORIGIN)
        st, hd, body = get(port, "/api/v1/info", headers={"Origin": self.ORIGIN})
        self.assertEqual(st, 200)
        self.assertEqual(hd["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertEqual(hd["Vary"], "Origin")
        st, hd, body = get(port, "/api/v1/info", headers={"Origin": "http://localhost:3001"})
        self.assertEqual(st, 403)
        self.assertNotIn("Access-Control-Allow-Origin", hd)
        st, hd, body = get(port, "/api/v1/info", method="OPTIONS",
                           headers={"Origin": self.ORIGIN,
                                    "Access-Control-Request-Method": "DELETE",
                                    "Access-Control-Request-Headers": "content-type"})
        self.assertEqual(st, 204)
        self.assertEqual(hd["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertIn("DELETE", hd["Access-Control-Allow-Methods"])
        self.assertEqual(hd["Access-Control-Allow-Headers"], "content-type")
        self.assertEqual(hd["X-Content-Type-Options"], "nosniff")
        st, hd, body = get(port, "/api/v1/info")  # no Origin: same answer, no CORS header
        self.assertEqual(st, 200)
        self.assertNotIn("Access-Control-Allow-Origin", hd)


class BoundsTest(HttpCase):
    def exchange(self, data, head=False):
        """Send data on a fresh connection (as far as the server reads it),
        read one response and the close: (status, headers, body, rest)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and stopped reading: the answer is there
            f = s.makefile("rb")
            st, hd, body = read_response(f, head=head)
            rest = f.read()
        return st, hd, body, rest

    def test_long_target_414(self):
        self.api()
        st, hd, body, rest = self.exchange(
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertEqual((st, hd["Connection"], rest), (414, "close", b""))
        self.assertEqual(hd["X-Content-Type-Options"], "nosniff")
        # just under the bound: a normal 404
        st, hd, body, rest = self.exchange(
            b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertEqual(st, 404)
        self.assert_alive()

    def test_many_headers_431(self):
        self.api()
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
        st, hd, body, rest = self.exchange(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n" + hdrs +
                                           b"\r\n")
        self.assertEqual((st, rest), (431, b""))
        # one huge header: the bytes bound
        st, hd, body, rest = self.exchange(b"GET /livez HTTP/1.1\r\nHost: localhost\r\nX-Big: " +
                                           b"b" * 60000 + b"\r\n\r\n")
        self.assertEqual(st, 431)
        # 99 headers are fine
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(98))
        st, hd, body, rest = self.exchange(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n" + hdrs +
                                           b"Connection: close\r\n\r\n")
        self.assertEqual(st, 200)
        self.assert_alive()

    def test_huge_body_413(self):
        self.api()
        # announced: refused before the body is read
        st, hd, body, rest = self.exchange(
            b"PUT /api/v1/info HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n" +
            b"x" * 300000)
        self.assertEqual((st, rest), (413, b""))
        # chunked: refused when the bound is crossed
        chunk = b"%x\r\n" % 65536 + b"y" * 65536 + b"\r\n"
        st, hd, body, rest = self.exchange(
            b"PUT /api/v1/info HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" +
            chunk * 40)
        self.assertEqual(st, 413)
        # curl waits for 100 Continue before a large body: it gets 413 instead
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                            "--data-binary", "@-", f"http://127.0.0.1:{self.port}/api/v1/info"],
                           input=b"z" * 3000000, capture_output=True, timeout=30)
        self.assertEqual(r.stdout, b"413", r.stderr)
        # within the bound: the body is read, and the answer is the route's
        st, hd, body, rest = self.exchange(
            b"PUT /api/v1/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Length: 500000\r\n\r\n" + b"x" * 500000)
        self.assertEqual(st, 405)
        self.assert_alive()

    def test_connection_limit_503(self):
        self.api()
        socks = []
        try:
            for _ in range(128):  # HTTP_CONNS_MAX, each with a request answered
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
                socks.append((s, s.makefile("rb")))
            for s, f in socks:
                self.assertEqual(read_response(f)[0], 200)
            st, hd, body, rest = self.exchange(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual((st, hd["Connection"], rest), (503, "close", b""))
            self.assertEqual(hd["Retry-After"], "1")
            # the open ones still work
            s, f = socks[0]
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(read_response(f)[0], 200)
        finally:
            for s, f in socks:
                f.close()
                s.close()
        end = time.time() + 10  # once the server saw them close, there is room again
        while True:
            st = get(self.port, "/livez")[0]
            if st == 200 or time.time() > end:
                break
            time.sleep(0.1)
        self.assertEqual(st, 200)

    def test_idle_connections_are_closed(self):
        self.api(env={"SMTPSCOPE_HTTP_IDLE": "500ms"})
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            t0 = time.monotonic()
            self.assertEqual(wait_closed(s), b"")  # nothing asked: closed, nothing said
            self.assertLess(time.monotonic() - t0, 5)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n")  # and never the end
            f = s.makefile("rb")
            st, hd, body = read_response(f)
            self.assertEqual((st, hd["Connection"]), (408, "close"))
            self.assertEqual(f.read(), b"")
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n")
            f = s.makefile("rb")
            self.assertEqual(read_response(f)[0], 200)
            t0 = time.monotonic()
            self.assertEqual(f.read(), b"")  # idle after its answer: closed too
            self.assertLess(time.monotonic() - t0, 5)
        self.assert_alive()


class OptionsTest(HttpCase):
    def test_http_off_listens_nowhere(self):
        taken_socks, port = h.listen("127.0.0.1")
        for s in taken_socks:
            s.close()  # free now: the default would listen there
        d = tempfile.mkdtemp(prefix="smtpscope-http-")
        self.scope = h.Scope("--sink", d, "--http", "off", ca=False,
                             env={"SMTPSCOPE_HTTP_DEFAULT": f"127.0.0.1:{port}"})
        time.sleep(0.3)
        self.assertNotIn("HTTP API", self.scope.text())
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_default_address_listens_and_taken_warns(self):
        socks, port = h.listen("127.0.0.1")
        for s in socks:
            s.close()
        env = {"SMTPSCOPE_HTTP_DEFAULT": f"127.0.0.1:{port}"}
        d = tempfile.mkdtemp(prefix="smtpscope-http-")
        # free: the default is where the API listens
        self.scope = h.Scope("--sink", d, ca=False, env=env)
        self.scope.expect(f"HTTP API on http://127.0.0.1:{port}")
        self.port = port
        self.assert_alive()
        # taken (by that first smtpscope): a warning, and the second runs without
        second = h.Scope("--sink", d, ca=False, env=env)
        self.extra.append(second)
        line = second.wait_for(r"no HTTP API")
        self.assertIn(f"its default address 127.0.0.1:{port} is taken", line)
        self.assertIn("warning", line)
        self.assertNotIn("HTTP API on", second.text())
        with socket.create_connection(("127.0.0.1", second.port), timeout=10) as s:
            self.assertTrue(h.read_reply(s).startswith(b"220 "))  # SMTP runs

    def test_explicit_address_taken_exits_2(self):
        socks, port = h.listen("127.0.0.1")
        try:
            r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--sink", tempfile.mkdtemp(),
                                "--http", f"127.0.0.1:{port}"], capture_output=True, text=True,
                               timeout=30)
        finally:
            for s in socks:
                s.close()
        h.assert_clean_exit(self, r.returncode, r.stderr, want_rc=2)
        self.assertIn(f"--http 127.0.0.1:{port}: cannot listen there: address already in use",
                      r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_non_loopback_needs_auth(self):
        for addr in ("0.0.0.0:0", "[::]:0"):
            r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--sink", tempfile.mkdtemp(),
                                "--http", addr], capture_output=True, text=True, timeout=30)
            h.assert_clean_exit(self, r.returncode, r.stderr, want_rc=2)
            self.assertIn("is not a loopback address", r.stderr)
            self.assertIn("--http-auth", r.stderr)

    def test_usage_errors(self):
        for args, want in ((["--http", "nowhere"], "--http: expected HOST:PORT"),
                           (["--http", "1.2.3.4:70000"], "--http: port 70000 is out of range"),
                           (["--http-cors", "localhost:3000"], "--http-cors: expected an origin"),
                           (["--http-cors", "http://a/b"], "--http-cors: expected an origin"),
                           (["--http-host", "a b"], "--http-host: expected a host name"),
                           (["--http-host", "h:80"], "--http-host: expected a host name")):
            r = subprocess.run([h.BIN, *args], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(want, r.stderr)


def htpasswd(lines):
    f = tempfile.NamedTemporaryFile("w", prefix="smtpscope-htpasswd-", delete=False)
    f.write("# made by test_http\n\n" + "".join(l + "\n" for l in lines))
    f.close()
    return f.name


def openssl_passwd(flag, password):
    return subprocess.run(["openssl", "passwd", flag, password], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthTest(HttpCase):
    def users(self):
        sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"sha-pass").digest()).decode()
        return htpasswd([f"ann:{sha}", f"bob:{openssl_passwd('-6', 'sha512 pass')}",
                         f"cid:{openssl_passwd('-5', 'sha256:pass')}"])

    def test_right_and_wrong_credentials(self):
        port = self.api("--http-auth", self.users())
        for user, pw in (("ann", "sha-pass"), ("bob", "sha512 pass"), ("cid", "sha256:pass")):
            st, hd, body = get(port, "/api/v1/info", headers={"Authorization": basic(user, pw)})
            self.assertEqual(st, 200, user)
            self.assertEqual(json.loads(body)["Version"], VERSION)
            # again: the remembered credential answers the same
            self.assertEqual(get(port, "/api/v1/info",
                                 headers={"Authorization": basic(user, pw)})[0], 200)
        for user, pw in (("ann", "wrong"), ("bob", "sha512 pas"), ("cid", "sha256"),
                         ("dan", "sha-pass"), ("ann", "")):
            st, hd, body = get(port, "/api/v1/info", headers={"Authorization": basic(user, pw)})
            self.assertEqual(st, 401, (user, pw))
            self.assertEqual(hd["WWW-Authenticate"], 'Basic realm="smtpscope", charset="UTF-8"')
            self.assertNotIn(b"Version", body)
        st, hd, body = get(port, "/api/v1/info")
        self.assertEqual(st, 401)
        st, hd, body = get(port, "/api/v1/info", headers={"Authorization": "Basic !!!"})
        self.assertEqual(st, 401)
        # unknown paths say nothing more without credentials
        self.assertEqual(get(port, "/api/v1/nothing")[0], 401)
        # the health checks need none
        self.assertEqual(get(port, "/livez")[:3:2], (200, b"ok"))
        # curl -u, and urllib's basic-auth handler (which asks after a 401)
        r = subprocess.run(["curl", "-sS", "-u", "bob:sha512 pass",
                            f"http://127.0.0.1:{port}/api/v1/webui"], capture_output=True,
                           timeout=30)
        self.assertIn(b"ChaosEnabled", r.stdout)
        mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, f"http://127.0.0.1:{port}/", "ann", "sha-pass")
        opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))
        with opener.open(f"http://127.0.0.1:{port}/api/v1/info", timeout=10) as r:
            self.assertEqual(r.status, 200)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/info", timeout=10)
        self.assertEqual(cm.exception.code, 401)
        self.scope.expect("HTTP API: refused credentials (401; 1 such so far")

    def test_non_loopback_with_auth_starts(self):
        self.scope = h.Scope("--sink", tempfile.mkdtemp(), "--http", "0.0.0.0:0",
                             "--http-auth", self.users(), ca=False)
        line = self.scope.wait_for(r"HTTP API on http://0\.0\.0\.0:(\d+)")
        self.assertIn("not a loopback address", line)
        port = int(re.search(r":(\d+) ", line).group(1))
        self.assertEqual(get(port, "/api/v1/info")[0], 401)
        self.assertEqual(get(port, "/api/v1/info",
                             headers={"Authorization": basic("ann", "sha-pass")})[0], 200)

    def test_unusable_files_exit_2(self):
        cases = (([f"ann:{openssl_passwd('-apr1', 'x')}"], "$apr1$"),
                 (["ann:plaintext"], "not a supported hash"),
                 (["ann"], "expected user:hash"),
                 (["ann:{SHA}abc"], "{SHA} must be followed"),
                 (["# nobody"], "no user:hash line"))
        for lines, want in cases:
            path = htpasswd(lines)
            r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--sink", tempfile.mkdtemp(),
                                "--http", "127.0.0.1:0", "--http-auth", path],
                               capture_output=True, text=True, timeout=30)
            h.assert_clean_exit(self, r.returncode, r.stderr, want_rc=2)
            self.assertIn(want, r.stderr)
            self.assertIn(path, r.stderr)
        r = subprocess.run([h.BIN, "--listen", "127.0.0.1:0", "--sink", tempfile.mkdtemp(),
                            "--http", "127.0.0.1:0", "--http-auth", "/nonexistent/htpasswd"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read it", r.stderr)


class NosniffTest(HttpCase):
    def test_every_response_says_nosniff(self):
        port = self.api("--http-cors", "http://localhost:3000")
        seen = set()
        for path, method, headers, host in (
                ("/livez", "GET", {}, None), ("/livez", "HEAD", {}, None),
                ("/api/v1/info", "GET", {}, None), ("/api/v1/webui", "GET", {}, None),
                ("/nope", "GET", {}, None), ("/api/v1/nope", "GET", {}, None),
                ("/livez", "DELETE", {}, None), ("/livez", "GET", {}, "evil.example"),
                ("/livez", "GET", {}, False),
                ("/livez", "GET", {"Origin": "http://elsewhere.example"}, None),
                ("/livez", "OPTIONS", {"Origin": "http://localhost:3000",
                                       "Access-Control-Request-Method": "GET"}, None),
                ("/livez", "GET", {"Expect": "teapot"}, None)):
            st, hd, body = get(port, path, method=method, headers=headers, host=host)
            self.assertEqual(hd["X-Content-Type-Options"], "nosniff", (path, method, st))
            seen.add(st)
        self.assertEqual(seen, {200, 204, 400, 403, 404, 405, 417})


if __name__ == "__main__":
    unittest.main()
